"""benchmarks/hot_path.py drives the station's real per-sample path in one process: every sample of
every tick is published and acknowledged (it stops otherwise), and it prints and writes its figures."""

from __future__ import annotations

from pathlib import Path

from tests.support.bench_scripts import run_script, run_to_json
from tests.support.procs import REPO

SCRIPT = "hot_path.py"


def test_every_sample_is_published_and_acknowledged_and_the_figures_are_written(tmp_path: Path) -> None:
    stdout, result = run_to_json(SCRIPT, tmp_path / "hot.json", "--dials", "3", "--blocks", "2", "--ticks", "5")
    assert "3 dials, best of 2 blocks of 5 ticks, us per sample: pipeline" in stdout
    assert result["dials"] == 3 and result["blocks"] == 2
    assert set(result["best_us"]) == {"pipeline", "publish", "ack"}
    assert all(v > 0 for v in result["best_us"].values())
    assert result["best_total_us"] <= result["median_total_us"]
    assert Path(result["src"]) == REPO


def test_a_source_tree_without_daq_is_refused(tmp_path: Path) -> None:
    done = run_script(SCRIPT, "--src", str(tmp_path), timeout=60)
    assert done.returncode == 2
    assert f"--src {tmp_path}: no daq package there" in done.stderr


def test_pause_leaves_the_gap_between_ticks_asleep_or_busy(tmp_path: Path) -> None:
    results = {}
    for gap in ("sleep", "spin"):
        args = ("--dials", "2", "--blocks", "2", "--ticks", "5", "--pause", "0.004", "--gap", gap)
        stdout, results[gap] = run_to_json(SCRIPT, tmp_path / f"hot-{gap}.json", *args)
        assert f"2 dials, best of 2 blocks of 5 ticks 4 ms apart ({gap}), us per sample: pipeline" in stdout
        assert (results[gap]["pause_s"], results[gap]["gap"]) == (0.004, gap)
        # Every tick, the 50 warm-up ones included, waited its 4 ms at least, however loaded the machine.
        assert results[gap]["gaps_s"] >= 60 * 0.004
    # Asleep the gaps cost next to no CPU; spinning they cost CPU whenever the thread ran (how much
    # depends on what else the machine runs, so only the order is asserted).
    assert results["sleep"]["gaps_cpu_s"] < results["sleep"]["gaps_s"] / 2
    assert results["spin"]["gaps_cpu_s"] > 2 * results["sleep"]["gaps_cpu_s"] + 0.001  # here 0.24 s against 0.005


def test_a_pause_beyond_a_second_is_refused() -> None:
    done = run_script(SCRIPT, "--pause", "2", timeout=60)
    assert done.returncode == 2
    assert "--pause must be 0 to 1 s" in done.stderr
