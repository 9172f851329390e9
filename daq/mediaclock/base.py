"""What a media clock provides: the media position at any monotonic instant.

Clocks keep a short history of segments (position = anchor + speed * elapsed), so a sample
is placed by its own read time even when it is processed after a pause or a seek.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Literal, Protocol

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


class MediaClock(Protocol):
    kind: str

    @property
    def rate(self) -> FrameRate: ...

    def position_at(self, mono_ns: int) -> MediaPosition | None: ...

    def current(self) -> Segment: ...


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
