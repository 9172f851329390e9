"""What a device reader makes of input lost before it became a reading: the counts and the events.

Two kinds, both yielded by the decoders (daq.reading):

- `Discarded`: input dropped on purpose because it may be cut (`discard_first_line`: the first
  line after the port opens; the line after a gap in the stream; an input frame the kernel cut
  with SYN_DROPPED). Counted as `discarded` (an item's `count`: the readings it may have held),
  each item announced as an `input.discarded` event. Items come at most once per open, per gap
  and per kernel overflow (one per read of the cut frame, usually one; another overflow takes a
  full kernel buffer of events), so they do not flood the broker.
- `DeviceLoss`: the device's own report counter (a profile's [sequence]) jumped. The missing
  counts are added up as `device_lost`; the first jump is announced at once as an
  `input.device_lost` event, later ones at most once a second (a lossy link must not flood the
  broker), each event carrying the total so far and the jumps since the last one.

`LossCounter.count(item)` returns a `LossNotice`, and `flush()` (called after every read) one
for jumps whose event was held back, or None; the station side (the device reader) only adds
`notice.amount` to the dial's `notice.key` count and publishes the event when `notice.kind` is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from daq.reading import DeviceLoss, Discarded

__all__ = ["DEVICE_LOST_EVERY_S", "LossCounter", "LossNotice"]

DEVICE_LOST_EVERY_S = 1.0
"""At most one input.device_lost event per device this often (the first jump is said at once)."""


@dataclass(frozen=True, slots=True)
class LossNotice:
    """One count to add (`key` in the dial's stats, `amount`) and maybe an event to publish."""

    key: str  # "discarded" or "device_lost": the health field
    amount: int
    kind: str | None = None  # the event kind, None: no event this time
    message: str = ""
    data: dict[str, object] = field(default_factory=dict)


def _printable(data: bytes) -> str:
    """The input as text where it is text (a line), else hex."""
    text = data.rstrip(b"\r\n").decode("ascii", "replace")
    if text.isprintable():
        return text[:64]
    return data[:32].hex(" ")


class LossCounter:
    """Counts one device's discarded lines and device-side losses; decides which get an event."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._now = clock
        self.discarded = 0
        self.device_lost = 0
        self.jumps_unsaid = 0  # counter jumps whose input.device_lost event is held back (the throttle)
        self._lost_unsaid = 0
        self._expected = self._got = 0  # of the latest jump
        self._last_said: float | None = None

    def count(self, item: Discarded | DeviceLoss) -> LossNotice:
        if isinstance(item, Discarded):
            self.discarded += item.count
            return LossNotice(
                "discarded",
                item.count,
                "input.discarded",
                f"discarded {item.reason} ({self.discarded} so far)",
                # readings: what this item may have held; count: the device's discards so far
                {
                    "reason": item.reason,
                    "input": _printable(item.data),
                    "readings": item.count,
                    "count": self.discarded,
                },
            )
        self.device_lost += item.lost
        self.jumps_unsaid += 1
        self._lost_unsaid += item.lost
        self._expected, self._got = item.expected, item.got
        event = self._due_event()
        return LossNotice("device_lost", item.lost, *event) if event else LossNotice("device_lost", item.lost)

    def flush(self) -> LossNotice | None:
        """The input.device_lost event for jumps not announced yet, once the interval has passed;
        call it after every read, so that a burst's last jumps are announced too. It adds no count
        (`amount` 0): `count` added them."""
        event = self._due_event()
        return LossNotice("device_lost", 0, *event) if event else None

    def held_for(self) -> float | None:
        """Seconds until a held-back event is due (0: now), None when nothing is held back."""
        if not self.jumps_unsaid:
            return None
        if self._last_said is None:
            return 0.0
        return max(0.0, DEVICE_LOST_EVERY_S - (self._now() - self._last_said))

    def _due_event(self) -> tuple[str, str, dict[str, object]] | None:
        if not self.jumps_unsaid:
            return None
        now = self._now()
        if self._last_said is not None and now - self._last_said < DEVICE_LOST_EVERY_S:
            return None
        self._last_said = now
        lost, jumps = self._lost_unsaid, self.jumps_unsaid
        self.jumps_unsaid = self._lost_unsaid = 0
        message = (
            f"the device's report counter went to {self._got}, not {self._expected}: "
            f"{lost} reports never arrived"
            + (f" in {jumps} jumps" if jumps > 1 else "")
            + f" ({self.device_lost} lost on the link so far)"
        )
        data: dict[str, object] = {
            "lost": lost,
            "jumps": jumps,
            "expected": self._expected,
            "got": self._got,
            "total": self.device_lost,
        }
        return "input.device_lost", message, data
