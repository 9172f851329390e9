"""Issue 13.5 and 14, end to end: a real `daq run` with simulated dials and a real Mosquitto.

An earlier run leaves samples in the outbox (the broker was never reached); bytes are flipped
in one sealed segment and another segment is deleted; the next run delivers every intact
record, reports the rest with counts (events and log lines), and announces the leftovers.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson

from daq.outbox.codec import records, scan
from tests.support.procs import Mosquitto, Sub, daq_cmd, samples_of, start_daq, stop_process, wait_for

STATION = "lab-ob"


def write_config(tmp_path: Path, broker: Mosquitto) -> Path:
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f'[station]\nid = "{STATION}"\n[broker]\nurl = "{broker.url}"\n'
        f'[outbox]\npath = "{tmp_path / "outbox"}"\nmax_bytes = 1048576\n'  # segments of 64 KiB
    )
    return cfg


def show(cfg: Path) -> dict[str, Any]:
    out = subprocess.run(daq_cmd("outbox", "show", "--config", str(cfg), "--json"), capture_output=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def keys_in(segment: Path) -> list[tuple[str, int]]:
    """(dial, seq) of every record of a sealed segment, in order."""
    first, count = (int(x) for x in segment.name[4:-4].split("-"))
    buf = segment.read_bytes()
    res = scan(buf, first, count)
    assert res.found == count
    out = []
    for _ident, _dial, payload, _size in records(buf, res.fmt, res.runs):
        sample = orjson.loads(payload)
        out.append((sample["dial"], sample["seq"]))
    return out


def flip(path: Path, offset: int, n: int = 3) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_and_a_deleted_segment_every_intact_sample_delivered_the_rest_reported(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")  # not started yet: the first run never reaches it
    cfg = write_config(tmp_path, broker)
    first = start_daq(["run", "--config", str(cfg), "--simulate", "2", "--rate", "200"], tmp_path, "daq1")
    # Until 6 segments are sealed (~230 records each), not a fixed 5 s: enough for the checks below.
    wait_for(lambda: len(list((tmp_path / "outbox").glob("seg-*-*.log"))) >= 6, timeout=30, what="6 sealed segments")
    stop_process(first, timeout=15)
    before = show(cfg)
    boot = before["groups"][0]["boot"]
    total = before["records"]
    assert total >= 1200 and all(g["seq_first"] == 0 for g in before["groups"]), before
    folder = tmp_path / "outbox"
    sealed = sorted(folder.glob("seg-*-*.log"))
    assert len(sealed) >= 5, sealed
    damaged, deleted = sealed[1], sealed[3]
    damaged_keys = keys_in(damaged)
    deleted_keys = keys_in(deleted)
    flip(damaged, damaged.stat().st_size // 2)
    deleted.unlink()

    broker.start()
    sub = Sub(broker.port, [f"daq/{STATION}/dials/+/samples", f"daq/{STATION}/events"], tmp_path / "sub.jsonl")
    second = None
    try:
        sub.wait_subscribed()
        second = start_daq(["run", "--config", str(cfg), "--simulate", "2", "--rate", "200"], tmp_path, "daq2")

        def events() -> dict[str, dict[str, Any]]:
            return {m["payload"]["kind"]: m["payload"] for m in sub.messages() if m["topic"].endswith("/events")}

        def replayed() -> set[tuple[str, int]]:
            return {(s["dial"], s["seq"]) for s in samples_of(sub.messages()) if s["boot"] == boot}

        wait_for(
            lambda: {"outbox.corrupt", "outbox.segment_missing", "outbox.replay"} <= set(events()),
            timeout=20,
            what="the outbox's start-up events",
        )
        corrupt = events()["outbox.corrupt"]["data"]
        missing = events()["outbox.segment_missing"]["data"]
        replay = events()["outbox.replay"]["data"]
        lost = corrupt["records"] + missing["records"]
        wait_for(lambda: len(replayed()) >= total - lost, timeout=30, what="every intact sample of the first run")
        time.sleep(1.0)
    finally:
        if second is not None:
            stop_process(second)
        sub.stop()
        broker.stop()
    got = replayed()
    assert missing["records"] == len(deleted_keys) and missing["delivered"] == 0
    assert corrupt["segment"] == damaged.name and 1 <= corrupt["records"] <= 2 and corrupt["bytes"] > 0
    assert replay["records"] == total - lost == len(got)
    assert replay["runs"][0]["boot"] == boot and replay["runs"][0]["dials"] == ["sim-01", "sim-02"]
    assert got.isdisjoint(deleted_keys)
    hit = [k for k in damaged_keys if k not in got]
    assert len(hit) == corrupt["records"] and damaged_keys[-1] in got  # the records after the damage are kept
    everything = {(g["dial"], seq) for g in before["groups"] for seq in range(g["seq_first"], g["seq_last"] + 1)}
    assert got == everything - set(deleted_keys) - set(hit)
    log = (tmp_path / "daq2.log").read_text()
    assert f"{corrupt['records']} samples in {damaged.name} could not be read" in log
    assert f"{len(deleted_keys)} samples in it were never delivered" in log
    # Issue 14: the leftovers are announced on the terminal in the default output: how many, which run, which folder
    assert f"outbox {folder} holds {total - lost} samples of earlier runs" in log
    assert f"boot {boot} (dials sim-01, sim-02; read 20" in log
    assert show(cfg)["records"] == 0
