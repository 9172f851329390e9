"""Where a run's timestamp-error tail comes from: per tick and per dial, from a folder `scripts/bench
--keep` left (each `daemon-NxR-*` run folder: `writes.bin`, `received.json`, `run.json`).

    .venv/bin/python benchmarks/ts_tail.py /tmp/dialdaq-bench-XXXX           # every run folder in it
    .venv/bin/python benchmarks/ts_tail.py /tmp/dialdaq-bench-XXXX --over 0.5 --show 5

ts error is the sample's `t_ns` less (the write time + the writer's wall-minus-monotonic offset), as
`benchmarks/run.py` computes it, over the ticks after the lead-in. Printed per run: the p50 / p99 /
max; how many ticks hold the samples over `--over` ms and how many such samples each holds (a tick
whose every later dial is late by the same amount is a stall of the reading path: one wait delayed
all of them, e.g. the reader process or the kernel's tty worker not running; dials late one by one
are the reads in series); which dials they are; and the `--show` worst ticks, dial by dial. This is
how the reader's waits for the kernel's tty worker were found (2026-12-02: whole ticks ~0.8 ms late
in 3 ticks in 100 at 64 x 100 Hz; README "Performance").
"""

from __future__ import annotations

import argparse
import array
import collections
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.e2e.analysis import percentile  # noqa: E402


def errors_ms(folder: Path) -> tuple[dict[str, Any], dict[tuple[int, int], float]]:
    """The run's parameters and (tick, dial) -> ts error in ms, for the ticks after the lead-in."""
    run = json.loads((folder / "run.json").read_text())
    got = json.loads((folder / "received.json").read_text())
    writes = array.array("q")
    writes.frombytes((folder / "writes.bin").read_bytes())
    n, lead, offset = run["dials"], run["lead"], run["offset_ns"]
    out: dict[tuple[int, int], float] = {}
    for dial, raw, t_ns in zip(got["dial"], got["raw"], got["t_ns"], strict=True):
        i, k = int(dial[1:]), int(raw)
        if k >= lead and k * n + i < len(writes) and (k, i) not in out:
            out[(k, i)] = (t_ns - writes[k * n + i] - offset) / 1e6
    return run, out


def report(folder: Path, over_ms: float, show: int) -> list[str]:
    run, errors = errors_ms(folder)
    if not errors:
        return [f"{folder.name}: no samples after the lead-in"]
    n = run["dials"]
    ordered = sorted(errors.values())
    late = [(k, i) for (k, i), e in errors.items() if e > over_ms]
    ticks = collections.Counter(k for k, _ in late)
    dials = collections.Counter(i for _, i in late)
    every = sorted({k for k, _ in errors})
    lines = [
        f"{folder.name}: {n} dials x {run['rate_hz']:g} Hz, {len(errors)} samples after the lead-in; ts error "
        f"p50 {percentile(ordered, 0.5):.3f} p99 {percentile(ordered, 0.99):.3f} max {ordered[-1]:.3f} ms",
        f"  over {over_ms:g} ms: {len(late)} samples in {len(ticks)} of {len(every)} ticks; samples per such tick: "
        + ", ".join(f"{size} in {count}" for size, count in sorted(collections.Counter(ticks.values()).items())),
        "  by dial: " + " ".join(f"{i}:{dials.get(i, 0)}" for i in range(n)),
    ]
    for k, _ in ticks.most_common(show):
        lines.append(f"  tick {k}: " + " ".join(f"{errors[(k, i)]:.2f}" if (k, i) in errors else "-" for i in range(n)))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept", type=Path, help="a folder `scripts/bench --keep` left, or one run folder in it")
    parser.add_argument("--over", type=float, default=0.5, help="the ts error (ms) that counts as late (0.5)")
    parser.add_argument("--show", type=int, default=3, help="how many of the worst ticks to print dial by dial (3)")
    args = parser.parse_args(argv)
    folders = [args.kept] if (args.kept / "run.json").exists() else sorted(args.kept.glob("daemon-*/"))
    folders = [f for f in folders if (f / "run.json").exists()]
    if not folders:
        print(f"no run folder with run.json in {args.kept} (run scripts/bench with --keep)", file=sys.stderr)
        return 2
    for folder in folders:
        print("\n".join(report(folder, args.over, args.show)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
