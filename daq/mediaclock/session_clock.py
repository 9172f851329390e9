"""The session clock: a free-running media clock started, paused, resumed and sought by command."""

from __future__ import annotations

import math
import time

from daq.mediaclock.base import ClockState, MediaPosition, Segment, SegmentHistory, check_media_s
from daq.timecode import FrameRate, frame_to_seconds, timecode_to_frame


class SessionClock:
    kind = "session"

    def __init__(self, rate: FrameRate, start_timecode: str = "00:00:00:00") -> None:
        self._rate = rate
        self.start_timecode = start_timecode
        self._history = SegmentHistory(rate, Segment(time.monotonic_ns(), 0, 1.0, "stopped"))

    @property
    def rate(self) -> FrameRate:
        return self._rate

    def _start_media_ns(self, timecode: str | None = None) -> int:
        label = self.start_timecode if timecode is None else timecode
        seconds = frame_to_seconds(timecode_to_frame(label, self._rate), self._rate)
        # Round up: flooring would put the start just before its frame's first instant (one frame early).
        return math.ceil(seconds * 1_000_000_000)

    def _change(self, state: ClockState, media_ns: int | None = None, mono_ns: int | None = None) -> Segment:
        now = time.monotonic_ns() if mono_ns is None else mono_ns
        current = self._history.media_ns_at(now)
        position = media_ns if media_ns is not None else (current if current is not None else 0)
        segment = Segment(now, position, 1.0, state)
        self._history.add(segment)
        return segment

    def start(self, timecode: str | None = None, mono_ns: int | None = None) -> Segment:
        """Run from `timecode` (default: the last start's); one that does not parse raises, changing nothing."""
        media_ns = self._start_media_ns(timecode)  # checked before it is kept: a bad one never sticks
        if timecode is not None:
            self.start_timecode = timecode
        return self._change("running", media_ns, mono_ns)

    def pause(self, mono_ns: int | None = None) -> Segment:
        return self._change("paused", mono_ns=mono_ns)

    def resume(self, mono_ns: int | None = None) -> Segment:
        return self._change("running", mono_ns=mono_ns)

    def seek(self, media_s: float, mono_ns: int | None = None) -> Segment:
        """Go to `media_s` (a finite number within +-MAX_MEDIA_S, else ClockInputError, nothing changed)."""
        media_ns = int(check_media_s(media_s) * 1e9)
        state = self._history.last.state
        return self._change(state if state != "stopped" else "paused", media_ns, mono_ns)

    def stop(self, mono_ns: int | None = None) -> Segment:
        return self._change("stopped", 0, mono_ns)

    def position_at(self, mono_ns: int) -> MediaPosition | None:
        return self._history.position_at(mono_ns)

    def current(self) -> Segment:
        return self._history.last
