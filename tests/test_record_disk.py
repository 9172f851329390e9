"""The recorder on a failing disk (review item 2): a sample counts only once its commit wrote it.

Without a broker: `Recorder.handle` takes messages as the MQTT layer hands them over, `Recorder.commit`
is what `mqtt.consume` runs before it acknowledges a batch. The disk fails through
`record_files._write` (every write of rows goes through it). A batch that cannot be written is cut
off its file again and its seqs stay unseen: the broker's redelivery writes each row exactly once
(not a duplicate); without a redelivery (a clean session) the rows are `not_written` and a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

import daq.subscribers.record_files as record_files
from daq import mqtt
from daq.config import BrokerConfig
from daq.recording import read_recording
from daq.subscribers.record_seqs import SeqSpans
from daq.subscribers.recorder import Recorder
from tests.support.samples import station_sample

STATION = "lab-d"
SESSION = "s-1"


def sample(seq: int, dial: str = "d1", session: str = SESSION) -> dict[str, Any]:
    return station_sample(STATION, seq, dial, session)


def topic(dial: str = "d1") -> str:
    return f"daq/{STATION}/dials/{dial}/samples"


def payload(seq: int, dial: str = "d1") -> bytes:
    return json.dumps(sample(seq, dial)).encode()


def publish(rec: Recorder, seqs: range | list[int], dial: str = "d1") -> None:
    for seq in seqs:
        rec.handle(topic(dial), payload(seq, dial))


def seqs_in(path: Path) -> list[int]:
    recording = read_recording(path)
    assert recording.torn == 0, "no part of a failed batch stays in the file"
    return [int(row[1]) for row in recording.rows]


class Disk:
    """`record_files._write` that fails on demand: after `room` more bytes, ENOSPC (a short write first)."""

    def __init__(self) -> None:
        self.room: int | None = None  # None: room enough
        self.failures = 0

    def write(self, fd: int, data: bytes) -> int:
        if self.room is None:
            return os.write(fd, data)
        if self.room <= 0:
            self.failures += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = os.write(fd, data[: self.room])  # part of a row: the disk fills up in the middle of it
        self.room -= written
        return written


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    failing = Disk()
    monkeypatch.setattr(record_files, "_write", failing.write)
    return failing


def recorder(out: Path) -> Recorder:
    return Recorder(BrokerConfig(url="mqtt://127.0.0.1:1"), out)


def summary_of(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / STATION / SESSION / "summary.json").read_text()))


def test_a_batch_the_disk_refuses_is_cut_off_and_its_redelivery_is_written_once(tmp_path: Path, disk: Disk) -> None:
    rec = recorder(tmp_path)
    path = tmp_path / STATION / SESSION / "d1.csv"
    publish(rec, [0])
    rec.commit()
    committed = path.stat().st_size
    disk.room = 30  # the next batch: a row and a half reach the file, then the disk is full
    publish(rec, [1, 2, 3])
    with pytest.raises(OSError) as failed:  # consume's commit: not acknowledged, the connection drops
        rec.commit()
    assert failed.value.errno == errno.ENOSPC and disk.failures == 1
    assert path.stat().st_size == committed and seqs_in(path) == [0]  # cut back to the committed row
    assert rec.stats.rows[(STATION, "d1")] == 1 and rec.stats.last_seq[(STATION, "d1")] == 0
    assert rec.not_written() == {"d1": 3}

    disk.room = None  # room again; the broker sends 1..3 again (and 4 after them)
    publish(rec, [1, 2, 3, 4])
    rec.commit()
    rec.close()
    assert seqs_in(path) == [0, 1, 2, 3, 4]
    assert rec.stats.duplicates == 0 and rec.stats.gaps == []
    assert rec.stats.rows[(STATION, "d1")] == 5 and rec.stats.last_seq[(STATION, "d1")] == 4
    summary = summary_of(tmp_path)
    assert summary["dials"]["d1"] == {"rows": 5, "file": "d1.csv"} and summary["gaps"] == []
    assert summary["duplicates_dropped"] == 0
    own = json.loads((tmp_path / "recorder.json").read_text())
    assert own["not_written"] == 0 and own["gaps"] == 0


def test_a_redelivered_batch_that_was_written_is_dropped_as_duplicates(tmp_path: Path, disk: Disk) -> None:
    """Committed, then the connection dropped before the acks: those rows are in the file once."""
    rec = recorder(tmp_path)
    publish(rec, [0, 1, 2])
    rec.commit()
    publish(rec, [1, 2, 2, 3])  # a duplicate within a batch is dropped before its commit, too
    rec.commit()
    rec.close()
    assert seqs_in(tmp_path / STATION / SESSION / "d1.csv") == [0, 1, 2, 3]
    assert rec.stats.duplicates == 3


def test_what_a_clean_session_does_not_send_again_is_a_gap_and_not_written(tmp_path: Path, disk: Disk) -> None:
    rec = recorder(tmp_path)
    publish(rec, [0, 1])
    rec.commit()
    disk.room = 0
    publish(rec, [2, 3, 4])
    with pytest.raises(OSError):
        rec.commit()
    disk.room = None
    publish(rec, [5, 6])  # a clean session: 2..4 are gone with it, what comes is new
    rec.commit()
    rec.close()
    assert seqs_in(tmp_path / STATION / SESSION / "d1.csv") == [0, 1, 5, 6]
    summary = summary_of(tmp_path)
    assert summary["dials"]["d1"]["rows"] == 4 and summary["dials"]["d1"]["not_written"] == 3
    assert summary["gaps"] == [{"dial": "d1", "boot": "b1", "missing": [[2, 4]]}]
    assert rec.stats.duplicates == 0
    own = json.loads((tmp_path / "recorder.json").read_text())
    assert own["not_written"] == 3 and own["gaps"] == 3


def test_rows_lost_at_the_end_or_at_the_start_are_counted_not_written(tmp_path: Path, disk: Disk) -> None:
    """No later seq shows them as a gap (nothing came after; or nothing was received before them)."""
    rec = recorder(tmp_path)
    disk.room = 0
    publish(rec, [0, 1])
    publish(rec, [0], dial="d2")
    with pytest.raises(OSError):
        rec.commit()
    disk.room = None
    publish(rec, [1, 2], dial="d2")
    publish(rec, [0, 1, 2], dial="d3")
    rec.commit()
    disk.room = 0
    publish(rec, [3, 4], dial="d3")
    rec.close()  # its commit fails: counted, and the summaries are still written
    summary = summary_of(tmp_path)
    assert summary["dials"]["d1"] == {"rows": 0, "file": "d1.csv", "not_written": 2}
    assert summary["dials"]["d2"] == {"rows": 2, "file": "d2.csv", "not_written": 1}
    assert summary["dials"]["d3"] == {"rows": 3, "file": "d3.csv", "not_written": 2}
    folder = tmp_path / STATION / SESSION
    assert seqs_in(folder / "d1.csv") == []
    assert seqs_in(folder / "d2.csv") == [1, 2] and seqs_in(folder / "d3.csv") == [0, 1, 2]
    assert json.loads((tmp_path / "recorder.json").read_text())["not_written"] == 5


def test_only_the_file_that_failed_is_cut_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = recorder(tmp_path)
    folder = tmp_path / STATION / SESSION
    publish(rec, [0], dial="d1")
    publish(rec, [0], dial="d2")
    rec.commit()

    def eio_for_d2(fd: int, data: bytes) -> int:
        if os.path.samefile(f"/proc/self/fd/{fd}", folder / "d2.csv"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return os.write(fd, data)

    monkeypatch.setattr(record_files, "_write", eio_for_d2)
    publish(rec, [1, 2], dial="d1")
    publish(rec, [1, 2], dial="d2")
    with pytest.raises(OSError, match="Input/output error"):
        rec.commit()
    monkeypatch.setattr(record_files, "_write", os.write)
    publish(rec, [1, 2], dial="d1")  # the whole batch again: d1's rows are in the file, d2's are not
    publish(rec, [1, 2], dial="d2")
    rec.commit()
    rec.close()
    assert seqs_in(folder / "d1.csv") == [0, 1, 2] and seqs_in(folder / "d2.csv") == [0, 1, 2]
    assert rec.stats.duplicates == 2 and rec.not_written() == {}


def test_a_file_that_could_not_be_cut_back_is_cut_before_its_next_write(
    tmp_path: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = recorder(tmp_path)
    path = tmp_path / STATION / SESSION / "d1.csv"
    publish(rec, [0])
    rec.commit()

    def no_truncate(*args: Any) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "truncate", no_truncate)
    disk.room = 25
    publish(rec, [1, 2])
    with pytest.raises(OSError):
        rec.commit()
    assert read_recording(path).torn == 1  # a part of row 1 is still there...
    monkeypatch.undo()  # (both: the disk has room again)
    publish(rec, [1, 2])
    rec.commit()
    rec.close()
    assert seqs_in(path) == [0, 1, 2]  # ... and gone before the next rows


class FakeConnection:
    """What `mqtt.consume` needs of a connection: queued messages, manual acks."""

    manual_ack = True

    def __init__(self, messages: list[mqtt.Message]) -> None:
        self.messages = list(messages)
        self.acked: list[int] = []

    @property
    def queued(self) -> int:
        return len(self.messages)

    def receive_nowait(self) -> mqtt.Message | None:
        return self.messages.pop(0) if self.messages else None

    async def wait(self, within_s: float | None) -> None:  # nothing more comes: wait for the stop or the tick
        self._woken = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), within_s)

    def wake(self) -> None:
        if hasattr(self, "_woken"):
            self._woken.set()

    def ack(self, message: mqtt.Message) -> None:
        self.acked.append(message.mid)


def test_through_consume_a_batch_not_written_is_not_acknowledged_then_written_once(tmp_path: Path, disk: Disk) -> None:
    rec = recorder(tmp_path)
    messages = [mqtt.Message(topic(), payload(seq), qos=1, mid=seq + 1) for seq in range(6)]

    async def session(connection: FakeConnection) -> None:  # one connection: consume until it is lost
        stop = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(0.05, stop.set)
        try:
            await mqtt.consume(connection, stop, rec._take, commit=rec.commit)  # type: ignore[arg-type]
        finally:
            timer.cancel()

    first = FakeConnection(messages[:2])
    asyncio.run(session(first))
    assert first.acked == [1, 2]
    disk.room = 10
    second = FakeConnection(messages[2:])
    with pytest.raises(OSError):
        asyncio.run(session(second))
    assert second.acked == []  # the broker keeps 3..6 (a persistent session) and sends them again
    disk.room = None
    third = FakeConnection(messages[2:])
    asyncio.run(session(third))
    assert third.acked == [3, 4, 5, 6]
    rec.close()
    assert seqs_in(tmp_path / STATION / SESSION / "d1.csv") == [0, 1, 2, 3, 4, 5]
    assert rec.stats.duplicates == 0 and summary_of(tmp_path)["dials"]["d1"]["rows"] == 6


def test_seq_spans() -> None:
    spans = SeqSpans()
    for seq in (5, 3, 4, 9, 7, 8, 8, 1):
        spans.add(seq)
    assert spans.spans == [[1, 1], [3, 5], [7, 9]] and spans.count == 7
    assert 4 in spans and 6 not in spans and 0 not in spans
    for seq in (4, 1, 6, 9):
        spans.discard(seq)
    assert spans.spans == [[3, 3], [5, 5], [7, 8]] and spans.count == 4
