"""The recorder's seq bookkeeping per (station, boot, dial): duplicates, gaps, and what came before it.

A recorder that subscribes while a station runs first hears of a boot at some seq N: seqs 0..N-1
were published before it subscribed (or before it heard of that boot). That is not a gap in what
it received, and it is reported once, apart (`before_subscribe`), not in any session's gaps. A
gap is a hole between two seqs it did receive; it is reported once, in the session of the sample
that came after it (the one that showed it), and shrinks as late samples fill it.

A seq is received (`offer`) only once its row is committed (written and flushed); until then
`seen` says no, so a sample the broker sends again after a failed write is written then.
`SeqSpans` holds the seqs whose rows could not be written (a full disk), as spans. In a shared
group a member holds only a part of each dial: `RecentSeqs` only drops re-sent duplicates.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(slots=True)
class Hole:
    """Seqs lo..hi (inclusive) not received; `session` is where it is reported (None: before the first)."""

    lo: int
    hi: int
    session: str | None

    @property
    def count(self) -> int:
        return self.hi - self.lo + 1


@dataclass(slots=True)
class ReceivedSeqs:
    """What this recorder received of one boot of one dial."""

    first: int | None = None  # the first seq received (or found in a continued file)
    first_session: str | None = None
    first_t_ns: int | None = None
    resumed: bool = False  # first seen in a file of an earlier run: that run reported what came before
    last: int = -1
    holes: list[Hole] = field(default_factory=list)  # gaps and the span before `first`, sorted by lo

    def offer(self, seq: int, session: str, t_ns: int | None = None) -> tuple[bool, tuple[int, int] | None]:
        """(accept, new_gap): accept is False for a duplicate; new_gap is a range just found missing."""
        if self.first is None:
            self.first, self.first_session, self.first_t_ns, self.last = seq, session, t_ns, seq
            if seq > 0:
                self.holes.insert(0, Hole(0, seq - 1, None))
            return True, None
        if seq == self.last + 1:
            self.last = seq
            return True, None
        if seq > self.last:
            gap = (self.last + 1, seq - 1)
            self.holes.append(Hole(gap[0], gap[1], session))
            self.last = seq
            return True, gap
        return self._fill(seq), None

    def seen(self, seq: int) -> bool:
        """True when `offer(seq)` would call it a duplicate: received already (or in a continued file)."""
        if self.first is None or seq > self.last:
            return False
        return not any(hole.lo <= seq <= hole.hi for hole in self.holes)

    def _fill(self, seq: int) -> bool:
        for i, hole in enumerate(self.holes):
            if hole.lo <= seq <= hole.hi:
                parts = [Hole(lo, hi, hole.session) for lo, hi in ((hole.lo, seq - 1), (seq + 1, hole.hi)) if lo <= hi]
                self.holes[i : i + 1] = parts
                return True
        return False

    def mark_gap(self, lo: int, hi: int, session: str) -> None:
        """A gap an earlier run reported (a continued file's summary.json): the seqs lo..hi that
        are still in the span before the first seq become a gap of `session` again."""
        out: list[Hole] = []
        for hole in self.holes:
            if hole.session is not None or hole.hi < lo or hole.lo > hi:
                out.append(hole)
                continue
            a, b = max(hole.lo, lo), min(hole.hi, hi)
            out += [
                h for h in (Hole(hole.lo, a - 1, None), Hole(a, b, session), Hole(b + 1, hole.hi, None)) if h.lo <= h.hi
            ]
        self.holes = sorted(out, key=lambda h: h.lo)

    @property
    def missing(self) -> list[list[int]]:
        """The gaps (not the span before the first seq), as [lo, hi] ranges."""
        return [[h.lo, h.hi] for h in self.holes if h.session is not None]

    def missing_in(self, session: str) -> list[list[int]]:
        return [[h.lo, h.hi] for h in self.holes if h.session == session]

    @property
    def missing_count(self) -> int:
        return sum(h.count for h in self.holes if h.session is not None)

    @property
    def before_first(self) -> int:
        """How many seqs below the first one received are still not received."""
        return sum(h.count for h in self.holes if h.session is None)


@dataclass
class RecentSeqs:
    """The seqs seen lately, to drop re-sent duplicates when a group member holds only every n-th sample.

    A SeqTracker would keep a "gap" for every hole the other members fill. Re-sent messages are
    the ones in flight at a reconnect (at most the receive maximum), so the last WINDOW seqs are
    plenty; anything older is accepted (`merge` removes duplicates exactly).
    """

    WINDOW = 1 << 16
    seqs: set[int] = field(default_factory=set)
    top: int = -1

    def add(self, seq: int) -> bool:
        """False for a duplicate."""
        if seq in self.seqs:
            return False
        self.seqs.add(seq)
        if seq > self.top:
            self.top = seq
        if len(self.seqs) > 2 * self.WINDOW:
            floor = self.top - self.WINDOW
            self.seqs = {s for s in self.seqs if s > floor}
        return True


@dataclass(slots=True)
class SeqSpans:
    """A set of seqs as sorted, disjoint [lo, hi] spans (what is lost comes in runs, so it stays small)."""

    spans: list[list[int]] = field(default_factory=list)

    def _at(self, seq: int) -> int:
        """The index of the last span starting at or below seq (-1: none)."""
        return bisect.bisect_right(self.spans, seq, key=lambda span: span[0]) - 1

    def add(self, seq: int) -> None:
        i = self._at(seq)
        if i >= 0 and self.spans[i][1] >= seq:
            return
        joins_left = i >= 0 and self.spans[i][1] == seq - 1
        joins_right = i + 1 < len(self.spans) and self.spans[i + 1][0] == seq + 1
        if joins_left and joins_right:
            self.spans[i][1] = self.spans[i + 1][1]
            del self.spans[i + 1]
        elif joins_left:
            self.spans[i][1] = seq
        elif joins_right:
            self.spans[i + 1][0] = seq
        else:
            self.spans.insert(i + 1, [seq, seq])

    def discard(self, seq: int) -> None:
        i = self._at(seq)
        if i < 0 or self.spans[i][1] < seq:
            return
        lo, hi = self.spans[i]
        self.spans[i : i + 1] = [span for span in ([lo, seq - 1], [seq + 1, hi]) if span[0] <= span[1]]

    def __contains__(self, seq: int) -> bool:
        i = self._at(seq)
        return i >= 0 and self.spans[i][1] >= seq

    @property
    def count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.spans)
