"""Issue 14, a dial that never decodes is not invisible: `daq doctor --listen`, a port that is not a
serial port, a port another process holds, and `daq run`'s one warning after 5 s of garbage. Real
processes on real pseudo-terminals (tests/ptydial.py) and a real Mosquitto."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daq.transports import port_check
from tests.ptydial import PtyDial
from tests.support.procs import (
    REPO,
    Mosquitto,
    Sub,
    clean_env,
    daq_cmd,
    start_daq,
    stop_process,
    wait_for,
    wait_stopped,
)

NEVER_MATCHES = """spec = 1
id = "lab-knob"
name = "a lab's knob whose firmware prints V=<n>"
source = "a test"
transport = "serial"
[serial]
baud = 115200
[framing]
kind = "line"
pattern = 'V=(?P<position>[0-9]+)'
[channels.position]
kind = "absolute"
range = [0, 1023]
"""


def daq(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        daq_cmd(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout, env=clean_env(), check=False
    )


def station(tmp_path: Path, dial: str, broker: str = "mqtt://127.0.0.1:1") -> Path:
    cfg = tmp_path / "daq.toml"
    cfg.write_text(f'[station]\nid = "lab"\n[broker]\nurl = "{broker}"\n[[dials]]\nid = "k1"\n{dial}')
    return cfg


class Sender:
    """Writes `line` to the dial every `period` s in a thread, until stopped."""

    def __init__(self, dial: PtyDial, line: bytes, period: float = 0.02) -> None:
        self.dial, self.line, self.period = dial, line, period
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.dial.write(self.line)
            self.sent += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def knob(tmp_path: Path) -> Iterator[tuple[PtyDial, Path]]:
    profile = tmp_path / "lab-knob.toml"
    profile.write_text(NEVER_MATCHES)
    with PtyDial(tmp_path) as dial:
        yield dial, station(tmp_path, f'profile = "{profile}"\nport = "{dial.path}"\n')


def test_listen_on_a_dial_whose_pattern_never_matches_says_why_and_quotes_the_input(
    knob: tuple[PtyDial, Path],
) -> None:
    dial, cfg = knob
    sender = Sender(dial, b"512\r\n")
    try:
        done = daq("doctor", "--config", str(cfg), "--listen", "3")
        as_json = daq("doctor", "--config", str(cfg), "--listen", "1", "--json")
    finally:
        sender.stop()
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "Traceback" not in done.stderr
    assert "ok    kind         a tty of the pty_slave driver" in out
    assert "FAIL  readings     none in 3 s: nothing the device sent decoded" in out
    assert "inputs did not decode (" in out and "x line does not match the profile's pattern); the last: '512'" in out
    assert "the profile lab-knob expects lines matching the pattern 'V=(?P<position>[0-9]+)'" in out
    assert "--line 512" in out  # the way to try it, with the offending input
    assert "-> not ready (readings, garbage)" in out
    assert "0 of 1 dials ready; not ready: k1." in out
    assert "All 1 dials are ready" not in out

    assert as_json.returncode == 1
    body = json.loads(as_json.stdout)
    garbage = next(f for f in body["dials"][0]["findings"] if f["check"] == "garbage")
    assert garbage["level"] == "fail" and "'512'" in garbage["message"]


def lines_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    """`proc`'s stdout lines up to the first one holding `needle` (failing after `timeout` s)."""
    assert proc.stdout is not None
    stdout, lines, found = proc.stdout, [], threading.Event()

    def read() -> None:
        for line in stdout:
            lines.append(line)
            if needle in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert found.wait(timeout), f"no line with {needle!r} in {timeout} s: {lines}"
    reader.join()
    return lines


def test_listen_on_a_dial_that_decodes_shows_readings_range_and_buttons(tmp_path: Path) -> None:
    with PtyDial(tmp_path) as dial:
        cfg = station(tmp_path, f'profile = "arduino-encoder"\nport = "{dial.path}"\n')

        doctor = subprocess.Popen(
            daq_cmd("doctor", "--config", str(cfg), "--listen", "2"),
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
            start_new_session=True,
        )
        try:
            # The profile's settle_s is 2 s (what comes before is dropped, as by the daemon): the doctor
            # says when it reads the port, and the lines are written then.
            said = lines_until(doctor, f"{dial.path}: reading now", timeout=30)
            for line in (b"READY\r\n", b"E:0\r\n", b"E:4\r\n", b"B:1\r\n", b"E:-3\r\n", b"B:0\r\n", b"E:x!\r\n"):
                dial.write(line)
                time.sleep(0.05)
            stdout, _ = doctor.communicate(timeout=30)
            stdout = "".join(said) + stdout
        finally:
            stop_process(doctor)
    done = subprocess.CompletedProcess(doctor.args, doctor.returncode, stdout, "")
    out = done.stdout
    assert done.returncode == 0, out
    assert "ok    readings     2 readings of count: raw -3..4, value 35..70 (last 35)" in out
    assert "warn  garbage      1 inputs did not decode (1 x line does not match the profile's pattern); " in out
    assert "the last: 'E:x!'" in out
    assert "ok    buttons      button: 1 pressed, 1 released" in out
    assert "All 1 dials are ready." in out


@pytest.mark.parametrize("port", ["/dev/null", "plain-file"])
def test_a_port_that_is_not_a_serial_port_fails(tmp_path: Path, port: str) -> None:
    if port == "plain-file":
        port = str(tmp_path / "ttyACM0")
        Path(port).write_text("")
        found = "a regular file"
    else:
        found = "a character device of the 'mem' driver (1:3), not a tty"
    cfg = station(tmp_path, f'profile = "arduino-pot"\nport = "{port}"\n')
    done = daq("doctor", "--config", str(cfg))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAIL  kind         {port} is not a serial port: it is {found}" in done.stdout
    assert "All 1 dials are ready" not in done.stdout and "readable" not in done.stdout
    listened = daq("doctor", "--config", str(cfg), "--listen", "1")
    assert listened.returncode == 1
    assert "not listened to: fix what FAILed above first" in listened.stdout


def test_a_port_held_by_a_running_daemon_names_the_process(tmp_path: Path, mosquitto: Mosquitto) -> None:
    with PtyDial(tmp_path) as dial:
        cfg = station(tmp_path, f'profile = "teensy-fast"\nport = "{dial.path}"\n', mosquitto.url)
        node = dial.device
        daemon = start_daq(["run", "--config", str(cfg)], tmp_path)
        try:
            wait_for(
                lambda: any(h.locked and h.pid == daemon.pid for h in port_check.holders(str(dial.path)) or []),
                timeout=15,
                what="the daemon's lock on the port",
            )
            done = daq("doctor", "--config", str(cfg))
            listened = daq("doctor", "--config", str(cfg), "--listen", "1")
        finally:
            stop_process(daemon)
    out = done.stdout
    assert done.returncode == 1, out
    assert f"FAIL  in use       {node} is in use by pid {daemon.pid} (python -m daq run)" in out
    assert "it holds the port's lock" in out
    assert "fix: stop that program" in out
    assert listened.returncode == 1 and "not listened to" in listened.stdout


def test_run_warns_once_after_5_s_of_only_garbage_quoting_input_and_pattern(
    knob: tuple[PtyDial, Path], tmp_path: Path, mosquitto: Mosquitto
) -> None:
    dial, cfg = knob
    cfg.write_text(cfg.read_text().replace("mqtt://127.0.0.1:1", mosquitto.url))
    sub = Sub(mosquitto.port, ["daq/lab/#"], tmp_path / "sub.jsonl")
    daemon = start_daq(["run", "--config", str(cfg)], tmp_path)
    log = tmp_path / "daq.log"
    warning = "k1: nothing decoded for 5 s, only garbage from serial:"
    try:
        wait_for(lambda: any(h.pid == daemon.pid for h in port_check.holders(str(dial.path)) or []), timeout=15)
        sender = Sender(dial, b"512 ?\r\n", period=0.05)
        try:
            wait_for(lambda: warning in log.read_text(), timeout=15, what="the garbage warning")
            time.sleep(6)  # garbage goes on: still one warning
        finally:
            sender.stop()
        dial.write(b"V=7\r\n")  # it decodes at last
        wait_for(lambda: '"raw":7' in (tmp_path / "sub.jsonl").read_text(), what="the sample")
    finally:
        code = stop_process(daemon)
        if code == 0:
            wait_stopped(sub, "lab")
        sub.stop()
    text = log.read_text()
    assert code == 0, text[-2000:]
    lines = [line for line in text.splitlines() if warning in line]
    assert len(lines) == 1, text
    assert "last '512 ?' (line does not match the profile's pattern)" in lines[0]
    assert "the profile expects lines matching the pattern 'V=(?P<position>[0-9]+)'" in lines[0]
    events = [m["payload"] for m in sub.messages() if m["topic"] == "daq/lab/events"]
    garbage = [e for e in events if e["kind"] == "garbage"]
    assert garbage and garbage[0]["data"]["sample_text"] == "512 ?"
    assert garbage[0]["data"]["sample_hex"] == "35 31 32 20 3f 0d"  # the line as read; the text drops its line end
