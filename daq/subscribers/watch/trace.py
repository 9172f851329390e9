"""One dial's display trace and the group mean: the pure state behind `daq watch`'s lines.

A dial's samples are decimated into media-time bins of `bin_s` seconds (a display point is the
mean of the samples that fell into one bin). A trace breaks (the point carries `brk`) where the
data does not join up: a `seq` jump (lost samples), a new `boot`, a break marked from outside
(the dial disconnected, the station went offline), samples without a media clock, or the media
position jumped (a seek). Duplicates are dropped by (`boot`, `seq`). The group mean keeps, per
bin, each dial's latest point there, and gives the mean and SD across the dials present.

Both hand out what changed in the page's wire form (see `daq.subscribers.watch.state`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

BIN_S = 0.25
"""Width of a display bin in media seconds."""
SEEK_SLACK_S = 1.0
"""A media position that moved more than this beyond what the read times allow is a seek."""


@dataclass(slots=True)
class Point:
    """One display point of one dial: the mean of its samples in one media-time bin."""

    bin: int
    x: float
    y: float
    n: int
    brk: bool
    t_ns: int

    def wire(self) -> list[Any]:
        return [round(self.x, 3), round(self.y, 4), 1 if self.brk else 0]


@dataclass(slots=True)
class Gap:
    boot: str
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class DialTrace:
    """One dial's decimated trace, in arrival order, with absolute point indices."""

    def __init__(self, bin_s: float = BIN_S) -> None:
        self.bin_s = bin_s
        self.points: deque[Point] = deque()
        self.first = 0  # absolute index of points[0]
        self.dirty_from: int | None = None
        self.boot: str | None = None
        self.last_seq = -1
        self.last_media_s: float | None = None
        self.last_t_ns: int | None = None
        self.last_value: float | None = None
        self.pending_break = False
        self.gaps: list[Gap] = []
        self.samples = 0
        self.duplicates = 0

    @property
    def end(self) -> int:
        """Absolute index one past the last point."""
        return self.first + len(self.points)

    @property
    def missing(self) -> int:
        return sum(g.count for g in self.gaps)

    def bin_of(self, media_s: float) -> int:
        return math.floor(media_s / self.bin_s + 1e-9)

    def mark_break(self) -> None:
        """The next point starts a new stretch (the dial was disconnected, the station went away)."""
        self.pending_break = True

    def _touch(self, index: int) -> None:
        if self.dirty_from is None or index < self.dirty_from:
            self.dirty_from = index

    def add(self, boot: str, seq: int, t_ns: int, media_s: float | None, value: float) -> Point | None:
        """Take one sample; the point it went into (None: a duplicate, or no media position)."""
        brk = self.pending_break
        if boot != self.boot:
            if self.boot is not None:
                brk = True
            self.boot = boot
            self.last_seq = seq - 1
        if seq <= self.last_seq:
            self.duplicates += 1
            return None
        if seq > self.last_seq + 1:
            self.gaps.append(Gap(boot, self.last_seq + 1, seq - 1))
            brk = True
        self.last_seq = seq
        self.samples += 1
        self.last_value = value
        if media_s is None or not math.isfinite(media_s):
            self.pending_break = True  # nothing to place on the media axis; the trace resumes apart
            self.last_media_s = None
            self.last_t_ns = t_ns
            return None
        self.pending_break = False
        if not brk and self.last_media_s is not None and self.last_t_ns is not None:
            moved = media_s - self.last_media_s
            allowed = max(0.0, (t_ns - self.last_t_ns) / 1e9) * 4.0 + SEEK_SLACK_S
            if moved < -self.bin_s or moved > allowed:
                brk = True
        self.last_media_s = media_s
        self.last_t_ns = t_ns
        b = self.bin_of(media_s)
        last = self.points[-1] if self.points else None
        if last is not None and not brk and last.bin == b:
            last.n += 1
            last.y += (value - last.y) / last.n
            last.t_ns = t_ns
            self._touch(self.end - 1)
            return last
        point = Point(b, (b + 0.5) * self.bin_s, value, 1, brk and last is not None, t_ns)
        self.points.append(point)
        self._touch(self.end - 1)
        return point

    def prune(self, cutoff_ns: int) -> int:
        """Drop points last touched before `cutoff_ns`; how many went."""
        dropped = 0
        while self.points and self.points[0].t_ns < cutoff_ns:
            self.points.popleft()
            self.first += 1
            dropped += 1
        if dropped and self.dirty_from is not None and self.dirty_from < self.first:
            self.dirty_from = self.first
        return dropped

    def wire(self, since: int | None = None) -> Json:
        """Points from absolute index `since` (default: all), in the page's form."""
        start = self.first if since is None else max(since, self.first)
        items = list(self.points)[start - self.first :]
        return {
            "first": self.first,
            "from": start,
            "points": [p.wire() for p in items],
            "samples": self.samples,
            "missing": self.missing,
            "gaps": len(self.gaps),
            "last_value": self.last_value,
        }

    def take(self) -> Json | None:
        """What changed since the last take, or None."""
        if self.dirty_from is None:
            return None
        out = self.wire(self.dirty_from)
        self.dirty_from = None
        return out


@dataclass(slots=True)
class BinStats:
    mean: float
    sd: float
    n: int


def mean_sd(values: list[float]) -> BinStats:
    """Mean and population SD (the spread of this group of raters, ddof 0)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / n
    return BinStats(mean, math.sqrt(var), n)


class GroupMean:
    """Per media-time bin, each dial's latest point value there; mean and SD across the dials present."""

    def __init__(self, bin_s: float = BIN_S) -> None:
        self.bin_s = bin_s
        self.bins: dict[int, dict[str, tuple[float, int]]] = {}
        self.dirty: set[int] = set()

    def put(self, dial: str, point: Point) -> None:
        self.bins.setdefault(point.bin, {})[dial] = (point.y, point.t_ns)
        self.dirty.add(point.bin)

    def stats(self, b: int) -> BinStats | None:
        entries = self.bins.get(b)
        if not entries:
            return None
        return mean_sd([v for v, _ in entries.values()])

    def prune(self, cutoff_ns: int) -> None:
        for b in list(self.bins):
            entries = self.bins[b]
            stale = [d for d, (_, t) in entries.items() if t < cutoff_ns]
            for d in stale:
                del entries[d]
            if stale:
                self.dirty.add(b)
            if not entries:
                del self.bins[b]

    def _row(self, b: int) -> list[Any] | None:
        s = self.stats(b)
        if s is None:
            return None
        return [b, round((b + 0.5) * self.bin_s, 3), round(s.mean, 4), round(s.sd, 4), s.n]

    def series(self) -> list[list[Any]]:
        """Every bin in media order: [bin, media_s, mean, sd, n]."""
        return [row for b in sorted(self.bins) if (row := self._row(b)) is not None]

    def wire(self) -> Json:
        return {"reset": True, "set": self.series(), "del": []}

    def take(self) -> Json | None:
        if not self.dirty:
            return None
        rows: list[list[Any]] = []
        gone: list[int] = []
        for b in sorted(self.dirty):
            row = self._row(b)
            if row is None:
                gone.append(b)
            else:
                rows.append(row)
        self.dirty.clear()
        return {"set": rows, "del": gone}
