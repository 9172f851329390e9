"""The session clock and the MQTT-followed clock through a real Mosquitto and `daq run`.

Driven the way a user would: `daq session ...` subprocesses and mosquitto_pub. Checked the way any
subscriber sees it: events, the retained session, and the samples' media fields, read with
mosquitto_sub.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import (
    Mosquitto,
    Sub,
    clean_env,
    daq_cmd,
    need,
    samples_of,
    start_daq,
    stop_process,
    wait_for,
    wait_stopped,
)

FRAME_S = 0.04  # 25 fps
EDGE_NS = 5_000_000  # samples this close to a change may fall either side of it


def write_config(path: Path, broker: Mosquitto, station: str) -> Path:
    path.write_text(
        f'[station]\nid = "{station}"\n\n[broker]\nurl = "{broker.url}"\n\n[media]\nclock = "session"\n\n'
        '[[dials]]\nid = "sim-01"\n[dials.simulate]\nrate_hz = 100\nseed = 1\n'
    )
    return path


def session_cli(broker: Mosquitto, station: str, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    """`daq session ARGS`: exit status, the reply it printed (if any), stderr."""
    proc = subprocess.run(
        daq_cmd("session", *args, "--broker", broker.url, "--station", station),
        capture_output=True, text=True, timeout=30, check=False, env=clean_env(),
    )  # fmt: skip
    reply = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, reply, proc.stderr


def publish(broker: Mosquitto, topic: str, body: dict[str, Any], retain: bool = False) -> None:
    args = [need("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", topic]
    subprocess.run([*args, "-m", json.dumps(body), *(["-r"] if retain else [])], check=True, timeout=10)


def retained_session(broker: Mosquitto, station: str) -> dict[str, Any]:
    proc = subprocess.run(
        [need("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(broker.port), "-t", f"daq/{station}/session",
         "-C", "1", "-W", "2"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    body: dict[str, Any] = json.loads(proc.stdout) if proc.returncode == 0 else {}
    return body


def events_of(messages: list[dict[str, Any]], station: str) -> list[dict[str, Any]]:
    """The session, clock and mark events (not device.connected and the like)."""
    return [
        m["payload"]
        for m in messages
        if m["topic"] == f"daq/{station}/events" and m["payload"]["kind"].startswith(("clock.", "session.", "mark"))
    ]


def between(samples: list[dict[str, Any]], start_ns: int, end_ns: int | None) -> list[dict[str, Any]]:
    """Samples read after `start_ns` and before `end_ns`, away from both edges."""
    return [s for s in samples if start_ns + EDGE_NS < s["t_ns"] and (end_ns is None or s["t_ns"] < end_ns - EDGE_NS)]


class Station:
    """`daq run` with its config in `folder`, and a mosquitto_sub on all its topics."""

    def __init__(self, broker: Mosquitto, folder: Path, station: str) -> None:
        self.broker, self.folder, self.station = broker, folder, station
        self.sub = Sub(broker.port, [f"daq/{station}/#"], folder / "sub.jsonl")
        self.proc = start_daq(["run", "--config", str(write_config(folder / "daq.toml", broker, station))], folder)

    def wait_samples(self) -> None:
        wait_for(lambda: len(samples_of(self.sub.messages())) > 20, timeout=15, what="samples")

    def stop(self) -> list[dict[str, Any]]:
        try:
            code = stop_process(self.proc)
            if code == 0:
                wait_stopped(self.sub, self.station)
        finally:
            self.sub.stop()
        assert code == 0, (self.folder / "daq.log").read_text()
        return self.sub.messages()


@pytest.fixture
def station_factory(mosquitto: Mosquitto, tmp_path: Path) -> Any:
    started: list[Station] = []

    def start(name: str) -> Station:
        station = Station(mosquitto, tmp_path, name)
        started.append(station)
        return station

    try:
        yield start
    finally:
        for station in started:
            stop_process(station.proc)
            station.sub.stop()


def test_session_cli_drives_the_session_clock(mosquitto: Mosquitto, station_factory: Any) -> None:
    name = "lab-s"
    # nobody answers for this station: runs in the background while the real one starts
    unanswered = subprocess.Popen(
        daq_cmd("session", "pause", "--broker", mosquitto.url, "--station", "nobody-here", "--timeout", "1"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
    )  # fmt: skip
    try:
        station: Station = station_factory(name)
        station.wait_samples()
        out, err = unanswered.communicate(timeout=30)
    finally:
        stop_process(unanswered)
    assert unanswered.returncode == 3 and out == "" and "no reply" in err

    def ok(*args: str) -> dict[str, Any]:
        code, reply, err = session_cli(mosquitto, name, *args)
        assert code == 0 and reply is not None and reply["ok"] is True, (code, reply, err)
        return reply

    # Each command takes a python start-up (~0.5 s or more): the gaps between changes need no sleep.
    ok("pause")
    ok("seek", "100")
    ok("resume")
    mark = ok("mark", "laugh", "--dial", "sim-01")
    ok("stop")
    assert retained_session(mosquitto, name)["clock"]["state"] == "stopped"
    started = ok("start", "--timecode", "01:00:00:00")
    code, reply, _ = session_cli(mosquitto, name, "clock", "mpv")  # no socket: refused
    assert code == 1 and reply is not None and reply["ok"] is False and "mpv_socket" in reply["error"]

    session = retained_session(mosquitto, name)
    assert session["session"] == started["session"] and session["session"] is not None
    assert session["clock"]["kind"] == "session" and session["clock"]["state"] == "running"
    assert session["clock"]["start_timecode"] == "01:00:00:00"
    messages = station.stop()

    events = events_of(messages, name)
    kinds = [e["kind"] for e in events]
    assert kinds == ["clock.pause", "clock.seek", "clock.resume", "mark", "session.stop", "session.start"], kinds
    t = {e["kind"]: e["t_ns"] for e in events}
    assert events[3]["data"]["label"] == "laugh" and events[3]["dial"] == "sim-01"
    assert mark["media_s"] == pytest.approx(100 + (t["mark"] - t["clock.resume"]) / 1e9, abs=FRAME_S)
    assert mark["timecode"].startswith("00:01:4")

    samples = samples_of(messages)
    paused = between(samples, t["clock.pause"], t["clock.seek"])
    assert paused and len({s["media_s"] for s in paused}) == 1
    sought = between(samples, t["clock.seek"], t["clock.resume"])
    assert sought and {s["media_s"] for s in sought} == {100.0} and {s["frame"] for s in sought} == {2500}
    running = between(samples, t["clock.resume"], t["session.stop"])
    assert len(running) > 30
    for s in running:
        assert s["media_s"] == pytest.approx(100 + (s["t_ns"] - t["clock.resume"]) / 1e9, abs=FRAME_S)
    stopped = between(samples, t["session.stop"], t["session.start"])
    assert stopped and all(s["media_s"] is None and s["timecode"] is None and s["frame"] is None for s in stopped)
    again = between(samples, t["session.start"], None)
    assert again and all(s["session"] == started["session"] for s in again)
    for s in again:
        assert s["media_s"] == pytest.approx(3600 + (s["t_ns"] - t["session.start"]) / 1e9, abs=FRAME_S)
        assert s["timecode"].startswith("01:00:0")


def test_samples_follow_a_position_published_over_mqtt(mosquitto: Mosquitto, station_factory: Any) -> None:
    name = "lab-q"
    topic = f"daq/{name}/media/position"
    t_published = time.time_ns()
    publish(mosquitto, topic, {"position_s": 100.0, "state": "playing", "t_ns": t_published}, retain=True)
    station: Station = station_factory(name)
    station.wait_samples()

    code, reply, err = session_cli(mosquitto, name, "clock", "mqtt")
    assert code == 0 and reply is not None and reply["ok"], (code, reply, err)
    session = retained_session(mosquitto, name)["clock"]
    assert (session["kind"], session["state"]) == ("mqtt", "running")  # the retained position, replayed
    time.sleep(0.5)

    publish(mosquitto, topic, {"position_s": 50.0, "state": "paused"})
    time.sleep(0.5)
    assert retained_session(mosquitto, name)["clock"]["state"] == "paused"
    t_fast = time.time_ns()
    publish(mosquitto, topic, {"position_s": 10.0, "state": "playing", "speed": 2.0, "t_ns": t_fast})
    time.sleep(0.6)
    publish(mosquitto, topic, {"position_s": 5.0, "state": "playing", "t_ns": t_fast - 10**9})  # stale: ignored
    time.sleep(0.2)
    publish(mosquitto, topic, {"state": "stopped"})
    time.sleep(0.4)
    assert retained_session(mosquitto, name)["clock"]["state"] == "stopped"
    messages = station.stop()

    events = events_of(messages, name)
    kinds = [e["kind"] for e in events]
    assert kinds == ["clock.found", "clock.set", "clock.pause", "clock.resume", "clock.stop"], kinds
    t = dict(zip(kinds, (e["t_ns"] for e in events), strict=True))
    assert events[3]["data"]["speed"] == 2.0

    samples = samples_of(messages)
    before = between(samples, 0, t["clock.found"])
    assert before and all(s["media_s"] is not None for s in before)  # the session clock until then
    following = between(samples, t["clock.set"], t["clock.pause"])
    assert following
    for s in following:
        assert s["media_s"] == pytest.approx(100 + (s["t_ns"] - t_published) / 1e9, abs=FRAME_S)
    paused = between(samples, t["clock.pause"], t["clock.resume"])
    assert paused and {s["media_s"] for s in paused} == {50.0}
    fast = between(samples, t["clock.resume"], t["clock.stop"])
    assert len(fast) > 30
    for s in fast:
        assert s["media_s"] == pytest.approx(10 + 2 * (s["t_ns"] - t_fast) / 1e9, abs=FRAME_S)
    stopped = between(samples, t["clock.stop"], None)
    assert stopped and all(s["media_s"] is None for s in stopped)
