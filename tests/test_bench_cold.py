"""benchmarks/cold_wakeups.py as a user runs it: its figures printed and in the JSON."""

from __future__ import annotations

from pathlib import Path

from tests.support.bench_scripts import run_to_json


def test_the_cold_wakeup_probe_prints_a_factor_per_sleep(tmp_path: Path) -> None:
    stdout, doc = run_to_json("cold_wakeups.py", tmp_path / "cold.json", "--sleeps", "0.01,0.05", "--repeats", "2")
    assert "after  0.05 s:" in stdout
    rows = doc["results"]
    assert [r["sleep_s"] for r in rows] == [0.0, 0.01, 0.05]  # the warm row is always measured first
    assert rows[0]["factor"] == 1.0 and all(r["cpu_us"] > 0 and r["factor"] > 0 for r in rows)


def test_the_gaps_can_be_spent_busy_instead_of_asleep(tmp_path: Path) -> None:
    args = ("--sleeps", "0.01", "--repeats", "2", "--gap", "spin")
    stdout, doc = run_to_json("cold_wakeups.py", tmp_path / "cold.json", *args)
    assert "work after a busy gap" in stdout
    assert doc["gap"] == "spin"
    assert [r["sleep_s"] for r in doc["results"]] == [0.0, 0.01]
