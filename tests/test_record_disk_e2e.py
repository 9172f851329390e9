"""The recorder on a failing disk against a real Mosquitto (review item 2): a persistent session
gets the batches that could not be written again, and each row ends up in the file exactly once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import daq.subscribers.record_files as record_files
from daq import mqtt
from daq.config import BrokerConfig
from daq.subscribers.recorder import Recorder
from tests.support.polling import until
from tests.support.procs import Mosquitto
from tests.test_record_disk import SESSION, STATION, Disk, payload, seqs_in, topic


def test_a_persistent_recorder_writes_every_row_once_after_the_disk_was_full(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk()
    monkeypatch.setattr(record_files, "_write", disk.write)
    broker = BrokerConfig(url=mosquitto.url)
    out = tmp_path / "rec"
    rec = Recorder(broker, out, station=STATION, client_id="disk-rec", persistent=True)

    def last_seq() -> int:
        return rec.stats.last_seq.get((STATION, "d1"), -1)

    async def main() -> None:
        stop = asyncio.Event()
        recording = asyncio.create_task(rec.run(stop))
        await asyncio.wait_for(rec.connected.wait(), 10)
        async with mqtt.connect(broker, mqtt.ConnectOptions(client_id="disk-pub")) as pub:
            for seq in range(50):
                await pub.publish(topic(), payload(seq))
            await until(lambda: last_seq() == 49, "the first rows", timeout_s=30.0)
            disk.room = 30  # full in the middle of a row
            for seq in range(50, 100):
                await pub.publish(topic(), payload(seq))
            await until(
                lambda: disk.failures >= 2, "a failed write, and a failed one after the reconnect", timeout_s=30.0
            )
            assert last_seq() == 49
            disk.room = None
            for seq in range(100, 150):
                await pub.publish(topic(), payload(seq))
            await until(lambda: last_seq() == 149 and rec.connected.is_set(), "every row", timeout_s=30.0)
        stop.set()
        await asyncio.wait_for(recording, 20)

    asyncio.run(main())
    assert seqs_in(out / STATION / SESSION / "d1.csv") == list(range(150))
    summary = json.loads((out / STATION / SESSION / "summary.json").read_text())
    assert summary["gaps"] == [] and summary["dials"]["d1"] == {"rows": 150, "file": "d1.csv"}
    own = json.loads((out / "recorder@disk-rec.json").read_text())
    assert own["not_written"] == 0 and own["gaps"] == 0
    assert rec.stats.duplicates == 0  # the rows not written were not taken for duplicates when they came again
