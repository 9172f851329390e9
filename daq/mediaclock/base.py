"""What a media clock provides: the media position at any monotonic instant.

Clocks keep a short history of segments (position = anchor + speed * elapsed), so a sample
is placed by its own read time even when it is processed after a pause or a seek.

Two optional parts, found by `isinstance` on their protocols:

- `RunningClock`: `async run(on_change)`, a background job that follows something outside (mpv's
  socket, a MIDI port); the station runs and supervises it while the clock is in use;
- `MessageFedClock`: `subscriptions(base_topic)` names the MQTT topics the clock follows and
  `on_message(...)` applies one message from them; the station subscribes and routes.

Both report what a subscriber should hear of as `ClockChange`s.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from daq.timecode import FrameRate, frame_to_timecode, ns_to_frame

ClockState = Literal["running", "paused", "stopped", "lost"]


@dataclass(frozen=True, slots=True)
class MediaPosition:
    media_s: float
    frame: int
    timecode: str


@dataclass(frozen=True, slots=True)
class Segment:
    """From `mono_ns` on, the media is at `media_ns + speed * (t - mono_ns)` (or absent when state is not playing)."""

    mono_ns: int
    media_ns: int
    speed: float
    state: ClockState


@dataclass(frozen=True, slots=True)
class ClockChange:
    """Something a subscriber should hear of: kind (`clock.pause`...), a sentence, and the numbers."""

    kind: str
    message: str
    data: dict[str, object] = field(default_factory=dict)


OnChange = Callable[[str, str, dict[str, object]], None]
"""`on_change(kind, message, data)`: a clock's background job reports a change (see ClockChange)."""


class ClockInputError(ValueError):
    """A message on a clock's topic that it cannot use; the message says what is wrong."""


class MediaClock(Protocol):
    kind: str

    @property
    def rate(self) -> FrameRate: ...

    def position_at(self, mono_ns: int) -> MediaPosition | None: ...

    def current(self) -> Segment: ...


@runtime_checkable
class RunningClock(Protocol):
    """A clock with a background job: `run` follows its source until cancelled, reporting changes."""

    async def run(self, on_change: OnChange) -> None: ...


@runtime_checkable
class MessageFedClock(Protocol):
    """A clock fed by MQTT messages: it names its topics, the station routes their messages to it."""

    def subscriptions(self, base_topic: str) -> tuple[str, ...]:
        """The topic filters to follow, given the station's `<root>/<station>`."""
        ...

    def on_message(self, topic: str, payload: bytes, arrival_mono_ns: int, wall_offset_ns: int) -> list[ClockChange]:
        """Apply one message that arrived at `arrival_mono_ns`; `wall_offset_ns` is wall - monotonic.

        Returns what to announce; raises ClockInputError for a message it cannot use.
        """
        ...


class SegmentHistory:
    """The last few segments of a clock, looked up by monotonic time."""

    def __init__(self, rate: FrameRate, first: Segment, keep: int = 256) -> None:
        self.rate = rate
        self._segments: list[Segment] = [first]
        self._starts: list[int] = [first.mono_ns]
        self._keep = keep

    def add(self, segment: Segment) -> None:
        if segment.mono_ns < self._starts[-1]:  # a late update never rewrites history
            segment = Segment(self._starts[-1], segment.media_ns, segment.speed, segment.state)
        self._segments.append(segment)
        self._starts.append(segment.mono_ns)
        if len(self._segments) > self._keep:
            del self._segments[0]
            del self._starts[0]

    @property
    def last(self) -> Segment:
        return self._segments[-1]

    def media_ns_at(self, mono_ns: int) -> int | None:
        i = bisect.bisect_right(self._starts, mono_ns) - 1
        seg = self._segments[max(i, 0)]
        if seg.state in ("stopped", "lost"):
            return None
        if seg.state == "paused":
            return seg.media_ns
        return seg.media_ns + int((mono_ns - seg.mono_ns) * seg.speed)

    def position_at(self, mono_ns: int) -> MediaPosition | None:
        media_ns = self.media_ns_at(mono_ns)
        if media_ns is None or media_ns < 0:
            return None
        frame = ns_to_frame(media_ns, self.rate)
        # SMPTE labels wrap at 24 hours; the frame count does not.
        label = frame_to_timecode(frame % self.rate.frames_per_day, self.rate)
        return MediaPosition(media_ns / 1e9, frame, label)
