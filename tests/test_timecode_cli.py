"""Tests for `daq timecode`: a few real subprocess runs, the rest in-process through daq.cli.main."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daq.cli import main

REPO = Path(__file__).resolve().parents[1]


def daq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daq", "timecode", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lines(out: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in out.splitlines())


def test_subprocess_frame_to_drop_frame_timecode() -> None:
    proc = daq("--rate", "29.97df", "--frame", "17982")
    assert proc.returncode == 0, proc.stderr
    assert "timecode: 00:10:00;00" in proc.stdout.splitlines()
    # 17982 * 1001 / 30000 s, exact at six places.
    assert lines(proc.stdout) == {"frame": "17982", "timecode": "00:10:00;00", "seconds": "599.999400"}


def test_subprocess_drop_frame_timecode_to_frame() -> None:
    proc = daq("--rate", "29.97df", "--tc", "00:01:00;02")
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == {"frame": "1800", "timecode": "00:01:00;02", "seconds": "60.060000"}


def test_subprocess_invalid_label_exits_2() -> None:
    proc = daq("--rate", "29.97df", "--tc", "00:01:00;00")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("daq: error: ")
    assert "--tc" in proc.stderr
    assert "does not exist at 29.97df" in proc.stderr


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["timecode", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_seconds_exact_and_inexact(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--rate", "29.97", "--seconds", "3603.6")
    assert code == 0
    assert lines(out) == {"frame": "108000", "timecode": "01:00:00:00", "seconds": "3603.600000"}
    code, out, _ = run(capsys, "--rate", "29.97", "--frame", "1")
    assert lines(out)["seconds"] == "0.033367 (1001/30000)"


def test_default_rate_is_25(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--frame", "3702")
    assert code == 0
    assert lines(out) == {"frame": "3702", "timecode": "00:02:28:02", "seconds": "148.080000"}


def test_seconds_as_fraction_land_on_their_frame(capsys: pytest.CaptureFixture[str]) -> None:
    # 0.12 s at 25 fps is exactly the start of frame 3: the decimal is read exactly, not as a float.
    assert lines(run(capsys, "--seconds", "0.12")[1])["frame"] == "3"
    assert lines(run(capsys, "--seconds", "3/25")[1])["frame"] == "3"


def test_colon_label_at_drop_frame_comes_back_with_semicolon(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--rate", "29.97DF", "--tc", "00:01:00:02", "--json")
    assert code == 0
    assert json.loads(out) == {"rate": "29.97df", "frame": 1800, "timecode": "00:01:00;02", "seconds": 60.06}


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--rate", "23.98", "--frame", "0"], "--rate: unknown frame rate '23.98': allowed rates are"),
        (["--rate", "25df", "--frame", "0"], "--rate: frame rate '25df': 25 fps is always non-drop"),
        (["--tc", "25:00:00:00"], "--tc: '25:00:00:00': hours 25 out of range"),
        (["--tc", "00:00:00;00"], "--tc: '00:00:00;00' uses ';', which marks drop-frame, but rate 25"),
        (["--tc", "0:0:0:0"], "--tc: '0:0:0:0' is not a timecode"),
        (["--frame", "-1"], "--frame: frame -1 is outside one day"),
        (["--seconds", "abc"], "--seconds: 'abc' is not a number of seconds"),
        (["--seconds", "1/0"], "--seconds: '1/0' is not a number of seconds"),
        (["--seconds", "-0.5"], "--seconds: seconds -1/2 is negative"),
        (["--seconds", "86400"], "--seconds: 86400 s is frame 2160000, past the last timecode of the day"),
    ],
)
def test_errors_exit_2_with_message(capsys: pytest.CaptureFixture[str], args: list[str], why: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("daq: error: <command line>: ")
    assert why in err


def test_exactly_one_input_required(capsys: pytest.CaptureFixture[str]) -> None:
    for args in ([], ["--frame", "1", "--tc", "00:00:00:01"]):
        with pytest.raises(SystemExit) as exc:
            main(["timecode", *args])
        assert exc.value.code == 2
    assert "--frame" in capsys.readouterr().err
