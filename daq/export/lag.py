"""Reaction lag: how many seconds each rater's trace trails the video, estimated from the raters themselves.

A rater who reacts L seconds late rates at media time t + L what the video showed at t; shifting
the trace by L (its value at t becomes the rating given at t + L) puts the rating on the moment it
is about. `--lag S` shifts every rater by S seconds. `--lag auto` estimates one lag per rater:

1. Every rater's held signal (see `daq.export.resample`) is taken every `step` seconds (default
   0.05) over the raters' media span, as its mean over a box as wide as the step or the dials'
   typical reading interval, whichever is longer (at most 0.5 s; see `box_means`).
2. All lags start at 0. In rounds (at most 10, until no lag moves by more than a tenth of a step), each
   rater in turn is compared with the mean of the others, each of those shifted by its current
   lag: the shift d (a whole number of steps within +/- max_lag) that maximises the Pearson r
   between the rater's trace shifted by d and that mean, over the points where both have a value
   (at least 20, and at least half the points the unshifted pair has), is the rater's new lag.
   A parabola through the best r and its two neighbours refines d below one step.
3. The data show only how the raters' lags DIFFER (the video carries no rating of its own), so
   the lags are then moved together until the smallest is `base` (default 0: the fastest rater is
   taken as the reference), and kept within [0, max_lag] (default 6 s; Mariooryad & Busso 2015
   report 1-6 s). Give `--lag-base S` when the fastest rater's own lag is known. A rater whose
   best r with the others stays below 0.2 (noise, or a different video) gets no estimate: its lag
   is the base, it is left out of the others' mean from the next round on and does not anchor
   them, and a note says so.
4. Each rater's lag is reported with the r it reaches against the mean of the (reliable) others,
   all shifted by their final lags, and the number of points that r is over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from daq.export.reader import ExportError
from daq.export.resample import EPS, HeldSignal

Vector = NDArray[np.float64]

DEFAULT_STEP_S = 0.05
DEFAULT_MAX_LAG_S = 6.0
MIN_POINTS = 20
MAX_ROUNDS = 10
MAX_BOX_S = 0.5
MIN_R = 0.2  # a rater whose best r with the others is below this gives no lag (and no anchor)


@dataclass(frozen=True, slots=True)
class LagEstimate:
    label: str
    lag_s: float
    r: float | None  # against the mean of the others, all shifted
    points: int


def box_means(signal: HeldSignal, centres: Vector, width: float) -> Vector:
    """The time-weighted mean of the held signal over [c - width/2, c + width/2) around each centre.

    NaN where the signal covers less than half of that. Point samples on a grid as fine as the
    dial's own readings would put each dial's sample phase into its lag (a dial read at 0.011 s
    past every grid point would look 0.039 s later than one read on the grid); a box mean does not.
    """
    if not signal.segments:
        return np.full(centres.shape, np.nan)
    starts = np.array([s.start for s in signal.segments])
    lengths = np.array([s.end - s.start for s in signal.segments])
    values = np.array([s.value for s in signal.segments])
    area_before = np.concatenate(([0.0], np.cumsum(values * lengths)[:-1]))
    cover_before = np.concatenate(([0.0], np.cumsum(lengths)[:-1]))

    def integrals(t: Vector) -> tuple[Vector, Vector]:
        index = np.searchsorted(starts, t, side="right") - 1
        safe = np.clip(index, 0, len(starts) - 1)
        inside = np.clip(t - starts[safe], 0.0, lengths[safe])
        area = np.where(index >= 0, area_before[safe] + values[safe] * inside, 0.0)
        cover = np.where(index >= 0, cover_before[safe] + inside, 0.0)
        return area, cover

    area_hi, cover_hi = integrals(centres + width / 2)
    area_lo, cover_lo = integrals(centres - width / 2)
    covered = cover_hi - cover_lo
    ok = covered >= width / 2
    return np.where(ok, (area_hi - area_lo) / np.where(ok, covered, 1.0), np.nan)


def typical_interval(signals: dict[str, HeldSignal]) -> float:
    """The median length of the held pieces: about the dials' reading interval (at most MAX_BOX_S)."""
    lengths = [s.end - s.start for signal in signals.values() for s in signal.segments]
    return min(float(np.median(lengths)), MAX_BOX_S) if lengths else 0.0


def masked_r(x: Vector, y: Vector) -> tuple[float | None, int]:
    """Pearson r over the points where both have a value, and how many those are."""
    both = ~(np.isnan(x) | np.isnan(y))
    n = int(both.sum())
    if n < 3:
        return None, n
    a, b = x[both], y[both]
    da, db = a - a.mean(), b - b.mean()
    den = math.sqrt(float(np.sum(da * da)) * float(np.sum(db * db)))
    if den == 0:
        return None, n
    return float(np.sum(da * db)) / den, n


def shifted(x: Vector, q: int) -> Vector:
    """x(t + q steps) on the same grid (NaN where that falls outside)."""
    out = np.full(x.shape, np.nan)
    if q >= 0:
        out[: len(x) - q] = x[q:]
    else:
        out[-q:] = x[: len(x) + q]
    return out


def mean_of(traces: list[Vector]) -> Vector:
    stack = np.vstack(traces)
    count = np.sum(~np.isnan(stack), axis=0)
    total = np.nansum(stack, axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def best_shift(x: Vector, y: Vector, max_q: int) -> tuple[float, float | None]:
    """(shift in steps, refined below one step; r at the best whole step) maximising r(x(t+d), y(t))."""
    _, base_n = masked_r(x, y)
    need = max(MIN_POINTS, base_n // 2)
    scores: dict[int, float] = {}
    for q in range(-max_q, max_q + 1):
        r, n = masked_r(shifted(x, q), y)
        if r is not None and n >= need:
            scores[q] = r
    if not scores:
        return 0.0, None
    q = max(scores, key=lambda k: (scores[k], -abs(k)))
    d = float(q)
    left, right = scores.get(q - 1), scores.get(q + 1)
    if left is not None and right is not None:
        curve = left - 2 * scores[q] + right
        if curve < 0:
            d += 0.5 * (left - right) / curve
    return d, scores[q]


def related(r: float | None) -> bool:
    """Whether a rater's best r with the others says anything (None: not computed yet)."""
    return r is None or r >= MIN_R


def estimate_lags(
    signals: dict[str, HeldSignal],
    *,
    step: float = DEFAULT_STEP_S,
    max_lag: float = DEFAULT_MAX_LAG_S,
    base: float = 0.0,
) -> tuple[dict[str, LagEstimate], list[str]]:
    """One lag per rater (see the module docstring), and notes on anything that limited the estimate."""
    if len(signals) < 2:
        raise ExportError("--lag auto needs at least two raters: a lag is estimated against the others")
    if not (0 <= base <= max_lag):
        raise ExportError(f"--lag-base {base:g}: give a lag from 0 to {max_lag:g} s")
    labels = list(signals)
    spans = [(s.segments[0].start, s.segments[-1].end) for s in signals.values() if s.segments]
    if len(spans) < 2:
        raise ExportError("--lag auto: fewer than two raters have any rating on media time")
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    times: Vector = lo + step * np.arange(math.floor((hi - lo) / step + EPS) + 1, dtype=np.float64)
    max_q = round(max_lag / step)
    notes: list[str] = []

    width = max(step, typical_interval(signals))

    def trace(label: str, lag: float) -> Vector:
        return box_means(signals[label], times + lag, width)

    lags = dict.fromkeys(labels, 0.0)
    reached: dict[str, float | None] = dict.fromkeys(labels)
    for rounds in range(MAX_ROUNDS):
        moved = 0.0
        # a rater found unrelated to the others (r below MIN_R) in the last round is left out of their mean
        references = [o for o in labels if not rounds or related(reached[o])]
        for label in labels:
            pool = [o for o in references if o != label] or [o for o in labels if o != label]
            others = mean_of([trace(o, lags[o]) for o in pool])
            d, r = best_shift(trace(label, 0.0), others, max_q)
            reached[label] = r
            if r is None or r < MIN_R:
                continue
            moved = max(moved, abs(d * step - lags[label]))
            lags[label] = d * step
        if moved <= step / 10 and rounds:
            break
    reliable = [label for label in labels if reached[label] is not None and related(reached[label])]
    for label in labels:
        if label not in reliable:
            lags[label] = 0.0
    offset = base - min((lags[label] for label in reliable), default=0.0)
    final = {label: lags[label] + offset if label in reliable else base for label in labels}
    for label in labels:
        if label not in reliable:
            r = reached[label]
            notes.append(
                f"{label}: no lag estimated (best r with the others {'-' if r is None else f'{r:.2f}'}, "
                f"below {MIN_R:g}); lag set to the base {base:g} s"
            )
    for label, lag in final.items():
        if lag > max_lag + EPS:
            notes.append(f"{label}: estimated lag {lag:.2f} s is beyond {max_lag:g} s; kept at {max_lag:g} s")
            final[label] = max_lag
    out: dict[str, LagEstimate] = {}
    for label in labels:
        pool = [o for o in reliable if o != label] or [o for o in labels if o != label]
        others = mean_of([trace(o, final[o]) for o in pool])
        r, n = masked_r(trace(label, final[label]), others)
        out[label] = LagEstimate(label, round(final[label], 3), r, n)
    return out, notes
