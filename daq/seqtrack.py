"""Per (boot, dial) bookkeeping of `seq`: drop duplicates, find gaps, fill them when late samples arrive."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SeqTracker:
    last: int = -1
    missing: list[list[int]] = field(default_factory=list)  # [lo, hi] inclusive ranges, sorted
    duplicates: int = 0
    accepted: int = 0

    def offer(self, seq: int) -> tuple[bool, tuple[int, int] | None]:
        """Return (accept, new_gap): accept is False for a duplicate; new_gap is a range just found missing."""
        if seq == self.last + 1:
            self.last = seq
            self.accepted += 1
            return True, None
        if seq > self.last:
            gap = (self.last + 1, seq - 1)
            self.missing.append([gap[0], gap[1]])
            self.last = seq
            self.accepted += 1
            return True, gap
        if self._fill(seq):
            self.accepted += 1
            return True, None
        self.duplicates += 1
        return False, None

    def _fill(self, seq: int) -> bool:
        for i, (lo, hi) in enumerate(self.missing):
            if lo <= seq <= hi:
                if lo == hi:
                    del self.missing[i]
                elif seq == lo:
                    self.missing[i][0] = seq + 1
                elif seq == hi:
                    self.missing[i][1] = seq - 1
                else:
                    self.missing[i : i + 1] = [[lo, seq - 1], [seq + 1, hi]]
                return True
        return False

    @property
    def missing_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.missing)
