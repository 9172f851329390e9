"""`--baseline REF`: an earlier commit of the daemon, measured by the same harness in the same run.

The commit's tree is exported with `git archive` into the benchmark's work folder and the daemon
run from there (PYTHONPATH, as `--daq-src`): the writer, the subscriber, the broker and this
harness stay the current ones, so only the daemon differs. Per configuration the baseline runs
right before the current daemon (back to back, so both see the machine in the same mood), and
the report gives current / baseline for CPU per sample, p99 latency and p99 timestamp error.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from benchmarks.e2e.common import REPO

# What the ratios compare: current / baseline (below 1 = the current daemon does better).
RATIO_KEYS = {
    "cpu_us_per_sample": "cpu_us_per_sample_vs_baseline",
    "latency_p99_ms": "latency_p99_vs_baseline",
    "ts_error_p99_ms": "ts_error_p99_vs_baseline",
}


def export_tree(ref: str, dest: Path) -> tuple[Path, str]:
    """Export commit `ref` of this repository into `dest`; return the folder and the full commit id."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tar = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], capture_output=True, check=True)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        archive.extractall(dest, filter="data")
    if not (dest / "daq" / "__init__.py").is_file():
        raise RuntimeError(f"{ref} ({commit[:9]}) has no daq/ package")
    return dest, commit


def ratios(current: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """current / baseline for each of RATIO_KEYS both runs measured (a zero baseline gives none)."""
    out: dict[str, float] = {}
    for key, name in RATIO_KEYS.items():
        ours, theirs = current.get(key), baseline.get(key)
        if isinstance(ours, int | float) and isinstance(theirs, int | float) and theirs > 0:
            out[name] = round(ours / theirs, 3)
    return out


def ratio_ranges(current: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> dict[str, list[float]]:
    """[min, max] of each ratio over the rounds (round k of the current daemon against round k of the baseline)."""
    per_round = [ratios(c, b) for c, b in zip(current, baselines, strict=False)]
    out: dict[str, list[float]] = {}
    for name in RATIO_KEYS.values():
        values = [r[name] for r in per_round if name in r]
        if values:
            out[f"{name}_range"] = [min(values), max(values)]
    return out


def comparison_table(results: list[dict[str, Any]]) -> str:
    """One line per configuration: baseline -> current, and the ratio, for each compared figure."""
    head = f"{'dials':>5} {'Hz':>6}  {'us/sample base -> now':>24} {'x':>6}  {'p99 ms base -> now':>22} {'x':>6}"
    head += f"  {'ts p99 ms base -> now':>22} {'x':>6}  {'lost base/now':>13}  {'busy% base/now':>14}"
    lines = [head]
    for r in results:
        b = r.get("baseline")
        if not b:
            continue

        def cell(key: str, ratio: str, fmt: str, r: dict[str, Any] = r, b: dict[str, Any] = b) -> str:
            old, new, x = b.get(key), r.get(key), r.get(ratio)
            pair = f"{fmt.format(old) if old is not None else '-'} -> {fmt.format(new) if new is not None else '-'}"
            spread = r.get(f"{ratio}_range")
            ratio_text = "-" if x is None else f"{x:.2f}"
            if spread:
                ratio_text += f" ({spread[0]:.2f}-{spread[1]:.2f})"
            return f"{pair:>{22 if 'ms' in key else 24}} {ratio_text:>{18 if spread else 6}}"

        lines.append(
            f"{r['dials']:>5} {r['rate_hz']:>6g}  "
            + cell("cpu_us_per_sample", "cpu_us_per_sample_vs_baseline", "{:.0f}")
            + "  "
            + cell("latency_p99_ms", "latency_p99_vs_baseline", "{:.2f}")
            + "  "
            + cell("ts_error_p99_ms", "ts_error_p99_vs_baseline", "{:.3f}")
            + f"  {b.get('lost', '-')!s:>6}/{r.get('lost', '-')!s:<6}"
            + f"  {b.get('machine_busy_pct', '-')!s:>5}/{r.get('machine_busy_pct', '-')!s:<5}"
        )
    return "\n".join(lines)
