"""Latency, timestamp error and loss: what was written matched against what the subscriber received."""

from __future__ import annotations

import array
import math
from collections.abc import Sequence
from typing import Any

from benchmarks.e2e.common import dial_id


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence; nan when empty."""
    if not ordered:
        return float("nan")
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])


def stats_ms(values_ns: list[int] | list[float], prefix: str, scale: float = 1e-6) -> dict[str, float]:
    ordered = sorted(values_ns)
    return {
        f"{prefix}_p50_ms": round(percentile(ordered, 0.50) * scale, 4),
        f"{prefix}_p99_ms": round(percentile(ordered, 0.99) * scale, 4),
        f"{prefix}_max_ms": round(percentile(ordered, 1.0) * scale, 4),
    }


def match(
    n: int, first_raw: int, write_ns: array.array[int], got: dict[str, list[Any]]
) -> tuple[dict[tuple[int, int], tuple[int, int]], int]:
    """(dial index, raw) -> (t_ns, recv_ns) of its first receipt; and the number of duplicates."""
    seen: dict[tuple[int, int], tuple[int, int]] = {}
    dups = 0
    for dial, raw, t_ns, recv in zip(got["dial"], got["raw"], got["t_ns"], got["recv_ns"], strict=True):
        key = (int(dial[1:]), int(raw) - first_raw)
        if key in seen:
            dups += 1
        else:
            seen[key] = (t_ns, recv)
    return seen, dups


def analyse(
    n: int,
    write_ns: array.array[int],
    offset_ns: int,
    got: dict[str, list[Any]],
    prefix: str,
    ts: bool,
    lead: int = 0,
) -> dict[str, Any]:
    """Loss over every tick; latency and ts error over the ticks from `lead` on (the lead-in's are
    left out: see run.py --lead-in), and `first_ms`, the first tick's latency (its median over the
    dials): the first sample after the idle start."""
    seen, dups = match(n, 0, write_ns, got)
    latency: list[int] = []
    ts_error: list[int] = []
    first: list[int] = []
    lost = 0
    lost_examples: list[str] = []
    for idx, written in enumerate(write_ns):
        k, i = divmod(idx, n)
        hit = seen.get((i, k))
        if hit is None:
            lost += 1
            if len(lost_examples) < 10:
                lost_examples.append(f"{dial_id(i)}:{k}")
            continue
        t_ns, recv = hit
        if k == 0:
            first.append(recv - written)
        if k < lead:
            continue
        latency.append(recv - written)
        if ts:
            ts_error.append(t_ns - (written + offset_ns))
    out: dict[str, Any] = {
        f"{prefix}received": len(write_ns) - lost,
        f"{prefix}lost": lost,
        f"{prefix}duplicates": dups,
        f"{prefix}unexpected": len(seen) - (len(write_ns) - lost),
    }
    if lost_examples:
        out[f"{prefix}lost_examples"] = lost_examples
    out.update(stats_ms(latency, f"{prefix}latency"))
    out[f"{prefix}first_ms"] = round(percentile(sorted(first), 0.5) * 1e-6, 3)
    if ts:
        out.update(stats_ms(ts_error, "ts_error"))
    return out
