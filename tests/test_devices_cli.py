"""`daq devices`: as a real subprocess on this machine, and in-process with faked ports and hidapi."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import serial.tools.list_ports

from daq import cli
from daq.commands import devices
from daq.transports import ports

REPO = Path(__file__).resolve().parents[1]
REGISTERED = "daq.commands.devices" in cli.COMMAND_MODULES
# Until daq/cli.py lists the command, run the real CLI with it added (the module is the same).
DAQ = (
    [sys.executable, "-m", "daq"]
    if REGISTERED
    else [
        sys.executable,
        "-c",
        "import sys, daq.cli as c; c.COMMAND_MODULES += ('daq.commands.devices',); sys.exit(c.main(sys.argv[1:]))",
    ]
)

SHUTTLE_PROFILE = """
spec = 1
id = "test-shuttlexpress"
name = "Contour ShuttleXpress (test)"
transport = "hid"
source = "HARDWARE.md: ShuttleXpress 0b33:0020, byte1 uint8 jog counter"
[match]
usb = ["0b33:0020"]
[framing]
kind = "report"
[fields.jog]
offset = 1
[channels.jog]
kind = "counter"
"""


def daq_devices(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DAQ, "devices", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)


def test_registered_in_the_cli() -> None:
    if not REGISTERED:
        pytest.skip("daq/cli.py does not list 'daq.commands.devices' in COMMAND_MODULES yet: add it")


def test_on_this_machine_a_clear_message_and_exit_0() -> None:
    done = daq_devices()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    listing = [p for p in serial.tools.list_ports.comports() if p.vid is not None]
    if not listing:  # this machine: no USB serial port
        assert "No serial ports or HID devices found." in done.stdout or (
            "No USB serial ports or HID devices found." in done.stdout
        )
        assert "daq devices --udev-rules uaccess" in done.stdout
        assert "daq doctor" in done.stdout


def test_on_this_machine_json() -> None:
    done = daq_devices("--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert isinstance(rows, list)
    assert {p.device for p in serial.tools.list_ports.comports()} <= {r["path"] for r in rows}
    for row in rows:
        assert row["kind"] in ("serial", "hid")
        assert set(row) >= {"path", "usb", "serial_number", "location", "product", "by_id", "profiles", "config"}


def test_help() -> None:
    done = subprocess.run([*DAQ, "--help"], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    assert "with the firmware profile that fits each" in " ".join(done.stdout.split())


# ------------------------------------------------------------------------ in-process, faked


def run_devices(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="daq")
    devices.register(parser.add_subparsers())
    args = parser.parse_args(["devices", *argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def port(device: str, vid: int | None, pid: int | None, serial_number: str | None, product: str | None) -> Any:
    return SimpleNamespace(
        device=device, vid=vid, pid=pid, serial_number=serial_number, location="1-1.2:1.0", product=product
    )


class FakeHid:
    def __init__(self, entries: list[dict[str, Any]] | Exception) -> None:
        self.entries = entries

    def enumerate(self) -> list[dict[str, Any]]:
        if isinstance(self.entries, Exception):
            raise self.entries
        return self.entries


SHUTTLE = {
    "path": b"1-3:1.0",
    "vendor_id": 0x0B33,
    "product_id": 0x0020,
    "serial_number": "",
    "manufacturer_string": "Contour Design",
    "product_string": "ShuttleXpress",
    "interface_number": 0,
}
KEYBOARD = {**SHUTTLE, "path": b"1-4:1.0", "vendor_id": 0x046D, "product_id": 0xC31C, "product_string": "Keyboard"}


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A machine with an Uno (with a by-id link), a CH340 clone without a serial number,
    a Teensy, a built-in port, a ShuttleXpress and a keyboard."""
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    acm0 = tmp_path / "ttyACM0"
    acm0.touch()
    (by_id / "usb-Arduino__www.arduino.cc__0043_7583-if00").symlink_to(acm0)
    listed = [
        port(str(acm0), 0x2341, 0x0043, "7583", "Arduino Uno"),
        port("/dev/ttyUSB0", 0x1A86, 0x7523, None, "USB Serial"),
        port("/dev/ttyACM1", 0x16C0, 0x0483, "12345", "USB Serial"),
        port("/dev/ttyS0", None, None, None, None),
    ]
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: listed)
    monkeypatch.setattr(ports, "BY_ID_DIR", by_id)
    monkeypatch.setitem(sys.modules, "hid", FakeHid([SHUTTLE, KEYBOARD]))
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "shuttle.toml").write_text(SHUTTLE_PROFILE)
    return profiles


def test_lists_devices_with_profiles_and_a_snippet_that_is_valid_toml(
    machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_devices(capsys, "--dir", str(machine))
    assert code == 0
    assert "Serial ports:" in out
    assert "HID devices:" in out
    assert "profiles: arduino-encoder, arduino-pot, dialdaq-frame-v1" in out
    assert 'port = "' + str(machine.parent / "by-id" / "usb-Arduino__www.arduino.cc__0043_7583-if00") + '"' in out
    assert 'port = "/dev/ttyUSB0"' in out  # no by-id link, no serial number: the path
    assert 'usb = "16c0:0483"\n      serial_number = "12345"' in out  # no link, a serial number
    assert 'profile = "contour-shuttlexpress"\n      # or profile = "test-shuttlexpress"' in out
    assert "Keyboard" in out
    assert "no profile fits" in out
    assert "Other serial ports (built in, not USB): /dev/ttyS0" in out

    code, out, _ = run_devices(capsys, "--json", "--dir", str(machine))
    rows = {row["path"]: row for row in json.loads(out)}
    uno = rows[str(machine.parent / "ttyACM0")]
    assert uno["usb"] == "2341:0043"
    assert [p["id"] for p in uno["profiles"]] == ["arduino-encoder", "arduino-pot", "dialdaq-frame-v1"]
    snippets = {path: tomllib.loads(row["config"])["dials"][0] for path, row in rows.items() if row["config"]}
    assert snippets == {
        "/dev/ttyACM1": {"id": "dial1", "profile": "dialdaq-frame-v1", "usb": "16c0:0483", "serial_number": "12345"},
        "/dev/ttyUSB0": {"id": "dial2", "profile": "arduino-encoder", "port": "/dev/ttyUSB0"},
        str(machine.parent / "ttyACM0"): {"id": "dial3", "profile": "arduino-encoder", "port": uno["by_id"]},
        "1-3:1.0": {"id": "dial4", "profile": "contour-shuttlexpress", "port": "libusb:", "usb": "0b33:0020"},
    }
    assert rows["/dev/ttyS0"]["profiles"] == []


@pytest.mark.parametrize(
    ("hid_module", "note"),
    [
        (None, "hidapi is not usable"),  # not installed: import fails
        (FakeHid(OSError("hid_init failed")), "hid.enumerate() failed: hid_init failed"),
    ],
)
def test_hidapi_missing_or_failing_is_one_line_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], hid_module: Any, note: str
) -> None:
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: [])
    monkeypatch.setitem(sys.modules, "hid", hid_module)
    code, out, _ = run_devices(capsys)
    assert code == 0
    assert out.startswith("No serial ports or HID devices found.")
    assert note in out

    code, out, err = run_devices(capsys, "--json")
    assert json.loads(out) == []
    assert note in err


def test_a_broken_profile_dir_still_lists_devices(
    machine: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run_devices(capsys, "--dir", str(tmp_path / "nope"))
    assert code == 1
    assert "/dev/ttyUSB0" in out
    assert "profiles not loaded" in out
    assert "profile directory not found" in out
