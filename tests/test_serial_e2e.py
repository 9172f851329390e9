"""Issue 3 end to end: firmware played on real pseudo-terminals, read by `daq run` through the
bundled profiles, published to a real Mosquitto, read back with mosquitto_sub.

Every test runs twice: the ports read in the reader process (the default), then in the daemon's
thread (`[station] readers = "thread"`); `config()` writes the mode of the test running."""

from __future__ import annotations

import random
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ptydial import PtyDial
from tests.support.procs import Mosquitto, Sub, start_daq, stop_process, wait_for, wait_stopped

STATION = "lab-s"
READERS = {"mode": "process"}
"""`[station] readers` of the configs `config()` writes: set by the `readers` fixture per test."""


@pytest.fixture(autouse=True, params=["process", "thread"])
def readers(request: pytest.FixtureRequest) -> Iterator[str]:
    """Where the daemon reads its serial ports in this test (modules using `config()` import this fixture)."""
    READERS["mode"] = request.param
    try:
        yield request.param
    finally:
        READERS["mode"] = "process"


def dial_toml(dial: str, profile: str, port: Path, extra: str = "") -> str:
    return (
        textwrap.dedent(f"""
        [[dials]]
        id = "{dial}"
        profile = "{profile}"
        port = "{port}"
        """)
        + extra
    )


def config(tmp_path: Path, broker: Mosquitto, dials: str, head: str = "") -> Path:
    path = tmp_path / "daq.toml"
    station = f'[station]\nid = "{STATION}"\nreaders = "{READERS["mode"]}"\n'
    path.write_text(f'{head}\n{station}[broker]\nurl = "{broker.url}"\n' + dials)
    return path


class Run:
    """A daemon on a config, and a mosquitto_sub on its station."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, cfg: Path) -> None:
        self.tmp_path = tmp_path
        self.sub = Sub(broker.port, [f"daq/{STATION}/#"], tmp_path / "sub.jsonl")
        self.sub.wait_subscribed()
        self.daemon = start_daq(["run", "--config", str(cfg)], tmp_path)

    def messages(self) -> list[dict[str, Any]]:
        return self.sub.messages()

    def samples(self, dial: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in self.messages():
            if m["topic"] == f"daq/{STATION}/dials/{dial}/samples":
                body = m["payload"]
                out.extend(body if isinstance(body, list) else [body])
        return out

    def metas(self, dial: str) -> list[bool]:
        return [m["payload"]["connected"] for m in self.messages() if m["topic"] == f"daq/{STATION}/dials/{dial}/meta"]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [
            m["payload"] for m in self.messages() if m["topic"].endswith("/events") and m["payload"]["kind"] == kind
        ]

    def wait_connected(self, dial: str, times: int = 1, timeout: float = 15) -> None:
        wait_for(lambda: self.metas(dial).count(True) >= times, timeout=timeout, what=f"{dial} connected")

    def stop(self) -> None:
        code = stop_process(self.daemon)
        if code == 0:
            wait_stopped(self.sub, STATION)
        self.sub.stop()
        assert code == 0, (self.tmp_path / "daq.log").read_text()[-2000:]


@pytest.fixture
def run_factory(tmp_path: Path) -> Iterator[list[Run]]:
    runs: list[Run] = []
    yield runs
    for run in runs:
        if run.daemon.poll() is None:
            stop_process(run.daemon)
        run.sub.stop()


def play_lines(dial: PtyDial, lines: list[bytes], rate_hz: float) -> list[int]:
    """Write lines on an absolute schedule; return the wall-clock ns of each write."""
    offset = time.time_ns() - time.monotonic_ns()
    period = 1e9 / rate_hz
    start = time.monotonic_ns()
    stamps = []
    for i, line in enumerate(lines):
        due = start + int(i * period)
        while time.monotonic_ns() < due:
            time.sleep(max(0.0, (due - time.monotonic_ns()) / 1e9 - 0.0002))
        stamps.append(dial.write(line) + offset)
    return stamps


def frame_v1(position: int, buttons: int = 0) -> bytes:
    body = bytes([0xAA, 0x55, position & 0xFF, position >> 8, buttons])
    check = 0
    for b in body:
        check ^= b
    return body + bytes([check])


CASES = {
    # profile: (lines written, expected raw values, rate Hz, scale max / raw max)
    "arduino-pot": ([b"%d\r\n" % v for v in range(0, 1024, 8)], list(range(0, 1024, 8)), 100, 1023),
    "teensy-fast": (
        [b"t,%d,%d\r\n" % (1000 * i, (i * 37) % 4096) for i in range(1000)],
        [(i * 37) % 4096 for i in range(1000)],
        1000,
        4095,
    ),
    "dialdaq-frame-v1": ([frame_v1(v) for v in range(0, 1024, 16)], list(range(0, 1024, 16)), 200, 1023),
}


@pytest.mark.parametrize("profile", sorted(CASES))
def test_bundled_profile_end_to_end(profile: str, tmp_path: Path, mosquitto: Mosquitto, run_factory: list[Run]) -> None:
    lines, expected, rate, raw_max = CASES[profile]
    with PtyDial(tmp_path) as dial:
        cfg = config(tmp_path, mosquitto, dial_toml("p1", profile, dial.path))
        run = Run(tmp_path, mosquitto, cfg)
        run_factory.append(run)
        run.wait_connected("p1")
        sent = play_lines(dial, [b"\r\n", *lines], rate)[1:]  # the first line after open is dropped, by design
        wait_for(lambda: len(run.samples("p1")) >= len(expected), timeout=20, what=f"{len(expected)} samples")
        run.stop()
    samples = run.samples("p1")
    assert [s["raw"] for s in samples] == expected
    assert [s["seq"] for s in samples] == list(range(len(expected)))
    for s, raw in zip(samples, expected, strict=True):
        assert s["value"] == pytest.approx(round(raw / raw_max * 100, 6))
    # read time: after the write, and close to it (precision is for the benchmarks; this catches a wrong
    # clock, which shifts every delay). The earliest, not the median: in one full suite here the lines
    # reached the reader ~0.5 s late twice in this second of lines (a loaded machine: the cause was not
    # found; a daemon that does not read the reader's socket for 6 s does not delay it), and a stall only
    # makes delays longer.
    delays = [s["t_ns"] - w for s, w in zip(samples, sent, strict=True)]
    assert min(delays) > -1_000_000, "a sample stamped before its bytes were written"
    assert min(delays) < 50_000_000, sorted(delays)[:: len(delays) // 10]


def test_encoder_counts_and_button(tmp_path: Path, mosquitto: Mosquitto, run_factory: list[Run]) -> None:
    with PtyDial(tmp_path) as dial:
        scale = "[dials.scale]\nmin = -10\nmax = 10\n"
        cfg = config(tmp_path, mosquitto, dial_toml("enc", "arduino-encoder", dial.path, scale))
        run = Run(tmp_path, mosquitto, cfg)
        run_factory.append(run)
        run.wait_connected("enc")
        play_lines(dial, [b"READY\r\n", b"E:0\r\n", b"E:3\r\n", b"B:1\r\n", b"E:5\r\n", b"B:0\r\n", b"-2\r\n"], 50)
        wait_for(lambda: len(run.samples("enc")) >= 3 and len(run.events("button")) >= 2, what="counts and buttons")
        run.stop()
    samples = run.samples("enc")
    # "READY" is the first line after open (dropped); "E:0" is the counter's baseline; then steps from it
    assert [s["raw"] for s in samples] == [3, 5, -2]
    assert [s["value"] for s in samples] == [3.0, 5.0, -2.0]  # 20 counts a turn span -10..10
    assert [e["data"]["pressed"] for e in run.events("button")] == [True, False]


def test_unplug_and_replug_keeps_seq_running(tmp_path: Path, mosquitto: Mosquitto, run_factory: list[Run]) -> None:
    with PtyDial(tmp_path) as dial:
        cfg = config(tmp_path, mosquitto, dial_toml("p1", "teensy-fast", dial.path))
        run = Run(tmp_path, mosquitto, cfg)
        run_factory.append(run)
        run.wait_connected("p1")
        play_lines(dial, [b"\n"] + [b"%d\n" % v for v in range(100)], 500)
        wait_for(lambda: len(run.samples("p1")) >= 100, what="first 100")
        dial.wait_consumed()
        dial.unplug()
        wait_for(lambda: False in run.metas("p1")[1:], what="disconnected meta")
        dial.replug()
        run.wait_connected("p1", times=2)
        play_lines(dial, [b"\n"] + [b"%d\n" % v for v in range(100, 200)], 500)
        wait_for(lambda: len(run.samples("p1")) >= 200, what="second 100")
        run.stop()
    samples = run.samples("p1")
    assert [s["raw"] for s in samples] == list(range(200))
    assert [s["seq"] for s in samples] == list(range(200))
    assert len({s["boot"] for s in samples}) == 1
    assert len(run.events("device.disconnected")) == 1 and len(run.events("device.connected")) == 2


def test_garbage_is_counted_never_published(tmp_path: Path, mosquitto: Mosquitto, run_factory: list[Run]) -> None:
    rng = random.Random(3)
    noise = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(50)]
    with PtyDial(tmp_path) as dial:
        cfg = config(tmp_path, mosquitto, dial_toml("p1", "arduino-pot", dial.path))
        run = Run(tmp_path, mosquitto, cfg)
        run_factory.append(run)
        run.wait_connected("p1")
        stream: list[bytes] = [b"\n"]
        for i, junk in enumerate(noise):
            stream += [junk.replace(b"\n", b"") + b"\n", b"%d\n" % (i * 10), b"9" * 300 + b"\n"]
        play_lines(dial, stream, 400)
        wait_for(lambda: len(run.events("garbage")) >= 1 and len(run.samples("p1")) >= 40, what="garbage event")
        time.sleep(0.5)
        run.stop()
    sent = {i * 10 for i in range(50)}
    raws = [s["raw"] for s in run.samples("p1")]
    assert set(raws) <= sent, "a value the firmware never sent was published"
    assert len(raws) >= 40  # noise may cost a neighbouring line, not most of them
    garbage = run.events("garbage")
    assert garbage[0]["data"]["count"] >= 1 and "device" in garbage[0]["data"]


def test_new_device_is_a_profile_file(tmp_path: Path, mosquitto: Mosquitto, run_factory: list[Run]) -> None:
    profiles = tmp_path / "my-profiles"
    profiles.mkdir()
    (profiles / "lab-slider.toml").write_text(
        textwrap.dedent("""
        spec = 1
        id = "lab-slider"
        name = "Our lab's slider: 'S=<value>;' at 57600 baud, 0..255"
        transport = "serial"
        source = "our own firmware"
        [serial]
        baud = 57600
        [framing]
        kind = "line"
        terminator = ";"
        pattern = 'S=(?P<pos>[0-9]{1,3})'
        [channels.pos]
        kind = "absolute"
        range = [0, 255]
        """)
    )
    with PtyDial(tmp_path) as dial:
        head = 'profile_dirs = ["my-profiles"]'
        cfg = config(
            tmp_path, mosquitto, dial_toml("s1", "lab-slider", dial.path, "[dials.scale]\nmin = 1\nmax = 9\n"), head
        )
        run = Run(tmp_path, mosquitto, cfg)
        run_factory.append(run)
        run.wait_connected("s1")
        play_lines(dial, [b";", b"S=0;", b"S=255;", b"S=127;"], 50)
        wait_for(lambda: len(run.samples("s1")) >= 3, what="slider samples")
        run.stop()
    samples = run.samples("s1")
    assert [(s["raw"], s["value"]) for s in samples] == [(0, 1.0), (255, 9.0), (127, pytest.approx(4.984314))]
    meta = [m["payload"] for m in run.messages() if m["topic"].endswith("/s1/meta")][-1]
    assert meta["profile"] == "lab-slider" and meta["scale"]["max"] == 9.0
