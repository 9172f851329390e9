"""The segments to ask about in the interview: `daq.export.segments` plus a minimum gap and a lag shift.

With gap 0 and lag 0 the selection is exactly `daq.export.segments.top_windows` (a test checks it;
both choose by `greedy_windows`): the N highest-mean windows of the group mean, greedily, best first,
no overlaps; then the N lowest.
- `gap_s`: two chosen windows are at least this far apart (start to end), rounded up to grid steps.
- `lag_s`: the rater reacts `lag_s` seconds after the video (Mariooryad & Busso 2015: 1-6 s), so a
  window of ratings at [t0, t1) is about the video at [t0 - lag, t1 - lag): segment times are shifted
  back by the lag (timecodes follow).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from daq.export.reader import ExportError
from daq.export.resample import Resampled
from daq.export.segments import Window, candidates, greedy_windows, window_points

MAX_COUNT = 20


def segment_key(kind: str, start_s: float, end_s: float) -> str:
    """The name an answer is filed under: the segment's kind and media times (to the millisecond)."""
    return f"{kind}:{start_s:.3f}-{end_s:.3f}"


def pick_segments(
    grid: Resampled,
    count: int,
    window_s: float,
    gap_s: float = 0.0,
    lag_s: float = 0.0,
    target: str = "mean",
) -> list[Window]:
    if not 1 <= count <= MAX_COUNT:
        raise ExportError(f"segments: give 1 to {MAX_COUNT}, not {count}")
    if not (math.isfinite(gap_s) and gap_s >= 0):
        raise ExportError(f"minimum gap {gap_s}: give 0 or more seconds")
    if not (math.isfinite(lag_s) and -60 <= lag_s <= 60):
        raise ExportError(f"lag {lag_s}: give -60 to 60 seconds")
    n = window_points(grid, window_s)
    apart = n + math.ceil(gap_s / grid.step - 1e-9)
    found = candidates(grid.series(target), n)
    return greedy_windows(grid, target, found, count, n, apart, lag_s)


def segment_json(window: Window) -> dict[str, Any]:
    body = asdict(window)
    body["key"] = segment_key(window.kind, window.start_s, window.end_s)
    return body
