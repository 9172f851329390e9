"""What a media clock provides: the media position at any monotonic instant.

Clocks keep a short history of segments (position = anchor + speed * elapsed), so a sample
is placed by its own read time even when it is processed after a pause or a seek.

Two optional parts, found by `isinstance` on their protocols:

- `RunningClock`: `async run(on_change)`, a background job that follows something outside (mpv's
  socket, a MIDI port); the station runs and supervises it while the clock is in use;
- `MessageFedClock`: `subscriptions(base_topic)` names the MQTT topics the clock follows and
  `on_message(...)` applies one message from them; the station subscribes and routes.

Both report what a subscriber should hear of as `ClockChange`s.

Every clock bounds what it is told (`check_media_s`, `check_speed`, `check_t_ns`): a position
within MAX_MEDIA_S, a speed within MAX_SPEED, a report's time within MAX_SKEW_NS of now. What is
outside is refused with a `ClockInputError` that says why (the station reports it on `events`),
so no input, however hostile, makes a position that a sample cannot carry.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from daq.timecode import FrameRate, frame_to_timecode, ns_to_frame

ClockState = Literal["running", "paused", "stopped", "lost"]


class MediaPosition(NamedTuple):
    """Where the media was at a moment: one is made per sample (a named tuple: quick to make)."""

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


# -- the bounds of every clock's input -------------------------------------------------------

MAX_MEDIA_S = 1e7  # ~115 days of media: positions beyond are refused
MAX_MEDIA_NS = int(MAX_MEDIA_S * 1e9)
MAX_SPEED = 100.0  # mpv's own limit
MAX_SKEW_NS = 5_000_000_000  # a report's time (t_ns) may differ this much from the station's clock


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_media_s(value: object, key: str = "media_s") -> float:
    """A media position in seconds: a finite number within +-MAX_MEDIA_S; else ClockInputError."""
    if not _is_number(value):
        raise ClockInputError(f"{key} must be a number of seconds, not {value!r}")
    assert isinstance(value, int | float)
    if not math.isfinite(value) or abs(value) > MAX_MEDIA_S:
        raise ClockInputError(f"{key} {value!r} is out of range: a finite number within +-{MAX_MEDIA_S:g} s")
    return float(value)


def check_speed(value: object, key: str = "speed") -> float:
    """A playback speed: a finite number above 0 and at most MAX_SPEED; else ClockInputError."""
    if not _is_number(value):
        raise ClockInputError(f"{key} must be a number, not {value!r}")
    assert isinstance(value, int | float)
    if not math.isfinite(value) or not 0 < value <= MAX_SPEED:
        raise ClockInputError(f"{key} {value!r} is out of range: above 0 and at most {MAX_SPEED:g}")
    return float(value)


def check_t_ns(t_ns: int, now_ns: int, key: str = "t_ns") -> int:
    """A report's wall-clock time: within MAX_SKEW_NS of `now_ns` (the station's clock); else ClockInputError."""
    skew = t_ns - now_ns
    if abs(skew) > MAX_SKEW_NS:
        way = "ahead of" if skew > 0 else "behind"
        raise ClockInputError(
            f"{key} is {abs(skew) / 1e9:.1f} s {way} the station's clock (allowed: {MAX_SKEW_NS / 1e9:g} s): "
            "check the player's clock (NTP), or leave t_ns out to have the message stamped on arrival"
        )
    return t_ns


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
        self._label_frame = -1  # the frame `_label` names
        self._label = ""

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
        starts = self._starts
        if mono_ns >= starts[-1]:  # the latest segment: every reading since the last change
            seg = self._segments[-1]
        else:
            seg = self._segments[max(bisect.bisect_right(starts, mono_ns) - 1, 0)]
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
        if frame != self._label_frame:  # readings in the same frame (every dial of a tick) share its label
            # SMPTE labels wrap at 24 hours; the frame count does not.
            self._label = frame_to_timecode(frame % self.rate.frames_per_day, self.rate)
            self._label_frame = frame
        return MediaPosition(media_ns / 1e9, frame, self._label)
