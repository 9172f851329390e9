"""Issue 14: `daq profiles capture` records what a dial sends, and `daq profiles decode --capture`
replays it to the very samples `daq run` published from the same input; the guided capture asks
for each end and the button and checks them. Real processes, real ptys, a real Mosquitto."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from daq.transports import port_check
from tests.ptydial import PtyDial
from tests.support.procs import (
    REPO,
    Mosquitto,
    Sub,
    clean_env,
    daq_cmd,
    samples_of,
    start_daq,
    stop_process,
    wait_for,
    wait_stopped,
)

DIAL = """[[dials]]
id = "p1"
profile = "{profile}"
port = "{port}"
[dials.scale]
min = -1
max = 1
[dials.calibration]
invert = true
"""


class Console:
    """A daq command with a pipe for its stdin and everything it prints collected."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            daq_cmd(*args),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            start_new_session=True,
        )
        self.text = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while data := os.read(fd, 4096):
            with self._lock:
                self.text += data.decode(errors="replace")

    def wait_text(self, text: str, timeout: float = 20) -> None:
        wait_for(lambda: text in self.text, timeout=timeout, what=f"{text!r} in {self.text!r}")

    def answer(self, line: str = "") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> None:
        stop_process(self.proc)
        self._reader.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def decode_capture(profile: str, capture: Path) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run(
        daq_cmd("profiles", "decode", profile, "--capture", str(capture)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        check=False,
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def play(dial: PtyDial, lines: list[bytes], rate_hz: float) -> None:
    for line in lines:
        dial.write(line)
        time.sleep(1 / rate_hz)


def test_a_capture_replays_to_the_samples_the_daemon_published(tmp_path: Path, mosquitto: Mosquitto) -> None:
    rng = random.Random(14)
    values = [rng.randrange(4096) for _ in range(150)]
    lines = [b"\n", *(b"%d\n" % v for v in values[:75]), b"#comment\n", b"?12\n", *(b"%d\n" % v for v in values[75:])]
    capture = tmp_path / "p1.capture.jsonl"
    with PtyDial(tmp_path) as dial:
        cfg = tmp_path / "daq.toml"
        cfg.write_text(
            f'[station]\nid = "lab"\n[broker]\nurl = "{mosquitto.url}"\n'
            + DIAL.format(profile="teensy-fast", port=dial.path)
        )
        # 1. capture what the dial sends
        console = Console("profiles", "capture", "p1", "--config", str(cfg), "--seconds", "4", "--out", str(capture))
        try:
            console.wait_text("recording p1 for 4 s")
            play(dial, lines, 200)
            assert console.finish() == 0, console.text
        finally:
            console.stop()
        assert f"captured {len(lines)} reads" in console.text or "captured" in console.text
        assert f"replay it: daq profiles decode teensy-fast --capture {capture}" in console.text

        # 2. the daemon reads the same input
        sub = Sub(mosquitto.port, ["daq/lab/#"], tmp_path / "sub.jsonl")
        daemon = start_daq(["run", "--config", str(cfg)], tmp_path)
        try:
            wait_for(lambda: any(h.pid == daemon.pid for h in port_check.holders(str(dial.path)) or []), timeout=15)
            time.sleep(0.3)
            play(dial, lines, 200)
            wait_for(lambda: len(samples_of(sub.messages())) >= len(values), timeout=20, what="every sample")
        finally:
            assert stop_process(daemon) == 0, (tmp_path / "daq.log").read_text()[-2000:]
            wait_stopped(sub, "lab")
            sub.stop()
    published = [(s["raw"], s["value"]) for s in samples_of(sub.messages())]
    assert [raw for raw, _ in published] == values

    # 3. the capture, replayed, gives what the daemon published
    code, items, stderr = decode_capture("teensy-fast", capture)
    assert code == 0, stderr
    replayed = [(i["raw"], i["value"]) for i in items if "value" in i]
    assert replayed == published
    assert [i["garbage"] for i in items if "garbage" in i] == ["line does not match the profile's pattern"]
    assert [i["text"] for i in items if "garbage" in i] == ["?12"]
    times = [i["t_ns"] for i in items]
    assert times == sorted(times) and abs(times[0] - time.time_ns()) < 120e9  # wall-clock read times

    header, *records = [json.loads(line) for line in capture.read_text().splitlines()]
    assert header["format"] == "dialdaq-capture" and header["version"] == 1
    assert header["profile"] == "teensy-fast" and header["transport"] == "serial"
    assert header["dial"]["calibration"]["invert"] is True and header["dial"]["scale"]["min"] == -1
    chunks = [r for r in records if "hex" in r]
    assert b"".join(bytes.fromhex(r["hex"]) for r in chunks) == b"".join(lines)  # byte-exact
    assert records[-1]["end"] is True and records[-1]["chunks"] == len(chunks)


def guided(tmp_path: Path, dial: PtyDial, ends: tuple[int, int]) -> tuple[int, str, Path]:
    """A guided capture of an arduino-encoder dial: low end, high end, button."""
    cfg = tmp_path / "guided.toml"
    cfg.write_text(f'[station]\nid = "lab"\n[[dials]]\nid = "enc"\nprofile = "arduino-encoder"\nport = "{dial.path}"\n')
    out = tmp_path / f"enc-{ends[0]}-{ends[1]}.jsonl"
    console = Console("profiles", "capture", "enc", "--config", str(cfg), "--guided", "--out", str(out))
    try:
        console.wait_text("step 1 of 3: turn enc to the end where the rating is LOWEST (0)")
        play(dial, [b"READY\r\n", b"E:0\r\n", b"E:-4\r\n", b"E:%d\r\n" % ends[0]], 50)
        time.sleep(0.2)
        console.answer()
        console.wait_text("step 2 of 3: turn enc to the end where the rating is HIGHEST (100)")
        play(dial, [b"E:0\r\n", b"E:%d\r\n" % ends[1]], 50)
        time.sleep(0.2)
        console.answer()
        console.wait_text("step 3 of 3: press enc's button and let it go")
        play(dial, [b"B:1\r\n", b"B:0\r\n"], 50)
        time.sleep(0.2)
        console.answer()
        code = console.finish()
    finally:
        console.stop()
    return code, console.text, out


def test_guided_capture_checks_range_direction_and_button(tmp_path: Path) -> None:
    with PtyDial(tmp_path) as dial:
        code, text, out = guided(tmp_path, dial, (-10, 10))
        assert code == 0, text
        assert "PASS  decodes    4 readings of count, 0 garbage" in text
        assert "PASS  low end    raw -10 -> value 0" in text
        assert "PASS  high end   raw 10 -> value 100" in text
        assert "PASS  direction  the value goes from 0 to 100 as the dial turns" in text
        assert "PASS  button     button pressed and released" in text
        assert "PASS: 5 of 5 checks passed" in text
        # the file is a byte-exact test: replayed, the same checks come out
        replayed, items, stderr = decode_capture("arduino-encoder", out)
        assert replayed == 0, stderr
        assert "PASS: 5 of 5 checks passed" in stderr
        assert [i["raw"] for i in items if "raw" in i] == [-4, -10, 0, 10]  # the first E:0 is the counter's baseline

        # turned the wrong way round: the direction fails and says what to set
        code, text, _ = guided(tmp_path, dial, (10, -10))
    assert code == 1, text
    assert "FAIL  direction  the value falls (100 -> 0): set calibration.invert = true" in text
    assert "FAIL  low end    raw 10 -> value 100; the scale's low end is 0: set calibration.raw_min = 10" in text
    assert "FAIL: 2 of 5 checks passed" in text
