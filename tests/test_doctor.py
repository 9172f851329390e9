"""`daq doctor` (and `daq devices`) as real subprocesses on this machine, which has no dials;
and in-process with the fakes of tests/support/fake_inputs.py and a fake /sys: present,
readable, claimed by a kernel driver, ModemManager, each with what to do."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import serial.tools.list_ports

from daq import cli
from daq.diagnose import doctor
from daq.profiles.input_codes import EV_KEY, EV_REL
from daq.transports import evdev_input, hid_enum, port_check, ports
from daq.transports.reader_host import realtime_permitted
from tests.support.fake_inputs import (
    FakeEvdevModule,
    FakeHidDial,
    FakeHidModule,
    FakeInputDial,
    FakeMidiController,
    FakeMidoModule,
    SysUsb,
    fake_rtmidi,
    make_sysfs,
)
from tests.support.procs import REPO

DAQ = [
    sys.executable,
    "-c",
    "import sys, daq.cli as c; c.COMMAND_MODULES += ('daq.commands.devices',) "
    "if 'daq.commands.devices' not in c.COMMAND_MODULES else (); sys.exit(c.main(sys.argv[1:]))",
]


def daq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DAQ, *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)


def write_config(path: Path, dials: str) -> Path:
    path.write_text('[station]\nid = "lab"\n' + dials)
    return path


ALL_KINDS = """
[[dials]]
id = "jog"
profile = "contour-shuttlexpress"
[[dials]]
id = "knob"
profile = "griffin-powermate-evdev"
[[dials]]
id = "fader"
profile = "korg-nanokontrol2"
[[dials]]
id = "pot"
profile = "arduino-pot"
usb = "2341:0043"
[[dials]]
id = "sim"
[dials.simulate]
"""


# ---------------------------------------------------------------- this machine, real processes


def test_doctor_without_config_checks_the_machine_and_exits_0() -> None:
    done = daq("doctor")
    assert done.returncode == 0, done.stderr
    assert "this machine:" in done.stdout
    assert "udev rules" in done.stdout
    assert "No dials checked: give the station config, daq doctor --config FILE" in done.stdout
    permitted = realtime_permitted()  # what the daemon's reader process would get here
    if permitted is not None:
        assert f"the reader process of serial and hidraw dials runs real-time (SCHED_FIFO {permitted})" in done.stdout
    else:
        assert "the reader process of serial and hidraw dials runs at normal priority" in done.stdout
        assert "rtprio 10" in done.stdout  # and how to grant it


def test_doctor_on_this_machine_says_what_is_missing_and_exits_1(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "daq.toml", ALL_KINDS)
    done = daq("doctor", "--config", str(cfg))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "Traceback" not in done.stderr
    assert "dial jog: profile contour-shuttlexpress (hid)" in out
    assert "no HID device matches 0b33:0020" in out
    assert "no serial port matches usb=2341:0043" in out
    assert "dial sim: simulated" in out
    assert "1 of 5 dials ready; not ready: jog, knob, fader, pot." in out
    if shutil.which("pgrep") is None or subprocess.run(["pgrep", "-x", "ModemManager"], check=False).returncode:
        assert "ModemManager is not running" in out
    for library, extra in (("evdev", "evdev"), ("mido", "midi")):
        if __import__("importlib").util.find_spec(library) is None:
            assert f"needs the '{library}' library: install it with pip install 'dialdaq[{extra}]'" in out

    done = daq("doctor", "--config", str(cfg), "--json")
    assert done.returncode == 1
    body = json.loads(done.stdout)
    assert [(d["dial"], d["ready"]) for d in body["dials"]] == [
        ("jog", False),
        ("knob", False),
        ("fader", False),
        ("pot", False),
        ("sim", True),
    ]
    assert set(body["dials"][0]) == {"dial", "profile", "transport", "node", "findings", "ready"}


def test_doctor_ready_config_exits_0_and_a_broken_one_exits_2(tmp_path: Path) -> None:
    ok = write_config(tmp_path / "ok.toml", '[[dials]]\nid = "sim"\n[dials.simulate]\n')
    done = daq("doctor", "--config", str(ok))
    assert done.returncode == 0 and "All 1 dials are ready." in done.stdout
    broken = write_config(tmp_path / "broken.toml", '[[dials]]\nid = "x"\nprofile = "no-such-dial"\n')
    done = daq("doctor", "--config", str(broken))
    assert done.returncode == 1 and "unknown profile" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[[dials]]\nid = 3\n")
    done = daq("doctor", "--config", str(bad))
    assert done.returncode == 2 and "daq: error:" in done.stderr


def test_devices_on_this_machine_is_a_clear_message() -> None:
    done = daq("devices")
    assert done.returncode == 0, done.stderr
    if not [p for p in serial.tools.list_ports.comports() if p.vid is not None]:
        assert "No serial ports or HID devices found." in done.stdout or "No USB serial ports" in done.stdout
        assert "daq doctor" in done.stdout


# ---------------------------------------------------------------- in-process, with fakes


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimpleNamespace:
    """A Linux machine with fake hidapi, evdev and mido, an empty /sys, no rules, no ModemManager."""
    sys_root = tmp_path / "sys"
    sys_root.mkdir()
    hidraw, libusb = FakeHidModule("hidraw"), FakeHidModule("hid")
    evdev, mido = FakeEvdevModule(), FakeMidoModule()
    monkeypatch.setitem(sys.modules, "hidraw", hidraw)
    monkeypatch.setitem(sys.modules, "hid", libusb)
    monkeypatch.setitem(sys.modules, "evdev", evdev)
    monkeypatch.setitem(sys.modules, "mido", mido)
    monkeypatch.setitem(sys.modules, "rtmidi", fake_rtmidi())
    monkeypatch.setattr(hid_enum, "SYS", sys_root)
    monkeypatch.setattr(hid_enum, "LINUX", True)
    monkeypatch.setattr(evdev_input, "INPUT_DIR", str(tmp_path / "input"))
    monkeypatch.setattr(doctor, "UDEV_RULES_DIRS", [tmp_path / "rules.d"])
    monkeypatch.setattr(doctor, "modemmanager_running", lambda: False)
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: [])
    monkeypatch.setattr(ports, "BY_ID_DIR", tmp_path / "by-id")
    readable: set[str] = set()
    monkeypatch.setattr(hid_enum, "can_open", lambda path: path in readable)  # the tests run as root
    return SimpleNamespace(
        tmp=tmp_path, sys=sys_root, hidraw=hidraw, libusb=libusb, evdev=evdev, mido=mido, readable=readable
    )


def run_doctor(capsys: pytest.CaptureFixture[str], cfg: Path) -> tuple[int, str, dict[str, Any]]:
    code = cli.main(["doctor", "--config", str(cfg)])
    text = capsys.readouterr().out
    assert cli.main(["doctor", "--config", str(cfg), "--json"]) == code
    out = capsys.readouterr()
    assert out.out, out.err
    body = json.loads(out.out)
    return code, text, {d["dial"]: d for d in body["dials"]}


def findings(report: dict[str, Any]) -> dict[str, tuple[str, str, str | None]]:
    return {f["check"]: (f["level"], f["message"], f["fix"]) for f in report["findings"]}


def test_a_present_readable_hid_dial_is_ready(machine: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    node = machine.tmp / "hidraw0"
    node.touch()
    make_sysfs(machine.sys, [SysUsb("1-3", 0x0B33, 0x0020, hidraw="hidraw0")])
    machine.hidraw.dials.append(FakeHidDial(str(node).encode(), 0x0B33, 0x0020, product="ShuttleXpress"))
    machine.readable.add(str(node))
    cfg = write_config(machine.tmp / "daq.toml", '[[dials]]\nid = "jog"\nprofile = "contour-shuttlexpress"\n')
    code, text, reports = run_doctor(capsys, cfg)
    assert code == 0, text
    f = findings(reports["jog"])
    assert f["present"][0] == "ok" and "location=1-3" in f["present"][1]
    assert f["readable"] == ("ok", f"{node} is readable and writable by you", None)
    assert f["driver"] == ("ok", "0b33:0020 (1-3): usbhid", None)
    assert "All 1 dials are ready." in text
    assert "`daq doctor --listen 5` also decodes what they send" in text  # ready is not yet decoding

    machine.readable.clear()  # the same dial, without the udev rules
    code, text, reports = run_doctor(capsys, cfg)
    assert code == 1
    level, message, fix = findings(reports["jog"])["readable"]
    assert level == "fail" and message.startswith(f"no permission: {node} is -rw")
    assert fix is not None and (
        "daq devices --udev-rules uaccess > /tmp/70-dialdaq-uaccess.rules && sudo install -m 0644" in fix
    )
    assert "FAIL  readable" in text and "fix: install the udev rules" in text

    # A lab's own profiles (profile_dirs): the rules that line installs cover them too.
    (machine.tmp / "lab profiles").mkdir()
    cfg = machine.tmp / "daq-lab.toml"
    cfg.write_text('profile_dirs = ["lab profiles"]\n' + cfg.with_name("daq.toml").read_text())
    code, text, reports = run_doctor(capsys, cfg)
    fix = findings(reports["jog"])["readable"][2]
    assert fix is not None and f"--udev-rules uaccess --dir '{machine.tmp / 'lab profiles'}' > /tmp/" in fix


def test_a_powermate_claimed_by_its_kernel_driver_points_to_the_evdev_profile(
    machine: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    make_sysfs(
        machine.sys, [SysUsb("1-2", 0x077D, 0x0410, driver="powermate", events=[("event5", "Griffin PowerMate")])]
    )
    machine.libusb.dials.append(FakeHidDial(b"1-2:1.0", 0x077D, 0x0410, product="Griffin PowerMate"))
    cfg = write_config(machine.tmp / "daq.toml", '[[dials]]\nid = "pm"\nprofile = "griffin-powermate-hid"\n')
    code, text, reports = run_doctor(capsys, cfg)
    assert "FAIL  driver" in text
    assert code == 1
    f = findings(reports["pm"])
    assert f["present"][0] == "fail" and "the kernel driver 'powermate' claims it" in f["present"][1]
    level, message, fix = f["driver"]
    assert level == "fail" and "claimed by the kernel driver 'powermate', not usbhid" in message
    assert fix is not None and fix.startswith("use the evdev profile (griffin-powermate-evdev")
    assert "port = 'libusb:'" in fix

    # The advice taken: through libusb it is present; its /dev/bus/usb node decides access.
    cfg.write_text(cfg.read_text() + 'port = "libusb:"\n')
    code, _, reports = run_doctor(capsys, cfg)
    f = findings(reports["pm"])
    assert f["library"] == ("ok", "hidapi, libusb backend", None)
    assert f["present"][0] == "ok"
    assert f["readable"][0] == "fail" and "/dev/bus/usb/001/005" in f["readable"][1]
    assert "detaches it while dialdaq reads" in f["driver"][1]


def test_input_device_present_readable_and_not(machine: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    machine.evdev.dials.append(
        FakeInputDial("/dev/input/event5", "Griffin PowerMate", 0x077D, 0x0410, {EV_REL: [7], EV_KEY: [0x100]})
    )
    machine.readable.add("/dev/input/event5")
    cfg = write_config(machine.tmp / "daq.toml", '[[dials]]\nid = "pm"\nprofile = "griffin-powermate-evdev"\n')
    code, text, reports = run_doctor(capsys, cfg)
    assert code == 0, text
    f = findings(reports["pm"])
    assert f["library"] == ("ok", "python-evdev 1.9.fake", None)
    assert f["present"][1] == "/dev/input/event5 'Griffin PowerMate' usb=077d:0410"
    assert all(h.closed for h in machine.evdev.handles)

    # Without the extra, sysfs still finds its node, which this user cannot open.
    machine.evdev.dials.clear()
    inputs = machine.tmp / "input"
    inputs.mkdir()
    (inputs / "event5").touch()
    make_sysfs(
        machine.sys, [SysUsb("1-2", 0x077D, 0x0410, driver="powermate", events=[("event5", "Griffin PowerMate")])]
    )
    sys.modules["evdev"] = None  # type: ignore[assignment]  # monkeypatch restores it
    machine.readable.clear()
    code, text, reports = run_doctor(capsys, cfg)
    assert code == 1
    f = findings(reports["pm"])
    assert f["library"][0] == "fail" and "pip install 'dialdaq[evdev]'" in f["library"][1]
    assert f["present"][0] == "ok" and f["present"][1].startswith(f"{inputs / 'event5'} ('Griffin PowerMate'")
    assert f["readable"][0] == "fail"


def test_midi_port_present(machine: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    machine.mido.controllers.append(FakeMidiController("X-TOUCH MINI:X-TOUCH MINI MIDI 1 28:0"))
    cfg = write_config(machine.tmp / "daq.toml", '[[dials]]\nid = "a1"\nprofile = "behringer-xtouch-mini"\n')
    code, text, reports = run_doctor(capsys, cfg)
    assert code == 0, text
    assert findings(reports["a1"])["present"] == ("ok", "MIDI input port 'X-TOUCH MINI:X-TOUCH MINI MIDI 1 28:0'", None)
    assert machine.mido.opened == []  # doctor looks, never opens


def test_serial_dial_and_modemmanager(
    machine: SimpleNamespace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tty = machine.tmp / "ttyACM0"
    tty.touch()  # a plain file standing in for the port: the fake /proc says it is a tty of the acm driver
    monkeypatch.setattr(port_check, "serial_node_kind", lambda path: port_check.NodeKind(True, "a tty (fake)"))
    monkeypatch.setattr(port_check, "holders", lambda path: [])
    uno = SimpleNamespace(device=str(tty), vid=0x2341, pid=0x0043, serial_number="7583", location="1-1", product="Uno")
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: [uno])
    monkeypatch.setattr(doctor, "modemmanager_running", lambda: True)
    machine.readable.add(str(tty))
    cfg = write_config(machine.tmp / "daq.toml", '[[dials]]\nid = "pot"\nprofile = "arduino-pot"\nusb = "2341:0043"\n')
    code, text, reports = run_doctor(capsys, cfg)
    assert code == 0, text  # a warning is not a failure
    level, message, fix = findings(reports["pot"])["modemmanager"]
    assert level == "warn" and "ModemManager is running" in message
    assert findings(reports["pot"])["kind"] == ("ok", "a tty (fake)", None)
    assert findings(reports["pot"])["in use"] == ("ok", "no other process has it open", None)
    assert fix is not None and "ID_MM_DEVICE_IGNORE" in fix
    assert "warn  modemmanager" in text

    rules = machine.tmp / "rules.d"
    rules.mkdir()
    shutil.copy(REPO / "config" / "udev" / "70-dialdaq-uaccess.rules", rules)
    code, text, reports = run_doctor(capsys, cfg)
    assert findings(reports["pot"])["modemmanager"][:2] == (
        "ok",
        "ModemManager runs; the installed udev rules tell it to ignore 2341:0043",
    )
    assert f"ok    udev rules   {rules / '70-dialdaq-uaccess.rules'}" in text


def test_devices_lists_input_devices_and_midi_ports_with_the_profile_that_fits(
    machine: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    machine.evdev.dials += [
        FakeInputDial("/dev/input/event20", "Surface Dial System Keyboard", 0x045E, 0x091B, {EV_KEY: [28, 57]}),
        FakeInputDial(
            "/dev/input/event21", "Surface Dial System Multi Axis", 0x045E, 0x091B, {EV_REL: [7], EV_KEY: [256]}
        ),
    ]
    machine.mido.controllers.append(FakeMidiController("nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0"))
    machine.mido.extra_names.append("Midi Through:Midi Through Port-0 14:0")
    machine.libusb.dials.append(FakeHidDial(b"1-2:1.0", 0x077D, 0x0410, product="Griffin PowerMate"))
    from daq.commands import devices

    code = (
        cli.main(["devices"])
        if "daq.commands.devices" in cli.COMMAND_MODULES
        else devices.handle(argparse.Namespace(json=False, dir=[]))
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Input devices:" in out and "MIDI ports:" in out and "HID devices:" in out
    assert "sends: BTN_0, REL_DIAL" in out
    assert 'profile = "microsoft-surface-dial"\n      usb = "045e:091b"' in out
    assert out.count('profile = "microsoft-surface-dial"') == 1  # not the keyboard node
    assert 'profile = "korg-nanokontrol2"\n      port = "nanoKONTROL2:nanoKONTROL2 MIDI 1"' in out
    assert "no hidraw node (a kernel driver other than usbhid holds it)" in out
    assert 'profile = "griffin-powermate-hid"' in out and 'port = "libusb:"' in out
