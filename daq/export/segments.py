"""Find the moments to ask about (the micro-process method): the most helpful and most hindering windows.

On the resampled grid (see `daq.export.resample`), a window is `n` consecutive grid values, with
n = window / step (the window must be a whole number of grid steps). A window starting at grid
point (or bin) t covers media time [t, t + window). Its score is the plain mean of its n values;
a window with any empty grid value is not a candidate.

Selection: the N windows with the highest mean (most helpful) are taken greedily, best first,
skipping any window that overlaps one already taken; then the N with the lowest mean (most
hindering) the same way, also skipping windows that overlap a helpful one. So all 2N windows are
mutually non-overlapping; with a minimum gap G (`--gap`), two chosen windows are also at least G
seconds apart. Ties go to the earlier window. "Helpful" and "hindering" are relative:
they are the highest and lowest windows of this signal, whatever side of the scale they are on.

The signal is one dial, or the group mean (the mean of the dials with a value at each grid point).
A reaction-lag shift (`--lag`) applies before resampling, so the windows are on the shifted traces.

When fewer than N windows of a kind fit, `select_segments` says how many did and why (no stretch
of complete signal as long as the window, or the rest overlap or lie within the gap of windows
already taken), instead of returning fewer silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from daq.export.reader import ExportError
from daq.export.resample import Resampled, timecode_at

Kind = Literal["helpful", "hindering"]
KINDS: tuple[Kind, ...] = ("helpful", "hindering")


@dataclass(frozen=True, slots=True)
class Window:
    target: str  # dial id, or "mean"
    kind: Kind
    rank: int  # 1 = most helpful / most hindering
    start_s: float
    end_s: float
    start_timecode: str | None
    end_timecode: str | None
    mean: float


def window_points(grid: Resampled, window_s: float) -> int:
    n = round(window_s / grid.step)
    if n < 1 or abs(n * grid.step - window_s) > 1e-6 * max(1.0, window_s):
        raise ExportError(
            f"--window {window_s:g}: give a whole number of grid steps ({grid.step:g} s), "
            f"e.g. {max(n, 1) * grid.step:g}"
        )
    return n


def candidates(values: list[float | None], n: int) -> list[tuple[int, float]]:
    """(start index, mean) of every full window of n values."""
    out: list[tuple[int, float]] = []
    for i in range(len(values) - n + 1):
        chunk = values[i : i + n]
        if all(v is not None for v in chunk):
            out.append((i, math.fsum(v for v in chunk if v is not None) / n))
    return out


def gap_points(grid: Resampled, gap_s: float) -> int:
    if not (gap_s >= 0 and math.isfinite(gap_s)):
        raise ExportError(f"--gap {gap_s:g}: give 0 or more seconds")
    return math.ceil(gap_s / grid.step - 1e-6)


def top_windows(
    grid: Resampled, target: str, count: int, window_s: float, gap_s: float = 0.0, notes: list[str] | None = None
) -> list[Window]:
    """The `count` most helpful then `count` most hindering windows of `target`, apart by `gap_s` at least."""
    if count < 1:
        raise ExportError(f"--segments {count}: give 1 or more")
    n = window_points(grid, window_s)
    gap = gap_points(grid, gap_s)
    found = candidates(grid.series(target), n)
    out = greedy_windows(grid, target, found, count, n, n + gap)
    for kind in KINDS:
        got = sum(w.kind == kind for w in out)
        if got < count and notes is not None:
            notes.append(shortfall(target, kind, got, count, window_s, gap_s, len(found)))
    return out


def greedy_windows(
    grid: Resampled, target: str, found: list[tuple[int, float]], count: int, n: int, apart: int, lag_s: float = 0.0
) -> list[Window]:
    """Of the `found` windows of `n` points, greedily the `count` highest means, then the `count` lowest.

    Best first; a window starts at least `apart` grid points from every window already taken (of
    either kind). Its times are shifted back by `lag_s` (see daq.study.picks).
    """
    taken: list[int] = []  # start indexes of windows already chosen
    out: list[Window] = []
    orders: list[tuple[Kind, list[tuple[int, float]]]] = [
        ("helpful", sorted(found, key=lambda c: (-c[1], c[0]))),
        ("hindering", sorted(found, key=lambda c: (c[1], c[0]))),
    ]
    for kind, ordered in orders:
        rank = 0
        for start, mean in ordered:
            if rank == count:
                break
            if any(abs(start - other) < apart for other in taken):
                continue
            taken.append(start)
            rank += 1
            t0 = grid.starts[start] - lag_s
            t1 = t0 + n * grid.step
            out.append(Window(target, kind, rank, t0, t1, timecode_at(t0, grid.rate), timecode_at(t1, grid.rate), mean))
    return out


def shortfall(target: str, kind: Kind, got: int, count: int, window_s: float, gap_s: float, candidates: int) -> str:
    """Why fewer than `count` windows of a kind fit."""
    head = f"{target}: only {got} of {count} {kind} windows of {window_s:g} s fit"
    if candidates == 0:
        return f"{head}: the signal has no {window_s:g} s stretch with a value at every grid point"
    apart = f" or lie within the {gap_s:g} s minimum gap of" if gap_s > 0 else " with"
    return (
        f"{head}: of the {candidates} full windows, the others overlap{apart} windows already taken "
        f"(the recording is too short for {2 * count} windows of {window_s:g} s"
        + (f" {gap_s:g} s apart)" if gap_s > 0 else ")")
    )


def find_segments(grid: Resampled, count: int, window_s: float, by: str = "mean", gap_s: float = 0.0) -> list[Window]:
    """Windows of the group mean (`by="mean"`), of each dial (`by="dial"`), or of one dial (its id)."""
    return select_segments(grid, count, window_s, by, gap_s)[0]


def select_segments(
    grid: Resampled, count: int, window_s: float, by: str = "mean", gap_s: float = 0.0
) -> tuple[list[Window], list[str]]:
    """`find_segments`, and a note for every kind of window of which fewer than `count` fit."""
    if by == "mean":
        targets = ["mean"]
    elif by == "dial":
        targets = grid.dials
    elif by in grid.values:
        targets = [by]
    else:
        raise ExportError(f"--segments-of {by!r}: give 'mean', 'dial' or one of the dials: {', '.join(grid.dials)}")
    notes: list[str] = []
    windows = [w for t in targets for w in top_windows(grid, t, count, window_s, gap_s, notes)]
    return windows, notes
