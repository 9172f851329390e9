"""Resample dial recordings onto the MEDIA timeline (`media_s`), not onto read time (`t_ns`).

The rules, in the order they apply:

1. Samples whose `media_s` is null (no media clock ran) are left out.
2. The remaining samples are taken in read-time order (`t_ns`; ties keep file order) and cut into
   *passes*: a new pass starts wherever `media_s` goes backwards (a seek back, or a replay of a
   passage). Forward seeks and pauses stay in the same pass.
3. Within a pass, each sample's value is *held* from its `media_s` until the next sample of the
   pass, but for at most `max_hold` seconds of media time (default 1 s). So across a gap longer
   than `max_hold` the signal is empty from `max_hold` after the last sample until the next one,
   and the last sample of a pass is held for `max_hold`. Several samples at the same `media_s`
   (the video paused while the dial turned): the latest one counts.
4. Seeks back: the later rating of the same media moment wins. A pass *rated* a stretch of media
   time when the stretch lies between two of its samples at most `max_hold` apart; where several
   passes rated the same moment, the latest pass wins. A hold after a pass's last sample or into a
   gap (a *trailing* hold) is a guess, not a rating: it never replaces a rating of another pass,
   and where only trailing holds cover a moment, the one from the latest sample in media time wins
   (hold-last). An empty part of a later pass never erases an earlier value. The result is one
   piecewise-constant *held signal* per dial (`HeldSignal`).
5. Fixed rate (`--rate HZ`): grid points at k/HZ seconds (k an integer, so grids of different
   sessions line up at media 0), from the first to the last `media_s` of the session (all dials).
   A grid point takes the held value at it, i.e. the last sample at or before it within
   `max_hold`; before a dial's first sample, and in gaps, it is empty (an empty cell in CSV,
   null in Parquet).
6. Bins (`--bin SECONDS`): bins [k*w, (k+1)*w) covering the session's media span [first, last).
   A bin's value is the time-weighted MEAN of the held signal over the part of the bin where it
   has a value; a bin where the held signal covers less than half of the bin is empty.
7. The group mean at a grid point or bin is the mean of the dials that have a value there.
"""

from __future__ import annotations

import heapq
import itertools
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from daq.export.reader import ExportError, Row, SessionRecording
from daq.timecode import FrameRate, TimecodeError, frame_to_timecode, ns_to_frame

EPS = 1e-9  # seconds; media times this close count as equal (t_ns has 1 ns resolution)
DEFAULT_MAX_HOLD_S = 1.0
MIN_BIN_COVER = 0.5  # a bin needs a held value over at least this fraction of its length


@dataclass(frozen=True, slots=True)
class Segment:
    """A held value over media time [start, end)."""

    start: float
    end: float
    value: float


def media_rows(rows: Iterable[Row]) -> list[Row]:
    """The rows that have a finite media_s, in read-time order (stable: ties keep file order)."""
    usable = [r for r in rows if r.media_s is not None and math.isfinite(r.media_s)]
    return sorted(usable, key=lambda r: r.t_ns)


def split_passes(rows: Sequence[Row]) -> list[list[Row]]:
    """Cut read-time ordered rows into passes wherever media_s decreases."""
    passes: list[list[Row]] = []
    previous: float | None = None
    for row in rows:
        media = row.media_s
        assert media is not None
        if previous is None or media < previous:
            passes.append([])
        passes[-1].append(row)
        previous = media
    return passes


Priority = tuple[int, float, int]  # compared as a tuple: the larger wins


def pass_segments(rows: Sequence[Row], max_hold: float, index: int) -> list[tuple[Priority, Segment]]:
    """Hold each sample of pass `index` until the next one of the pass, for at most max_hold seconds.

    A hold that reaches the next sample is a *rating* of that stretch: priority (1, index, 0), so a
    later pass wins. A hold cut short by max_hold (a gap) or after the pass's last sample is a
    *trailing* hold: priority (0, its media_s, index), below any rating; among trailing holds the one
    from the latest media_s wins (hold-last), then the later pass.
    """
    out: list[tuple[Priority, Segment]] = []
    for i, row in enumerate(rows):
        start = row.media_s
        assert start is not None
        end = start + max_hold
        trailing = True
        if i + 1 < len(rows):
            following = rows[i + 1].media_s
            assert following is not None
            if following <= end:
                end, trailing = following, False
        if end > start:
            priority: Priority = (0, start, index) if trailing else (1, float(index), 0)
            out.append((priority, Segment(start, end, row.value)))
    return out


def overlay(items: Sequence[tuple[Priority, Segment]]) -> list[Segment]:
    """Merge possibly overlapping segments into disjoint ones; where they overlap, the highest priority wins."""
    bounds = sorted({x for _, s in items for x in (s.start, s.end)})
    order = sorted(items, key=lambda item: item[1].start)
    # heap of (negated priority, end, value): the top is the highest priority
    active: list[tuple[tuple[int, float, int], float, float]] = []
    out: list[Segment] = []
    j = 0
    for left, right in itertools.pairwise(bounds):
        while j < len(order) and order[j][1].start <= left:
            (tier, key, index), seg = order[j]
            heapq.heappush(active, ((-tier, -key, -index), seg.end, seg.value))
            j += 1
        while active and active[0][1] <= left:
            heapq.heappop(active)
        if not active:
            continue
        value = active[0][2]
        last = out[-1] if out else None
        if last is not None and last.end == left and last.value == value:
            out[-1] = Segment(last.start, right, value)
        else:
            out.append(Segment(left, right, value))
    return out


@dataclass(slots=True)
class HeldSignal:
    """A dial's piecewise-constant rating on the media timeline (see the module rules)."""

    segments: list[Segment]
    passes: int = 0
    _starts: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._starts = [s.start for s in self.segments]

    @classmethod
    def from_rows(cls, rows: Iterable[Row], max_hold: float = DEFAULT_MAX_HOLD_S) -> HeldSignal:
        passes = split_passes(media_rows(rows))
        items = [item for index, p in enumerate(passes) for item in pass_segments(p, max_hold, index)]
        return cls(overlay(items), len(passes))

    def value_at(self, t: float) -> float | None:
        """The held value at media time t (a hold that ends exactly at t still counts), or None."""
        i = bisect_right(self._starts, t + EPS) - 1
        if i < 0:
            return None
        seg = self.segments[i]
        return seg.value if t <= seg.end + EPS else None

    def _overlaps(self, lo: float, hi: float) -> Iterable[tuple[float, float]]:
        """(length, value) of each piece of the signal inside [lo, hi)."""
        i = max(bisect_right(self._starts, lo) - 1, 0)
        while i < len(self.segments):
            seg = self.segments[i]
            if seg.start >= hi:
                break
            length = min(seg.end, hi) - max(seg.start, lo)
            if length > 0:
                yield length, seg.value
            i += 1

    def covered(self, lo: float, hi: float) -> float:
        """Seconds of [lo, hi) that have a held value."""
        return math.fsum(length for length, _ in self._overlaps(lo, hi))

    def mean_over(self, lo: float, hi: float) -> tuple[float | None, float]:
        """(time-weighted mean over the covered part of [lo, hi), covered seconds)."""
        pieces = list(self._overlaps(lo, hi))
        covered = math.fsum(length for length, _ in pieces)
        if covered <= 0:
            return None, 0.0
        return math.fsum(length * value for length, value in pieces) / covered, covered

    def empty_intervals(self, lo: float, hi: float) -> list[tuple[float, float]]:
        """The parts of [lo, hi] without a held value, in order."""
        out: list[tuple[float, float]] = []
        cursor = lo
        for seg in self.segments:
            if seg.end <= cursor:
                continue
            if seg.start >= hi:
                break
            if seg.start > cursor + EPS:
                out.append((cursor, min(seg.start, hi)))
            cursor = max(cursor, seg.end)
        if cursor < hi - EPS:
            out.append((cursor, hi))
        return out


def parse_rate(label: str) -> FrameRate | None:
    """The session's timecode rate from the header, or None when absent or unknown."""
    if not label:
        return None
    try:
        return FrameRate.parse(label)
    except TimecodeError:
        return None


def timecode_at(seconds: float, rate: FrameRate | None) -> str | None:
    """SMPTE timecode of a media time, as the daemon stamps it (the frame showing at that time)."""
    if rate is None or seconds < 0:
        return None
    try:
        return frame_to_timecode(ns_to_frame(round(seconds * 1e9), rate), rate)
    except TimecodeError:
        return None


@dataclass(slots=True)
class Resampled:
    """Dials on a common media-time grid: rate points, or bins [start, start + step)."""

    kind: Literal["rate", "bin"]
    step: float  # seconds between grid points, or the bin width
    max_hold: float
    starts: list[float]  # grid points, or bin starts
    values: dict[str, list[float | None]]  # dial -> one value (or None) per grid point
    rate: FrameRate | None = None  # the session's timecode rate, for labels

    @property
    def dials(self) -> list[str]:
        return list(self.values)

    @property
    def rate_hz(self) -> float:
        return 1.0 / self.step

    def ends(self) -> list[float]:
        return [s + self.step for s in self.starts]

    def timecodes(self) -> list[str | None]:
        return [timecode_at(s, self.rate) for s in self.starts]

    def group_mean(self) -> list[float | None]:
        out: list[float | None] = []
        columns = list(self.values.values())
        for i in range(len(self.starts)):
            present = [c[i] for c in columns if c[i] is not None]
            out.append(math.fsum(v for v in present if v is not None) / len(present) if present else None)
        return out

    def series(self, target: str) -> list[float | None]:
        """A dial's values, or the group mean for target 'mean'."""
        return self.group_mean() if target == "mean" else self.values[target]


def media_span(session: SessionRecording) -> tuple[float, float] | None:
    """First and last media_s over every dial of the session, or None without any media time."""
    times = [r.media_s for d in session.dials for r in d.rows if r.media_s is not None and math.isfinite(r.media_s)]
    return (min(times), max(times)) if times else None


def rate_points(lo: float, hi: float, rate_hz: float) -> list[float]:
    """Grid points k/rate_hz inside [lo, hi]."""
    first = math.ceil(lo * rate_hz - EPS)
    last = math.floor(hi * rate_hz + EPS)
    return [k / rate_hz for k in range(first, last + 1)]


def bin_starts(lo: float, hi: float, width: float) -> list[float]:
    """Starts of the bins [k*w, (k+1)*w) that cover [lo, hi) (at least one bin)."""
    first = math.floor(lo / width + EPS)
    last = max(math.ceil(hi / width - EPS) - 1, first)
    return [k * width for k in range(first, last + 1)]


def check_grid(rate_hz: float | None, bin_s: float | None, max_hold: float) -> None:
    if (rate_hz is None) == (bin_s is None):
        raise ExportError("give either a rate (--rate HZ) or a bin width (--bin SECONDS), not both")
    if rate_hz is not None and not (0 < rate_hz <= 1000 and math.isfinite(rate_hz)):
        raise ExportError(f"--rate {rate_hz}: give a rate above 0 and at most 1000 Hz")
    if bin_s is not None and not (0.001 <= bin_s <= 3600 and math.isfinite(bin_s)):
        raise ExportError(f"--bin {bin_s}: give a bin width from 0.001 to 3600 s (rating tools use 0.25 to 4 s)")
    if not (max_hold > 0 and math.isfinite(max_hold)):
        raise ExportError(f"--max-hold {max_hold}: give a time above 0 seconds")


def held_signals(session: SessionRecording, max_hold: float) -> dict[str, HeldSignal]:
    return {d.dial: HeldSignal.from_rows(d.rows, max_hold) for d in session.dials}


def resample(
    session: SessionRecording,
    *,
    rate_hz: float | None = None,
    bin_s: float | None = None,
    max_hold: float = DEFAULT_MAX_HOLD_S,
    signals: dict[str, HeldSignal] | None = None,
) -> Resampled:
    """Every dial of the session on one grid (see the module rules)."""
    check_grid(rate_hz, bin_s, max_hold)
    signals = signals if signals is not None else held_signals(session, max_hold)
    span = media_span(session)
    frame_rate = parse_rate(session.timecode_rate)
    values: dict[str, list[float | None]] = {}
    if rate_hz is not None:
        starts = rate_points(span[0], span[1], rate_hz) if span else []
        for dial, signal in signals.items():
            values[dial] = [signal.value_at(t) for t in starts]
        return Resampled("rate", 1.0 / rate_hz, max_hold, starts, values, frame_rate)
    assert bin_s is not None
    starts = bin_starts(span[0], span[1], bin_s) if span else []
    for dial, signal in signals.items():
        column: list[float | None] = []
        for s in starts:
            mean, covered = signal.mean_over(s, s + bin_s)
            column.append(mean if covered >= MIN_BIN_COVER * bin_s - EPS else None)
        values[dial] = column
    return Resampled("bin", bin_s, max_hold, starts, values, frame_rate)
