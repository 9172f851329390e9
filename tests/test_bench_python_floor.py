"""benchmarks/python_floor.py: the fused minimal per-sample loop runs every tick of every dial through
its outbox-like file and socketpair, and prints and writes a figure per dial count and pause."""

from __future__ import annotations

from pathlib import Path

from tests.support.bench_scripts import run_script, run_to_json


def test_every_dial_count_and_pause_gets_a_figure(tmp_path: Path) -> None:
    args = ("--dials", "1,3", "--ticks", "5", "--pause", "0,0.002")
    stdout, doc = run_to_json("python_floor.py", tmp_path / "floor.json", *args, timeout=60)
    assert "   3 dials,     2 ms apart:" in stdout
    rows = doc["results"]
    assert [(r["dials"], r["pause_s"]) for r in rows] == [(1, 0.0), (1, 0.002), (3, 0.0), (3, 0.002)]
    assert all(r["ticks"] == 5 and 0 < r["p10_us"] <= r["median_us"] for r in rows)


def test_bad_arguments_are_refused_with_what_is_wrong() -> None:
    for args, says in (
        (("--dials", "0"), "--dials must be 1 to 1024"),
        (("--dials", "x"), "--dials takes whole numbers"),
        (("--pause", "2"), "--pause must be 0 to 1 s"),
    ):
        done = run_script("python_floor.py", *args, timeout=60)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)
