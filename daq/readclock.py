"""Read time: wall clock derived from a monotonic reading taken at read.

The offset between the wall clock and the monotonic clock is fixed when the daemon starts,
so a wall-clock step (NTP, a user changing the time) does not bend a running session.
`check()` measures the offset again; a change beyond `step_threshold_ns` is reported as a step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClockStep:
    offset_ns: int  # the offset in use (wall - monotonic)
    measured_ns: int  # the offset measured now
    step_ns: int  # measured - in use


class ReadClock:
    def __init__(self, step_threshold_ns: int = 5_000_000) -> None:
        self.offset_ns = self._measure()
        self.step_threshold_ns = step_threshold_ns
        self._last_reported = self.offset_ns

    @staticmethod
    def _measure() -> int:
        # Bracket the wall-clock read between two monotonic reads and take the midpoint.
        m0 = time.monotonic_ns()
        wall = time.time_ns()
        m1 = time.monotonic_ns()
        return wall - (m0 + m1) // 2

    def wall_ns(self, mono_ns: int) -> int:
        return mono_ns + self.offset_ns

    def mono_ns(self, wall_ns: int) -> int:
        return wall_ns - self.offset_ns

    def now_ns(self) -> int:
        return time.monotonic_ns() + self.offset_ns

    def check(self) -> ClockStep | None:
        """Measure the offset again; return a step when it moved by more than the threshold since the last report."""
        measured = self._measure()
        if abs(measured - self._last_reported) > self.step_threshold_ns:
            self._last_reported = measured
            return ClockStep(self.offset_ns, measured, measured - self.offset_ns)
        return None
