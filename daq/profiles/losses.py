"""What a device reader makes of input lost before it became a reading: the counts and the events.

Two kinds, both yielded by the decoders (daq.reading):

- `Discarded`: a line the profile drops on purpose (`discard_first_line`: the first line after
  the port opens, which may be cut). Counted as `discarded`, each one announced as an
  `input.discarded` event (it happens once per open, so no flood).
- `DeviceLoss`: the device's own report counter (a profile's [sequence]) jumped. The missing
  counts are added up as `device_lost`; the first jump is announced at once as an
  `input.device_lost` event, later ones at most once a second (a lossy link must not flood the
  broker), each event carrying the total so far and the jumps since the last one.

`LossCounter.count(item)` returns the `LossNotice` to publish, or None; the station side (the
device reader) only adds `notice.key`'s `amount` to the dial's stats and publishes the event.
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
        self._jumps_unsaid = 0
        self._lost_unsaid = 0
        self._last_said: float | None = None

    def count(self, item: Discarded | DeviceLoss) -> LossNotice:
        if isinstance(item, Discarded):
            self.discarded += 1
            return LossNotice(
                "discarded",
                1,
                "input.discarded",
                f"discarded {item.reason} ({self.discarded} so far)",
                {"reason": item.reason, "input": _printable(item.data), "count": self.discarded},
            )
        self.device_lost += item.lost
        self._jumps_unsaid += 1
        self._lost_unsaid += item.lost
        now = self._now()
        if self._last_said is not None and now - self._last_said < DEVICE_LOST_EVERY_S:
            return LossNotice("device_lost", item.lost)
        self._last_said = now
        notice = LossNotice(
            "device_lost",
            item.lost,
            "input.device_lost",
            f"the device's report counter went to {item.got}, not {item.expected}: {item.lost} reports never "
            f"arrived ({self.device_lost} lost on the link so far)",
            {
                "lost": self._lost_unsaid,
                "jumps": self._jumps_unsaid,
                "expected": item.expected,
                "got": item.got,
                "total": self.device_lost,
            },
        )
        self._jumps_unsaid = self._lost_unsaid = 0
        return notice
