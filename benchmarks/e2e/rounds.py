"""`--rounds N`: each configuration measured N times, the figures reported as the rounds' medians.

On a shared machine one run of a few seconds says as much about the neighbours as about the
daemon. With a baseline the rounds alternate which daemon goes first (B C, C B, ...), so neither
always meets the machine right after the other. The row printed and written is the median of
each figure over the rounds (`lost`: the most of any round; a flag: set in any round); every
round's own figures stay in the JSON (`rounds`), and each ratio to the baseline gets the range
of the per-round ratios (`*_vs_baseline_range`).
"""

from __future__ import annotations

import statistics
from typing import Any

WORST = {"lost", "floor_lost", "lsl_lost"}  # counts where any round's loss must show


def merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several rounds of the same configuration (the first round's if only one)."""
    if len(rounds) == 1:
        return dict(rounds[0])
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for r in rounds for k in r):
        values = [r[key] for r in rounds if key in r]
        if all(v == values[0] for v in values):
            out[key] = values[0]  # the configuration itself (dials, rate_hz), or a figure every round agrees on
        elif all(isinstance(v, bool) for v in values):
            out[key] = any(values)
        elif all(isinstance(v, int | float) for v in values):
            out[key] = max(values) if key in WORST else round(statistics.median(values), 4)
        else:
            out[key] = values[0]
    out["rounds"] = [dict(r) for r in rounds]
    return out
