"""How much slower this machine runs work right after a sleep: the cost of a wake-up, in one number.

    .venv/bin/python benchmarks/cold_wakeups.py                 # sleeps of 0 .. 2 s, 7 repeats each
    .venv/bin/python benchmarks/cold_wakeups.py --json benchmarks/results/cold.json
    .venv/bin/python benchmarks/cold_wakeups.py --gap spin       # the gaps spent busy, not asleep

A fixed piece of work of the daemon's kind (a small dict encoded to JSON, a regex match, a loop
over a list: ~100-150 us warm) is timed (CPU time of the thread, and wall time) right after
sleeping S seconds, for each S; the factor is its median over the warm one (S = 0). On bare metal
it stays near 1-2x. On a virtual machine whose idle virtual CPU the host deschedules, the caches
and TLBs the work needs are someone else's when it wakes: on the 2-core VM of the README's
figures, work after a 1.5 s sleep ran 20-40x slower when the machine was otherwise quiet, and
about 1.5x when other work kept its CPUs awake. An idle station's CPU, a slow dial's CPU per
sample and the first sample after a pause are all wake-ups, so read their figures with this one.

`--gap spin` spends each gap in a busy loop on the same thread instead of asleep: the CPU never
idles, nothing is descheduled or woken, no other process of ours runs. If the factor stays, what
makes the work slow is the time that passed, not the sleep: on a shared host, other tenants' work
takes the caches meanwhile, and no wake-up design of ours can avoid that; only touching less code
and data per tick can (2026-12-02, the AMD EPYC VM: README "Performance").
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any

SLEEPS_S = (0.0, 0.01, 0.05, 0.2, 0.5, 1.0, 2.0)
LINE = re.compile(rb"^(-?\d+),(-?\d+)\r?$")


def work() -> int:
    """~100-150 us of what a daemon does per wake-up: parse, build, encode."""
    total = 0
    for i in range(400):
        m = LINE.match(b"%d,%d" % (i, -i))
        if m is not None:
            total += int(m.group(1))
    body = json.dumps({"v": 1, "dial": "d000", "seq": total, "raw": [total] * 8, "t_ns": time.time_ns()})
    return total + len(body)


def timed() -> tuple[float, float]:
    """(thread CPU us, wall us) of one work()."""
    c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
    work()
    return (time.thread_time_ns() - c0) / 1e3, (time.perf_counter_ns() - w0) / 1e3


def spin(seconds: float) -> None:
    """Stay busy on this thread for `seconds`: a loop over the clock, a few cache lines of code and data."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def measure(sleeps: tuple[float, ...], repeats: int, gap: str = "sleep") -> list[dict[str, Any]]:
    for _ in range(300):  # warm: the code compiled, the caches filled
        work()
    rows = []
    pause = spin if gap == "spin" else time.sleep
    for s in sleeps:
        cpu, wall = [], []
        for _ in range(repeats):
            if s:
                pause(s)
            c, w = timed()
            cpu.append(c)
            wall.append(w)
        rows.append(
            {"sleep_s": s, "cpu_us": round(statistics.median(cpu), 1), "wall_us": round(statistics.median(wall), 1)}
        )
    warm = rows[0]["cpu_us"] or 1e-9
    for row in rows:
        row["factor"] = round(row["cpu_us"] / warm, 1)
    return rows


def busy_pct(seconds: float = 1.0) -> float:
    """How busy the machine's CPUs were over `seconds` (/proc/stat), 100 = all of them."""

    def times() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    a, ai = times()
    time.sleep(seconds)
    b, bi = times()
    return round(100 * (1 - (bi - ai) / max(1, b - a)), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timings per sleep (the median is reported)")
    parser.add_argument("--sleeps", default=",".join(f"{s:g}" for s in SLEEPS_S), help="seconds, comma separated")
    parser.add_argument(
        "--gap", choices=("sleep", "spin"), default="sleep", help="spend each gap asleep (default) or busy on the CPU"
    )
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    sleeps = tuple(float(s) for s in args.sleeps.split(","))
    if not sleeps or sleeps[0] != 0.0:
        sleeps = (0.0, *sleeps)
    busy = busy_pct()
    rows = measure(sleeps, max(1, args.repeats), args.gap)
    how = "a sleep" if args.gap == "sleep" else "a busy gap"
    print(f"work after {how} (machine {busy:g}% busy before; median of {args.repeats}):")
    for row in rows:
        cpu, wall = f"{row['cpu_us']:>8.1f} us CPU", f"{row['wall_us']:>8.1f} us wall"
        print(f"  after {row['sleep_s']:>5g} s: {cpu} {wall}  x {row['factor']:g}")
    if args.json:
        doc = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "busy_pct": busy, "gap": args.gap, "results": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
