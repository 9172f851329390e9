"""`daq config example | files`, as a new user runs them (real subprocesses, away from the repository):
the example becomes a station's config that validates and that `daq doctor` passes; `files` lists
every shipped config; a missing config file points to the example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from daq.config import build_config, read_config_data
from tests.support.procs import REPO, clean_env


def daq(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daq", *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60
    )


def test_the_example_becomes_a_config_doctor_passes(tmp_path: Path) -> None:
    done = daq("config", "example", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (REPO / "config" / "daq.example.toml").read_text()
    cfg = tmp_path / "daq.toml"
    cfg.write_text(done.stdout)
    config = build_config(read_config_data(cfg), cfg)
    assert [d.id for d in config.dials] == ["p01", "p02"] and config.station.id == "lab-a"
    doctor = daq("doctor", "--config", "daq.toml", cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "a simulated dial: nothing to connect" in doctor.stdout


def test_files_lists_every_shipped_config(tmp_path: Path) -> None:
    done = daq("config", "files", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder, *listed = done.stdout.splitlines()
    names = [line.strip() for line in listed]
    shipped = sorted(
        p.relative_to(REPO / "config").as_posix()
        for p in (REPO / "config").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    )
    assert names == shipped and "mosquitto/mosquitto-tls.conf" in names and "brokers/emqx/emqx.conf" in names
    assert all((Path(folder) / name).is_file() for name in names)


def test_a_missing_config_file_points_to_the_example(tmp_path: Path) -> None:
    done = daq("run", "--config", "station.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert "station.toml" in done.stderr and "daq config example > daq.toml" in done.stderr
    verbless = daq("config", cwd=tmp_path)
    assert verbless.returncode == 2 and "VERB" in verbless.stderr  # argparse: example or files
