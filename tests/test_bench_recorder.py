"""benchmarks/recorder.py as a user runs it: a real Mosquitto, station and recorder; its figures in the JSON."""

from __future__ import annotations

from pathlib import Path

from tests.support.bench_scripts import run_to_json


def test_the_recorder_benchmark_records_a_station_and_says_what_it_cost(tmp_path: Path) -> None:
    args = ("--dials", "4", "--rate", "50", "--seconds", "2", "--settle", "1")
    stdout, doc = run_to_json("recorder.py", tmp_path / "rec.json", *args, timeout=120)
    got = doc["current"]
    assert "current: recorder CPU" in stdout and "samples/s" in stdout
    assert got["samples_per_s"] == 200
    assert got["samples"] >= 4 * 50, "the station ran its 2 s and the recorder wrote its samples"
    assert got["rows"] == got["samples"] and got["missing"] == 0
    assert 0 < got["recorder_cpu_pct"] < 100 and got["lag_s"] >= 0
