"""benchmarks/cold_wakeups.py as a user runs it: its figures printed and in the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.procs import REPO


def test_the_cold_wakeup_probe_prints_a_factor_per_sleep(tmp_path: Path) -> None:
    out = tmp_path / "cold.json"
    script = REPO / "benchmarks" / "cold_wakeups.py"
    args = [sys.executable, str(script), "--sleeps", "0.01,0.05", "--repeats", "2", "--json", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "after  0.05 s:" in done.stdout
    rows = json.loads(out.read_text())["results"]
    assert [r["sleep_s"] for r in rows] == [0.0, 0.01, 0.05]  # the warm row is always measured first
    assert rows[0]["factor"] == 1.0 and all(r["cpu_us"] > 0 and r["factor"] > 0 for r in rows)


def test_the_gaps_can_be_spent_busy_instead_of_asleep(tmp_path: Path) -> None:
    out = tmp_path / "cold.json"
    script = REPO / "benchmarks" / "cold_wakeups.py"
    args = [sys.executable, str(script), "--sleeps", "0.01", "--repeats", "2", "--gap", "spin", "--json", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "work after a busy gap" in done.stdout
    doc = json.loads(out.read_text())
    assert doc["gap"] == "spin"
    assert [r["sleep_s"] for r in doc["results"]] == [0.0, 0.01]
