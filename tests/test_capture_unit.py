"""Issue 14 in-process: what a port is (daq.transports.port_check), input shown as text
(daq.profiles.input_text), the capture file (daq.diagnose.capture), its replay and the guided
checks (daq.diagnose.replay), and the daemon's one garbage warning (daq.station.device_reader)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from daq.diagnose.capture import CaptureWriter, read_capture
from daq.diagnose.replay import guided_checks, replay
from daq.exceptions import ProfileError
from daq.profiles.input_text import expectation, printable_text, shown
from daq.profiles.loader import ProfileRegistry
from daq.reading import Chunk, Garbage, Reading
from daq.station import device_reader
from daq.station.device_reader import DeviceReader
from daq.transports import port_check
from tests.ptydial import PtyDial
from tests.support.scripted import ScriptedTransport


def profile(name: str) -> Any:
    return ProfileRegistry.load([]).get(name).profile


# ---------------------------------------------------------------- port_check


def test_what_a_port_is(tmp_path: Path) -> None:
    plain = tmp_path / "ttyACM0"
    plain.write_text("")
    assert port_check.serial_node_kind(str(plain)) == port_check.NodeKind(False, "a regular file")
    assert port_check.serial_node_kind(str(tmp_path)).what == "a directory"
    assert port_check.serial_node_kind(str(tmp_path / "nothing")).serial is False
    null = port_check.serial_node_kind("/dev/null")
    assert null.serial is False and null.what == "a character device of the 'mem' driver (1:3), not a tty"
    with PtyDial(tmp_path) as dial:
        kind = port_check.serial_node_kind(str(dial.path))
        assert kind.serial is True and kind.what.startswith("a tty of the pty_slave driver (136:")


def test_who_holds_a_port(tmp_path: Path) -> None:
    with PtyDial(tmp_path) as dial:
        assert port_check.holders(str(dial.path)) == []  # this process is left out
        assert port_check.in_use_text(str(dial.path)) == "in use"
        code = (
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); "
            "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('locked', flush=True); time.sleep(30)"
        )
        locker = subprocess.Popen([sys.executable, "-c", code, dial.device], stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
            found = port_check.holders(str(dial.path))
            assert found is not None and [(h.pid, h.locked) for h in found] == [(locker.pid, True)]
            assert found[0].command.startswith("python -c import fcntl, os")
            assert len(found[0].command) <= port_check.COMMAND_CHARS  # cut: later arguments may be secrets
            assert port_check.in_use_text(dial.device) == f"in use by pid {locker.pid} ({found[0].command})"
        finally:
            locker.kill()
            locker.wait()
            locker.stdout.close()  # type: ignore[union-attr]


# ---------------------------------------------------------------- input_text


def test_input_as_text_where_printable() -> None:
    assert printable_text(b"512 ?\r\n") == "512 ?"
    assert printable_text("Grüße\n".encode()) == "Grüße"
    assert printable_text(b"\xaa\x55\x00") is None
    assert printable_text(b"ab\x07c") is None
    assert printable_text(b"x" * 100) == "x" * 57 + "..."
    assert shown(b"hello\n") == "'hello'"
    assert shown(bytes(range(40))) == "hex " + bytes(range(32)).hex(" ") + " ..."
    assert expectation(profile("arduino-pot")) == "lines matching the pattern '(?P<position>[0-9]{1,4})'"
    assert expectation(profile("dialdaq-frame-v1")).startswith("frames of 6 bytes starting with AA 55")


# ---------------------------------------------------------------- capture file and replay


def capture_file(tmp_path: Path, records: list[tuple[str, Any]], header: dict[str, Any] | None = None) -> Path:
    out = io.StringIO()
    writer = CaptureWriter(out, header or {"profile": "arduino-pot", "transport": "serial", "dial": {}})
    t = 1_000_000_000
    for kind, value in records:
        t += 10_000_000
        if kind == "chunk":
            writer.chunk(Chunk(value, t))
        else:
            writer.note(kind, value, t)
    writer.end()
    path = tmp_path / "capture.jsonl"
    path.write_text(out.getvalue())
    return path


def test_replay_decodes_as_the_daemon_does(tmp_path: Path) -> None:
    path = capture_file(
        tmp_path,
        [
            ("chunk", b"12\r\n"),  # the first line after opening: dropped, as `daq run` does
            ("chunk", b"0\r\n10"),
            ("chunk", b"23\r\n5"),  # a cut line ...
            ("gone", "unplugged"),  # ... is dropped where the device went away
            ("opened", "serial:x"),
            ("chunk", b"77\r\n"),  # the first line after reopening
            ("chunk", b"512\r\nzz\r\n"),
        ],
    )
    capture = read_capture(path)
    assert capture.header["format"] == "dialdaq-capture" and capture.header["version"] == 1
    assert [c.data for c in capture.chunks()][:2] == [b"12\r\n", b"0\r\n10"]
    result = replay(capture, profile("arduino-pot"))
    assert [(s["raw"], s["value"]) for s in result.samples()] == [(0, 0.0), (1023, 100.0), (512, 50.048876)]
    assert result.garbage == 0 and result.ignored >= 1  # zz: a banner (starts with a letter)
    # Counted as the daemon counts: the two first lines after an open, and the cut "5" at the unplug.
    discarded = [i for i in result.items if "discarded" in i]
    assert [i["text"] for i in discarded] == ["12", "5", "77"] and result.discarded == 3
    assert "before it went away" in discarded[1]["discarded"]
    offset = capture.header["wall_offset_ns"]
    assert result.samples()[0]["t_ns"] == 1_020_000_000 + offset


def test_read_capture_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    for text, problem in (
        ("", "not a dialdaq-capture file"),
        ('{"format": "other"}\n', "not a dialdaq-capture file"),
        ('{"format": "dialdaq-capture", "version": 1}\nnot json\n', "line 2: not JSON"),
        ('{"format": "dialdaq-capture", "version": 1}\n{"hex": "zz", "t_ns": 1}\n', 'a chunk needs "t_ns"'),
        ('{"format": "dialdaq-capture", "version": 9}\n', "newer than this dialdaq's 1"),
    ):
        bad.write_text(text)
        with pytest.raises(ProfileError, match=problem.replace("(", r"\(")):
            read_capture(bad)


def test_guided_checks(tmp_path: Path) -> None:
    pot = profile("arduino-pot")
    good = [("chunk", b"\r\n"), ("chunk", b"3\r\n"), ("mark", "low"), ("chunk", b"1020\r\n"), ("mark", "high")]
    checks = guided_checks(replay(read_capture(capture_file(tmp_path, good)), pot), has_buttons=False)
    assert [(c.name, c.passed) for c in checks] == [
        ("decodes", True),
        ("low end", True),
        ("high end", True),
        ("direction", True),
    ]
    half = [("chunk", b"\r\n"), ("chunk", b"300\r\n"), ("mark", "low"), ("chunk", b"700\r\n"), ("mark", "high")]
    checks = guided_checks(replay(read_capture(capture_file(tmp_path, half)), pot), has_buttons=True)
    by_name = {c.name: c for c in checks}
    assert not by_name["low end"].passed and "set calibration.raw_min = 300" in by_name["low end"].message
    assert not by_name["high end"].passed and "set calibration.raw_max = 700" in by_name["high end"].message
    assert by_name["direction"].passed
    assert not by_name["button"].passed
    unmarked = guided_checks(replay(read_capture(capture_file(tmp_path, good[:2])), pot), has_buttons=False)
    assert [c.message for c in unmarked if c.name == "low end"] == ["not marked in this capture"]
    assert json.loads(capture_file(tmp_path, good).read_text().splitlines()[-1])["end"] is True


# ---------------------------------------------------------------- the daemon's garbage warning


class ScriptDecoder:
    """Garbage for every chunk, except b'ok', which is a reading."""

    def feed(self, chunk: Chunk) -> list[Any]:
        if chunk.data == b"ok":
            return [Reading("position", 1, chunk.mono_ns)]
        return [Garbage("line does not match the profile's pattern", chunk.data, chunk.mono_ns)]

    ignored = 0

    def reset(self, *, after_gap: bool = False) -> bytes:
        return b""


def test_one_warning_after_5_s_of_only_garbage(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(device_reader, "GARBAGE_WARN_S", 0.2)
    events: list[tuple[str, dict[str, Any]]] = []
    chunks = [[Chunk(b"hello?\r\n", time.monotonic_ns())] for _ in range(3)]

    async def main(script: list[list[Chunk]], wait: float) -> None:
        reader = DeviceReader(
            ScriptedTransport(script, "fake:knob"),
            ScriptDecoder(),
            {},
            lambda kind, dial, message, data: events.append((kind, dict(data))),
            lambda dial, connected: None,
            expects="lines matching the pattern 'V=(?P<position>[0-9]+)'",
        )
        task = asyncio.create_task(reader.run())
        await asyncio.sleep(wait)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger="daq.station.device_reader"):
        asyncio.run(main(chunks, 0.6))
    warnings = [r.getMessage() for r in caplog.records if "nothing decoded" in r.getMessage()]
    assert warnings == [
        ": nothing decoded for 0 s, only garbage from fake:knob (3 inputs): last 'hello?' (line does not match "
        "the profile's pattern); the profile expects lines matching the pattern 'V=(?P<position>[0-9]+)'"
    ]
    garbage = [data for kind, data in events if kind == "garbage"]
    assert garbage[0]["sample_text"] == "hello?" and garbage[0]["sample_hex"] == "68 65 6c 6c 6f 3f 0d 0a"

    caplog.clear()  # a reading in time calls the warning off
    with caplog.at_level(logging.WARNING, logger="daq.station.device_reader"):
        asyncio.run(main([[Chunk(b"bad", 1)], [Chunk(b"ok", 2)]], 0.4))
    assert not [r for r in caplog.records if "nothing decoded" in r.getMessage()]
