"""`daq profiles ...` as a lab runs it: real subprocesses, exit codes, what is printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
spec = 1
id = "lab-slider"
name = "Lab slider: 'S <position> <button>' lines"
transport = "serial"
source = "our own sketch, lab wiki page 12"

[match]
usb = ["1209:0001"]

[serial]
baud = 57600

[framing]
kind = "line"
pattern = 'S (?P<position>[0-9]{1,3}) (?P<knob>[01])'

[channels.position]
kind = "absolute"
range = [0, 255]

[buttons.knob]
"""

BROKEN = {
    "unknown_key": (GOOD.replace('name = "', 'colour = "red"\nname = "'), ": colour: unknown key"),
    "newer_spec": (GOOD.replace("spec = 1", "spec = 3"), ": spec: this profile needs dialdaq profile spec 3"),
    "bad_regex": (GOOD.replace("(?P<knob>[01])", "(?P<knob>[01]"), ": framing.pattern: not a valid regular"),
    "bad_usb_id": (GOOD.replace("1209:0001", "1209-0001"), ": match.usb[0]: write a USB id"),
    "toml_syntax": (GOOD.replace("baud = 57600", 'baud = "57600'), ": line 11: TOML syntax error"),
}


def daq(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAQ_")}
    return subprocess.run(
        [sys.executable, "-m", "daq", "profiles", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "lab-slider.toml").write_text(GOOD)
    return folder


def test_list_shows_bundled_and_extra_profiles(lab_dir: Path) -> None:
    result = daq("list", "--dir", str(lab_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "TRANSPORT", "NAME", "USB", "FILE"]
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert {"arduino-pot", "arduino-encoder", "dialdaq-frame-v1", "teensy-fast", "lab-slider"} <= set(by_id)
    assert "2341:0043" in by_id["arduino-pot"]
    assert by_id["arduino-pot"].endswith("firmware_profiles/arduino-pot.toml")
    assert by_id["lab-slider"].endswith(str(lab_dir / "lab-slider.toml"))


def test_check_good_files(lab_dir: Path) -> None:
    bundled = sorted(str(p) for p in (REPO / "firmware_profiles").glob("*.toml"))
    result = daq("check", *bundled, str(lab_dir / "lab-slider.toml"))
    assert result.returncode == 0, result.stderr
    assert f"ok {lab_dir / 'lab-slider.toml'} (lab-slider)" in result.stdout.splitlines()
    assert len(result.stdout.splitlines()) == len(bundled) + 1


def test_check_broken_files_exit_2_naming_file_and_key(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    bad = {}
    for case, (text, _words) in BROKEN.items():
        bad[case] = tmp_path / f"{case}.toml"
        bad[case].write_text(text)
    result = daq("check", str(good), *(str(p) for p in bad.values()))
    assert result.returncode == 2
    assert result.stdout.splitlines() == [f"ok {good} (lab-slider)"]
    assert "Traceback" not in result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == len(BROKEN)
    for (case, path), line in zip(bad.items(), errors, strict=True):
        assert line.startswith(f"error: {path}: "), line
        assert BROKEN[case][1] in line, line


def test_check_refuses_an_id_taken_by_a_bundled_profile(tmp_path: Path) -> None:
    clash = tmp_path / "mine.toml"
    clash.write_text(GOOD.replace('id = "lab-slider"', 'id = "arduino-pot"'))
    result = daq("check", str(clash))
    assert result.returncode == 2
    assert "arduino-pot.toml" in result.stderr
    assert f"{clash}: id:" in result.stderr


def test_decode_hex_with_a_bundled_profile() -> None:
    result = daq("decode", "dialdaq-frame-v1", "--hex", "AA 55 00 02 01 FC AA 55 00 02 01 FD")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {"channel": "position", "raw": 512},
        {"button": "press", "pressed": True},
        {"garbage": "bad checksum", "hex": "aa 55 00 02 01 fd"},
    ]


def test_decode_lines_and_only_garbage_exits_1() -> None:
    result = daq("decode", "arduino-pot", "--line", "512", "--line", "Ready")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [{"channel": "position", "raw": 512}]
    assert "1 ignored" in result.stderr

    result = daq("decode", "arduino-pot", "--line", "4096")
    assert result.returncode == 1
    assert json_lines(result.stdout) == [{"garbage": "position: 4096 is outside 0..1023", "hex": "34 30 39 36"}]


def test_decode_a_capture_file(tmp_path: Path) -> None:
    capture = tmp_path / "teensy.bin"
    capture.write_bytes(b"t,1,100\r\nt,2,4095\r\nt,3,\xff\r\nt,4,7")
    result = daq("decode", "teensy-fast", "--file", str(capture))
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {"channel": "position", "raw": 100},
        {"channel": "position", "raw": 4095},
        {"garbage": "not ascii text", "hex": "74 2c 33 2c ff 0d"},
    ]


def test_a_new_device_is_a_file(lab_dir: Path) -> None:
    """A lab adds a dial with a profile file only: by id with --dir, or by path."""
    result = daq("decode", "lab-slider", "--dir", str(lab_dir), "--line", "S 200 1", "--line", "S 300 0")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {"channel": "position", "raw": 200},
        {"button": "knob", "pressed": True},
        {"garbage": "position: 300 is outside 0..255", "hex": "53 20 33 30 30 20 30"},
    ]
    by_path = daq("decode", str(lab_dir / "lab-slider.toml"), "--hex", "53 20 37 20 30 0a")
    assert by_path.returncode == 0, by_path.stderr
    assert json_lines(by_path.stdout) == [{"channel": "position", "raw": 7}]


def test_decode_unknown_profile_suggests_the_closest(lab_dir: Path) -> None:
    result = daq("decode", "arduino-pott", "--line", "1")
    assert result.returncode == 2
    assert "unknown profile 'arduino-pott'" in result.stderr
    assert "known profiles are arduino-pot," in result.stderr


def test_decode_line_needs_a_line_profile() -> None:
    result = daq("decode", "dialdaq-frame-v1", "--line", "512")
    assert result.returncode == 2
    assert "--hex" in result.stderr


def test_schema_is_json_schema_that_accepts_the_bundled_profiles() -> None:
    result = daq("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == "Profile"
    assert {"spec", "id", "name", "transport", "source", "framing", "channels"} <= set(schema["required"])
