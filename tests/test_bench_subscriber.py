"""benchmarks/run.py's subscriber (`--role sub`, benchmarks/e2e/roles.py): Mosquitto's C client
behind a JSON-lines wrapper, against a real Mosquitto. It says ready once subscribed, counts the
dials whose meta says connected and the samples (arrays too), and dumps each sample with a receipt
time on the monotonic clock: between the publish and the dump, not the wall clock's value."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from benchmarks.e2e.child import Child
from tests.support.procs import REPO, Mosquitto, need, wait_for

STATION = "bench-x"


def publish(broker: Mosquitto, topic: str, payload: dict[str, object] | list[dict[str, object]]) -> None:
    subprocess.run(
        [need("mosquitto_pub"), "-p", str(broker.port), "-q", "1", "-t", topic, "-m", json.dumps(payload)],
        check=True,
        timeout=30,
    )


def sample(dial: str, raw: int) -> dict[str, object]:
    return {"dial": dial, "raw": raw, "t_ns": 1_000 + raw, "value": raw / 10}


@pytest.mark.parametrize("subscriber", ["mosquitto_sub", "paho"])
def test_the_subscriber_counts_and_dumps_on_the_monotonic_clock(
    subscriber: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    args = ["--port", str(mosquitto.port), "--station", STATION, "--subscriber", subscriber]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sub = Child("sub", args, tmp_path / "sub.log", env)
    try:
        wait_for(lambda: sub.ask({"cmd": "status"})["ready"], timeout=20, what="the subscriber ready")
        root = f"daq/{STATION}/dials"
        publish(mosquitto, f"{root}/d000/meta", {"dial": "d000", "connected": True})
        publish(mosquitto, f"{root}/d001/meta", {"dial": "d001", "connected": True})
        publish(mosquitto, f"{root}/d001/meta", {"dial": "d001", "connected": False})
        before = time.monotonic_ns()
        publish(mosquitto, f"{root}/d000/samples", sample("d000", 1))
        publish(mosquitto, f"{root}/d000/samples", [sample("d000", 2), sample("d000", 3)])
        publish(mosquitto, "daq/other/dials/d000/samples", sample("d000", 9))  # another station's: not ours
        wait_for(lambda: sub.ask({"cmd": "status"})["samples"] == 3, timeout=20, what="3 samples counted")
        assert sub.ask({"cmd": "status"})["connected"] == 1
        out = tmp_path / "got.json"
        done = sub.ask({"cmd": "dump", "out": str(out)})
        after = time.monotonic_ns()
    finally:
        sub.stop()
    assert done == {"messages": 2, "samples": 3}
    got = orjson.loads(out.read_bytes())
    assert got["dial"] == ["d000"] * 3 and got["raw"] == [1, 2, 3] and got["t_ns"] == [1001, 1002, 1003]
    assert got["recv_ns"][1] == got["recv_ns"][2], "an array's samples share its receipt time"
    assert all(before <= r <= after for r in got["recv_ns"]), (before, got["recv_ns"], after)
