"""Rate-limited reporting: the first of a kind of trouble at once, then at most one report per interval.

Hostile or broken input can go wrong on every reading (a media clock that cannot place any sample)
or on every message (a flood of refused positions). Each occurrence is counted; the event that says
so goes out for the first one and then at most once every `every_s`, carrying the counts, so that
noise can never flood the broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

REPORT_EVERY_S = 10.0


@dataclass(slots=True)
class Throttle:
    """Counts occurrences; `due()` says whether this one should be reported."""

    every_s: float = REPORT_EVERY_S
    count: int = 0  # occurrences so far
    reported: int = 0  # occurrences up to the last report
    _last: float | None = None

    def hit(self, now: float | None = None) -> bool:
        """Count one occurrence; True when it is to be reported (the first, or the first after `every_s`)."""
        self.count += 1
        t = time.monotonic() if now is None else now
        if self._last is None or t - self._last >= self.every_s:
            self._last = t
            return True
        return False

    def since_report(self) -> int:
        """Occurrences since the last report, this one included; marks them reported."""
        n, self.reported = self.count - self.reported, self.count
        return n
