"""What every process of the end-to-end benchmark shares: names, the clock, the answer line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


PROFILE = REPO / "benchmarks" / "bench_profile.toml"


STATION = "bench"


FLOOR_STATION = "floor"


FLOOR_INFLIGHT = 256


FLOOR_GIVE_UP_S = 5.0  # the floor publisher stops when it is this far behind its schedule


PROFILE_EXT = {"flamegraph": "svg", "raw": "folded", "speedscope": "json"}


def emit(obj: dict[str, Any]) -> None:
    """A child's answer to the orchestrator: one JSON line on stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wall_mono_offset_ns() -> int:
    """Wall minus monotonic, as the daemon measures it (daq.readclock): best of a few brackets."""
    best: tuple[int, int] | None = None
    for _ in range(9):
        m0 = time.monotonic_ns()
        wall = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, wall - (m0 + m1) // 2)
    assert best is not None
    return best[1]


def sleep_until_due(due_ns: int) -> int:
    """Sleep until `due_ns` (monotonic); return how late it already was (0 if it was not)."""
    now = time.monotonic_ns()
    if due_ns > now:
        time.sleep((due_ns - now) / 1e9)
        return 0
    return now - due_ns


def sleep_until_ns(deadline_ns: int) -> None:
    delay = deadline_ns - time.monotonic_ns()
    if delay > 0:
        time.sleep(delay / 1e9)


def dial_id(index: int) -> str:
    return f"d{index:03d}"
