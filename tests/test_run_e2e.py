"""`daq run --simulate` as a subprocess against a real Mosquitto, read with mosquitto_sub."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import jsonschema

from daq.contract import json_schemas
from daq.timecode import FrameRate, frame_to_timecode, ns_to_frame
from tests.support.procs import Mosquitto, Sub, samples_of, start_daq, stop_process, wait_for, wait_stopped

STATION = "lab-a"


def test_simulated_station_publishes_the_contract(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sub = Sub(mosquitto.port, [f"daq/{STATION}/#"], tmp_path / "sub.jsonl")
    sub.wait_subscribed()  # the subscription in place before the first sample
    t_start = time.time_ns()
    daemon = start_daq(
        ["run", "--broker", mosquitto.url, "--station", STATION, "--simulate", "3", "--rate", "200"], tmp_path
    )
    try:
        wait_for(lambda: len(samples_of(sub.messages())) >= 600, timeout=20, what="600 samples")
    finally:
        code = stop_process(daemon)
    t_end = time.time_ns()
    if code == 0:
        wait_stopped(sub, STATION)
    sub.stop()
    assert code == 0, (tmp_path / "daq.log").read_text()

    messages = sub.messages()
    statuses = [m["payload"] for m in messages if m["topic"] == f"daq/{STATION}/status"]
    assert statuses[0]["state"] == "online"
    assert statuses[-1]["state"] == "offline" and statuses[-1]["reason"] == "stopped"
    assert len({s["boot"] for s in statuses}) == 1

    metas = {m["topic"]: m["payload"] for m in messages if m["topic"].endswith("/meta")}
    assert sorted(metas) == [f"daq/{STATION}/dials/sim-0{i}/meta" for i in (1, 2, 3)]

    # One validator per schema, the schema checked once (jsonschema.validate checks it again per message: ~7 s here)
    validators: dict[str, jsonschema.protocols.Validator] = {}
    for name, schema in json_schemas()["payloads"].items():
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validators[name] = cls(schema)
    for name, topic_end in (("status", "/status"), ("meta", "/meta"), ("session", "/session")):
        for m in messages:
            if m["topic"].endswith(topic_end):
                validators[name].validate(m["payload"])
    for m in messages:
        if m["topic"].endswith("/samples"):
            validators["samples"].validate(m["payload"])

    rate = FrameRate.parse("25")
    by_dial: dict[str, list[int]] = defaultdict(list)
    for s in samples_of(messages):
        by_dial[s["dial"]].append(s["seq"])
        assert t_start <= s["t_ns"] <= t_end
        assert (
            s["frame"] == ns_to_frame(round(s["media_s"] * 1e9), rate) or abs(s["frame"] - s["media_s"] * 25) < 1e-3
        )  # float rounding right at a frame edge
        assert s["timecode"] == frame_to_timecode(s["frame"], rate)
        assert s["station"] == STATION and s["boot"] == statuses[0]["boot"]
    assert sorted(by_dial) == ["sim-01", "sim-02", "sim-03"]
    for dial, seqs in by_dial.items():
        assert seqs == list(range(len(seqs))), f"{dial}: seq must start at 0 and rise by 1"


def test_retained_state_after_stop(mosquitto: Mosquitto, tmp_path: Path) -> None:
    daemon = start_daq(
        ["run", "--broker", mosquitto.url, "--station", STATION, "--simulate", "3", "--rate", "50", "--duration", "1"],
        tmp_path,
    )
    assert daemon.wait(20) == 0, (tmp_path / "daq.log").read_text()
    sub = Sub(
        mosquitto.port,
        [f"daq/{STATION}/status", f"daq/{STATION}/dials/+/meta", f"daq/{STATION}/session"],
        tmp_path / "retained.jsonl",
    )
    try:
        wait_for(lambda: len(sub.messages()) >= 5, timeout=5, what="retained messages")
    finally:
        sub.stop()
    retained = {m["topic"]: m for m in sub.messages()}
    assert all(m["retain"] for m in retained.values())
    assert retained[f"daq/{STATION}/status"]["payload"]["state"] == "offline"
    assert len([t for t in retained if t.endswith("/meta")]) == 3
    assert json.loads(json.dumps(retained[f"daq/{STATION}/session"]["payload"]))["clock"]["rate"] == "25"
