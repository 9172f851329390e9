"""The --hardware tier: `daq doctor --listen`, a capture and its replay, and the guided checks,
against a dial attached to this machine (skipped without --hardware, see tests/conftest.py).

    DIALDAQ_HW_CONFIG=station.toml DIALDAQ_HW_DIAL=p1 pytest --hardware -s tests/hardware

Turn the dial while the listen and the capture run (a dial that sends only when it moves is
quiet at rest). DIALDAQ_HW_GUIDED=1 adds the guided capture, which asks on the terminal (hence
-s); its file is kept in DIALDAQ_HW_KEEP (a folder) when given: copy it to tests/captures/ and
it is replayed by tests/test_captures.py from then on, byte-exact, without the hardware.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.procs import REPO, clean_env, daq_cmd

pytestmark = pytest.mark.hardware


@pytest.fixture
def station() -> tuple[Path, str]:
    config = os.environ.get("DIALDAQ_HW_CONFIG")
    if not config:
        pytest.skip("set DIALDAQ_HW_CONFIG to the station config of the attached dial (and DIALDAQ_HW_DIAL)")
    dial = os.environ.get("DIALDAQ_HW_DIAL", "")
    if not dial:
        import tomllib

        dial = tomllib.loads(Path(config).read_text())["dials"][0]["id"]
    return Path(config), dial


def daq(*args: str, interactive: bool = False) -> subprocess.CompletedProcess[str]:
    if interactive:  # the terminal's stdin and stdout: the prompts reach the person at the dial
        return subprocess.run(daq_cmd(*args), cwd=REPO, env=clean_env(), text=True, timeout=600, check=False)
    return subprocess.run(
        daq_cmd(*args), cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=120, check=False
    )


def test_doctor_listen_decodes_the_attached_dial(station: tuple[Path, str]) -> None:
    config, _ = station
    print("\nturn the dial (and press its button) for the next seconds ...")
    done = daq("doctor", "--config", str(config), "--listen", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    readings" in done.stdout


def test_a_capture_of_the_attached_dial_replays_to_readings(station: tuple[Path, str], tmp_path: Path) -> None:
    config, dial = station
    out = tmp_path / "capture.jsonl"
    print("\nturn the dial for the next 5 seconds ...")
    done = daq("profiles", "capture", dial, "--config", str(config), "--seconds", "5", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    profile = done.stdout.rsplit("daq profiles decode ", 1)[1].split(" --capture")[0]
    replayed = daq("profiles", "decode", profile, "--capture", str(out))
    assert replayed.returncode == 0, replayed.stderr
    assert '"value"' in replayed.stdout


def test_guided_capture_of_the_attached_dial_passes(station: tuple[Path, str], tmp_path: Path) -> None:
    if not os.environ.get("DIALDAQ_HW_GUIDED"):
        pytest.skip("set DIALDAQ_HW_GUIDED=1 (and run pytest with -s) for the guided capture")
    config, dial = station
    out = tmp_path / f"{dial}-guided.jsonl"
    done = daq("profiles", "capture", dial, "--config", str(config), "--guided", "--out", str(out), interactive=True)
    keep = os.environ.get("DIALDAQ_HW_KEEP")
    if keep:
        shutil.copy(out, Path(keep) / out.name)
    assert done.returncode == 0, "a guided check FAILed: see its lines above"
