"""The benchmark's comparison parts (benchmarks/e2e/baseline.py, rounds.py, run.py's configurations):
a commit exported whole, current / baseline ratios and their spread, rounds merged into medians, the
lead-in left out of latency."""

from __future__ import annotations

import argparse
import array
import subprocess
from pathlib import Path

import pytest

from benchmarks.e2e import baseline, rounds
from benchmarks.e2e.analysis import analyse
from benchmarks.run import QUICK, configurations


def test_a_commit_is_exported_with_its_daq_package(tmp_path: Path) -> None:
    tree, commit = baseline.export_tree("HEAD", tmp_path / "base")
    assert len(commit) == 40
    assert (tree / "daq" / "__init__.py").is_file() and (tree / "daq" / "cli.py").is_file()
    with pytest.raises(subprocess.CalledProcessError):
        baseline.export_tree("no-such-ref-anywhere", tmp_path / "none")


def test_ratios_are_current_over_baseline_and_the_rounds_give_their_spread() -> None:
    now = {"cpu_us_per_sample": 30.0, "latency_p99_ms": 5.0, "ts_error_p99_ms": 0.2}
    base = {"cpu_us_per_sample": 90.0, "latency_p99_ms": 10.0, "ts_error_p99_ms": 0.0}
    assert baseline.ratios(now, base) == {"cpu_us_per_sample_vs_baseline": 0.333, "latency_p99_vs_baseline": 0.5}
    spread = baseline.ratio_ranges([now, {**now, "latency_p99_ms": 20.0}], [base, base])
    assert spread == {
        "cpu_us_per_sample_vs_baseline_range": [0.333, 0.333],
        "latency_p99_vs_baseline_range": [0.5, 2.0],
    }
    table = baseline.comparison_table([{"dials": 16, "rate_hz": 100.0, "baseline": base, **now, **spread}])
    assert "90 -> 30" in table and "(0.50-2.00)" in table


def test_rounds_merge_into_medians_the_worst_loss_and_any_flag() -> None:
    one = {"dials": 16, "rate_hz": 100.0, "lost": 0, "latency_p99_ms": 3.0, "floor_gave_up": False}
    merged = rounds.merge(
        [one, {**one, "lost": 4, "latency_p99_ms": 9.0, "floor_gave_up": True}, {**one, "latency_p99_ms": 4.0}]
    )
    assert {k: v for k, v in merged.items() if k != "rounds"} == {
        "dials": 16,
        "rate_hz": 100.0,
        "lost": 4,
        "latency_p99_ms": 4.0,
        "floor_gave_up": True,
    }
    assert len(merged["rounds"]) == 3
    assert rounds.merge([one]) == one


def test_quick_runs_the_four_configurations() -> None:
    quick = argparse.Namespace(quick=True, dials="1", rates="100")
    assert configurations(quick) == QUICK == [(1, 100.0), (16, 100.0), (64, 100.0), (16, 1000.0)]
    full = argparse.Namespace(quick=False, dials="1,64", rates="100,1000")
    assert configurations(full) == [(1, 100.0), (1, 1000.0), (64, 100.0), (64, 1000.0)]


def test_the_lead_in_counts_for_loss_but_not_for_latency() -> None:
    """Ticks before `lead` are matched for loss only; the first tick's latency is reported alone."""
    n, ticks, lead = 2, 10, 3
    write_ns = array.array("q", [1_000_000_000 + k * 10_000_000 for k in range(ticks) for _ in range(n)])
    got: dict[str, list[int | str]] = {"dial": [], "raw": [], "t_ns": [], "recv_ns": []}
    for idx, written in enumerate(write_ns):
        k, i = divmod(idx, n)
        if (k, i) == (1, 1):
            continue  # lost in the lead-in: still counted
        late = 20_000_000 if k == 0 else 1_000_000  # the cold first tick: 20 ms, then 1 ms
        got["dial"].append(f"d{i:03d}")
        got["raw"].append(k)
        got["t_ns"].append(written)
        got["recv_ns"].append(written + late)
    out = analyse(n, write_ns, 0, got, "", ts=True, lead=lead)
    assert out["lost"] == 1
    assert out["latency_max_ms"] == 1.0  # the 20 ms ticks were in the lead-in
    assert out["first_ms"] == 20.0
    everything = analyse(n, write_ns, 0, got, "", ts=True)
    assert everything["latency_max_ms"] == 20.0 and everything["lost"] == 1


def test_the_banner_names_the_daemons_loop_only_as_far_as_the_harness_knows_it(tmp_path: Path) -> None:
    from benchmarks.e2e.options import Options
    from benchmarks.e2e.report import banner

    info = {"nproc": 2, "cpu": "cpu", "kernel": "6", "python": "3.11", "mosquitto": "mosquitto 2"}
    opts = Options(
        seconds=1, idle_seconds=0, drain_s=1, batch_max=None, linger_ms=None, max_inflight=None, uvloop=False,
        daq_src=None, alternatives=(), profile_dir=None, profile_format="raw", profile_gil=False, work=tmp_path,
        broker_port=1, broker_pid=1,
    )  # fmt: skip
    # Left to itself the daemon picks uvloop where it is installed: the banner must not call that asyncio.
    assert "daemon: its default event loop (uvloop where installed)," in banner(info, opts, False, None, None)
    assert "daemon: uvloop (--uvloop)," in banner(info, opts, True, None, None)
    opts.event_loop = "asyncio"
    assert "daemon: asyncio loop (--event-loop)," in banner(info, opts, False, None, None)
