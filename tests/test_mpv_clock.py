"""The mpv clock against a real, headless mpv and a real Mosquitto, with `daq run` as a subprocess.

The test drives mpv over its own IPC connection (play, pause, seek back, play) and records every
time-pos mpv reports, stamped on arrival; each sample's media_s must be within one frame of what
mpv was showing at the sample's t_ns. The video is a small all-intra file that mpv itself encodes
from a lavfi test source (a lavfi source cannot seek back), so seeks land exactly.
"""

from __future__ import annotations

import bisect
import json
import socket
import subprocess
import threading
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

STATION = "lab-m"
FRAME_S = 0.04  # 25 fps, the rate of the source and of the config
SOURCE = "av://lavfi:testsrc2=duration=20:rate=25:size=64x64"


def make_video(path: Path) -> Path:
    """20 s at 25 fps, every frame a keyframe, encoded by mpv (no ffmpeg needed)."""
    proc = subprocess.run(
        [need("mpv"), "--no-config", "--no-terminal", SOURCE, f"--o={path}", "--ovc=mpeg4", "--ovcopts=g=1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not path.exists():
        pytest.fail(f"mpv could not encode the test video: {proc.stderr[-500:]}")
    return path


class Mpv:
    """A headless mpv with an IPC socket, and our own connection to it recording what it reports."""

    def __init__(self, folder: Path) -> None:
        self.socket_path = folder / "mpv.sock"
        video = make_video(folder / "testsrc.mkv")
        log = (folder / "mpv.log").open("ab")
        self.proc = subprocess.Popen(
            [need("mpv"), "--no-config", "--idle=no", "--vo=null", "--ao=null", "--no-terminal",
             f"--input-ipc-server={self.socket_path}", "--pause", str(video)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.reports: list[tuple[int, str, Any]] = []  # (wall ns on arrival, property, value)
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            wait_for(self._connect, timeout=10, what="mpv's IPC socket")
        except BaseException:
            self.close()
            raise
        self._reader = threading.Thread(target=self._read, name="mpv-ipc-test", daemon=True)
        self._reader.start()
        self.command("observe_property", 1, "time-pos")
        self.command("observe_property", 2, "pause")
        self.wait_position(lambda p: p == 0.0, "mpv to load the source")  # commands before that fail

    def _connect(self) -> bool:
        try:
            self.sock.connect(str(self.socket_path))
        except OSError:
            return False
        return True

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            now = time.time_ns()
            if not chunk:
                return
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                msg = json.loads(line)
                if msg.get("event") == "property-change":
                    with self._lock:
                        self.reports.append((now, msg["name"], msg.get("data")))

    def command(self, *args: object) -> None:
        self.sock.sendall(json.dumps({"command": list(args)}).encode() + b"\n")

    def last(self, name: str) -> Any:
        with self._lock:
            return next((value for _, n, value in reversed(self.reports) if n == name), None)

    def wait_position(self, predicate: Any, what: str) -> float:
        wait_for(lambda: isinstance(self.last("time-pos"), float) and predicate(self.last("time-pos")),
                 timeout=10, what=what)  # fmt: skip
        return float(self.last("time-pos"))

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            stop_process(self.proc)


class Reference:
    """What mpv showed at a given wall time: the last time-pos it reported, or up to the next one
    while it was playing frame by frame.

    mpv writes each message to its clients one after the other, so the station and this test see
    it up to a few ms apart: a window covers what mpv reported within SKEW_NS either side.
    """

    SKEW_NS = 5_000_000

    def __init__(self, reports: list[tuple[int, str, Any]]) -> None:
        self.pos = [(t, float(v)) for t, n, v in reports if n == "time-pos" and isinstance(v, float)]
        self.times = [t for t, _ in self.pos]

    def _at(self, t_ns: int) -> tuple[float, float] | None:
        i = bisect.bisect_right(self.times, t_ns) - 1
        if i < 0:
            return None
        low = high = self.pos[i][1]
        if i + 1 < len(self.pos) and 0 < self.pos[i + 1][1] - low <= 2 * FRAME_S + 1e-6:
            high = self.pos[i + 1][1]  # playing: the next frame was on its way
        return low, high

    def around(self, t_ns: int, n: int = 6) -> list[tuple[float, float]]:
        """The reports either side of t_ns, as (ms from t_ns, time-pos): for a failure's message (a burst
        of reports stamped at once says this test read late; evenly spaced ones with a gap, that mpv stalled)."""
        i = bisect.bisect_right(self.times, t_ns)
        return [(round((t - t_ns) / 1e6, 1), pos) for t, pos in self.pos[max(0, i - n) : i + n]]

    def window(self, t_ns: int) -> tuple[float, float] | None:
        found = [w for w in (self._at(t_ns + d) for d in (-self.SKEW_NS, 0, self.SKEW_NS)) if w is not None]
        if not found:
            return None
        return min(w[0] for w in found), max(w[1] for w in found)


def retained(port: int, topic: str) -> dict[str, Any]:
    """The retained message on `topic`, as a new subscriber gets it ({} when there is none yet)."""
    proc = subprocess.run(
        [need("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-C", "1", "-W", "1"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    body: dict[str, Any] = json.loads(proc.stdout) if proc.returncode == 0 else {}
    return body


def write_config(path: Path, broker: Mosquitto, clock: dict[str, str]) -> Path:
    media = "\n".join(f'{key} = "{value}"' for key, value in clock.items())
    path.write_text(
        f'[station]\nid = "{STATION}"\n\n[broker]\nurl = "{broker.url}"\n\n[media]\n{media}\n\n'
        '[[dials]]\nid = "sim-01"\n[dials.simulate]\nrate_hz = 100\nseed = 1\n'
    )
    return path


@pytest.fixture
def mpv(tmp_path: Path) -> Any:
    player = Mpv(tmp_path)
    try:
        yield player
    finally:
        player.close()


def session_clock(port: int) -> dict[str, Any]:
    clock: dict[str, Any] = retained(port, f"daq/{STATION}/session").get("clock", {})
    return clock


@pytest.mark.alone  # what mpv showed at each read time, read on arrival: a busy machine reads it late
def test_samples_follow_mpv_through_play_pause_seek(mosquitto: Mosquitto, mpv: Mpv, tmp_path: Path) -> None:
    config = write_config(tmp_path / "daq.toml", mosquitto, {"clock": "mpv", "mpv_socket": str(mpv.socket_path)})
    sub = Sub(mosquitto.port, [f"daq/{STATION}/#"], tmp_path / "sub.jsonl")
    daemon = start_daq(["run", "--config", str(config)], tmp_path)
    try:
        wait_for(lambda: any(samples_of(sub.messages())), timeout=15, what="the first sample")
        try:
            wait_for(lambda: session_clock(mosquitto.port).get("state") == "paused", timeout=5,
                     what="the mpv clock to find mpv")  # fmt: skip
        except TimeoutError:
            pytest.fail(
                "the retained session never showed mpv's clock as paused: does Station run clock.run()? "
                f"session: {session_clock(mosquitto.port)}"
            )
        mpv.command("set_property", "pause", False)
        mpv.wait_position(lambda p: p >= 2.0, "mpv to play 2 s")
        mpv.command("set_property", "pause", True)
        time.sleep(0.8)
        paused_at = mpv.last("time-pos")
        clock = session_clock(mosquitto.port)
        assert (clock["kind"], clock["state"]) == ("mpv", "paused")
        assert clock["position_s"] == pytest.approx(paused_at, abs=1e-6)

        mpv.command("seek", 0.6, "absolute")
        mpv.wait_position(lambda p: abs(p - 0.6) < 0.05, "the seek back to 0.6 s")
        time.sleep(0.6)
        sought_to = mpv.last("time-pos")
        clock = session_clock(mosquitto.port)
        assert (clock["state"], clock["position_s"]) == ("paused", pytest.approx(sought_to, abs=1e-6))

        mpv.command("set_property", "pause", False)
        mpv.wait_position(lambda p: 1.6 <= p < 5, "mpv to play on from 0.6 s")
        time.sleep(0.3)
        clock = session_clock(mosquitto.port)
        assert clock["state"] == "running" and clock["speed"] == 1.0
    finally:
        code = stop_process(daemon)
        if code == 0:
            wait_stopped(sub, STATION)
        sub.stop()
    assert code == 0, (tmp_path / "daq.log").read_text()

    messages = sub.messages()
    events = [m["payload"] for m in messages if m["topic"] == f"daq/{STATION}/events"]
    clock_events = [e for e in events if e["kind"].startswith("clock.")]
    assert [e["kind"] for e in clock_events] == ["clock.found", "clock.resume", "clock.pause", "clock.seek",
                                                 "clock.resume"], clock_events  # fmt: skip
    pause, seek = clock_events[2], clock_events[3]
    assert pause["data"]["media_s"] == pytest.approx(paused_at, abs=1e-6)
    assert seek["data"]["media_s"] == pytest.approx(sought_to) and seek["data"]["from_s"] == pytest.approx(paused_at)
    assert seek["data"]["state"] == "paused"

    states = [m["payload"]["clock"]["state"] for m in messages if m["topic"] == f"daq/{STATION}/session"]
    assert "paused" in states and "running" in states

    reference = Reference(mpv.reports)
    samples = samples_of(messages)
    checked = 0
    found_t_ns = clock_events[0]["t_ns"]
    for s in samples:
        window = reference.window(s["t_ns"])
        if window is None or (s["t_ns"] < found_t_ns and s["media_s"] is None):
            assert s["media_s"] is None and s["timecode"] is None and s["frame"] is None
            continue  # read before the station had found mpv: no position, not a stale one
        low, high = window
        assert low - FRAME_S <= s["media_s"] <= high + FRAME_S, (s, window, reference.around(s["t_ns"]))
        assert s["timecode"] is not None and 0 <= s["media_s"] * 25 - s["frame"] < 1 + 1e-6
        checked += 1
    assert checked > 300, f"only {checked} samples while mpv ran"


def test_clock_set_switches_to_mpv_at_run_time(mosquitto: Mosquitto, mpv: Mpv, tmp_path: Path) -> None:
    config = write_config(tmp_path / "daq.toml", mosquitto, {"clock": "session"})
    mpv.command("seek", 3.0, "absolute")
    mpv.wait_position(lambda p: abs(p - 3.0) < 1e-6, "mpv to seek to 3 s")
    daemon = start_daq(["run", "--config", str(config)], tmp_path)
    try:
        wait_for(lambda: session_clock(mosquitto.port).get("kind") == "session", timeout=15, what="the station")
        switch = subprocess.run(
            daq_cmd("session", "clock", "mpv", "--socket", str(mpv.socket_path), "--broker", mosquitto.url,
                    "--station", STATION),
            capture_output=True, text=True, timeout=20, check=False, env=clean_env(),
        )  # fmt: skip
        assert switch.returncode == 0, switch.stdout + switch.stderr
        assert json.loads(switch.stdout)["ok"] is True
        wait_for(lambda: session_clock(mosquitto.port).get("state") == "paused", timeout=5,
                 what="the mpv clock, started by clock.set")  # fmt: skip
        assert session_clock(mosquitto.port)["position_s"] == pytest.approx(3.0)
    finally:
        code = stop_process(daemon)
    assert code == 0, (tmp_path / "daq.log").read_text()
