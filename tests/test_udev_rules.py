"""config/udev: the shipped rules are what scripts/gen-udev makes of the bundled profiles, and
they cover every bundled USB dial: its device nodes, and ModemManager kept off serial dials."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from daq.profiles.loader import ProfileRegistry
from tests.support.procs import REPO, clean_env, daq_cmd

UDEV = REPO / "config" / "udev"
FILES = {"70-dialdaq-uaccess.rules": 'TAG+="uaccess"', "70-dialdaq-group.rules": 'GROUP="dialdaq", MODE="0660"'}


def gen_udev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen-udev"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def lab_profiles(tmp_path: Path) -> Path:
    """A lab's folder of profiles: one serial dial of USB id 1209:abcd, "lab-slider"."""
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "slider.toml").write_text(
        'spec = 1\nid = "lab-slider"\nname = "Lab slider"\ntransport = "serial"\nsource = "a test"\n'
        '[match]\nusb = ["1209:abcd"]\n[serial]\nbaud = 9600\n'
        '[framing]\nkind = "line"\npattern = \'(?P<v>[0-9]+)\'\n[channels.v]\nkind = "absolute"\n'
    )
    return lab


def test_the_shipped_rules_are_the_generated_ones() -> None:
    done = gen_udev("--check")
    assert done.returncode == 0, f"{done.stderr}: run .venv/bin/python scripts/gen-udev"


def test_every_bundled_usb_dial_is_covered() -> None:
    profiles = list(ProfileRegistry.load())
    for name, grant in FILES.items():
        text = (UDEV / name).read_text()
        rules = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert all(grant in line or "ID_MM_DEVICE_IGNORE" in line or "dialdaq_end" in line for line in rules)
        for loaded in profiles:
            profile = loaded.profile
            for usb in profile.match.usb:
                vid, pid = usb.split(":")
                attrs = f'ATTRS{{idVendor}}=="{vid}", ATTRS{{idProduct}}=="{pid}"'
                nodes = {m.group(1) for m in re.finditer(r'SUBSYSTEM=="(\w+)"[^\n]*' + re.escape(attrs), text)}
                usb_node = f'ATTR{{idVendor}}=="{vid}", ATTR{{idProduct}}=="{pid}"'
                if profile.transport == "serial":
                    assert "tty" in nodes, (name, usb)
                    assert f'{attrs}, ENV{{ID_MM_DEVICE_IGNORE}}="1"' in text, (name, usb)
                if profile.transport == "hid":
                    assert {"hidraw", "input"} <= nodes and usb_node in text, (name, usb)
                if profile.transport == "evdev":
                    assert "input" in nodes, (name, usb)
                    assert f'KERNELS=="0005:{vid.upper()}:{pid.upper()}.*"' in text  # over Bluetooth too
    readme = (UDEV / "README.md").read_text()
    assert "daq devices --udev-rules uaccess > /tmp/70-dialdaq-uaccess.rules" in readme
    assert "sudo install -m 0644 /tmp/70-dialdaq-uaccess.rules /etc/udev/rules.d/" in readme
    assert "sudo cp config/udev/70-dialdaq-uaccess.rules /etc/udev/rules.d/" in readme
    assert "sudo udevadm control --reload && sudo udevadm trigger" in readme


def test_check_catches_stale_rules_and_a_lab_dir_adds_its_ids(tmp_path: Path) -> None:
    out = tmp_path / "rules"
    assert gen_udev("--out", str(out)).returncode == 0
    assert gen_udev("--out", str(out), "--check").returncode == 0
    (out / "70-dialdaq-group.rules").write_text("# edited by hand\n")
    done = gen_udev("--out", str(out), "--check")
    assert done.returncode == 1 and "stale" in done.stderr

    lab = lab_profiles(tmp_path)
    assert gen_udev("--dir", str(lab), "--out", str(out)).returncode == 0
    text = (out / "70-dialdaq-uaccess.rules").read_text()
    assert 'ATTRS{idVendor}=="1209", ATTRS{idProduct}=="abcd", ENV{ID_MM_DEVICE_IGNORE}="1"' in text
    assert "# lab-slider: Lab slider" in text


def test_an_installed_daq_prints_the_rules_itself(tmp_path: Path) -> None:
    """`daq devices --udev-rules VARIANT` (a wheel has no config/udev): the shipped files, and a lab's
    --dir profiles' ids besides; run away from the repository, as an installed daq is."""

    def printed(*args: str) -> str:
        done = subprocess.run(
            daq_cmd("devices", "--udev-rules", *args),
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    for variant, name in (("uaccess", "70-dialdaq-uaccess.rules"), ("group", "70-dialdaq-group.rules")):
        assert printed(variant) == (UDEV / name).read_text()
    lab = lab_profiles(tmp_path)
    assert "# lab-slider: Lab slider" in printed("uaccess", "--dir", str(lab))
    bad = subprocess.run(daq_cmd("devices", "--udev-rules", "everyone"), capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "invalid choice: 'everyone'" in bad.stderr
