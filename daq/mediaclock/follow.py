"""What the clocks that follow an outside player share (mpv, a position over MQTT, MIDI Time Code).

A player reports positions without timestamps we can trust to the frame, so each report is stamped
(monotonic) where it arrives and the position between reports is modelled from the playback speed.
A report starts a new segment only when it changes something: the state, the speed, or a position
more than half a frame away from the model. Plain progress reports are dropped, so the model stays
smooth instead of stepping with the arrival jitter.

Every change that a subscriber should hear of comes back as a `ClockChange` (daq.mediaclock.base);
the station publishes it on `events` and republishes the retained `session`. How a report reaches
the clock is each clock's own business: a background job (mpv's socket, a MIDI port) or MQTT
messages the clock subscribes to (`subscriptions` / `on_message`, see `MessageFedClock`).
"""

from __future__ import annotations

from daq.mediaclock.base import (
    MAX_MEDIA_NS,
    ClockChange,
    ClockInputError,
    ClockState,
    MediaPosition,
    OnChange,
    Segment,
    SegmentHistory,
    check_speed,
)
from daq.timecode import FrameRate

__all__ = ["SEEK_ANNOUNCE_NS", "ClockChange", "FollowedClock", "OnChange", "seconds_to_ns"]

# A running position that lands this far from the model without any other sign of a seek is
# announced as one; smaller corrections only re-anchor the model.
SEEK_ANNOUNCE_NS = 500_000_000


def seconds_to_ns(seconds: float) -> int:
    """A reported float position in integer ns, rounded to the microsecond.

    Players print positions in decimal (mpv: 0.120000); the double nearest 0.12 lies below 3/25,
    so flooring it would put a position that sits exactly on a frame start on the frame before.
    """
    return round(seconds * 1_000_000) * 1000


class FollowedClock:
    """A media clock driven by reports from outside: `follow()` turns one report into segments."""

    kind = "followed"
    source = "the player"  # for messages: "mpv", "the MQTT position", "MIDI Time Code"

    def __init__(self, rate: FrameRate, start_mono_ns: int = 0) -> None:
        self._rate = rate
        self._history = SegmentHistory(rate, Segment(start_mono_ns, 0, 1.0, "lost"))
        # Half a frame in ns, rounded down: the largest model error that is not yet a wrong frame.
        self.half_frame_ns = rate.fps.denominator * 1_000_000_000 // (2 * rate.fps.numerator)

    @property
    def rate(self) -> FrameRate:
        return self._rate

    def position_at(self, mono_ns: int) -> MediaPosition | None:
        return self._history.position_at(mono_ns)

    def current(self) -> Segment:
        return self._history.last

    def media_ns_at(self, mono_ns: int) -> int | None:
        return self._history.media_ns_at(mono_ns)

    # -- building blocks ------------------------------------------------------------------

    def _add(self, mono_ns: int, state: ClockState, media_ns: int = 0, speed: float = 1.0) -> Segment:
        segment = Segment(mono_ns, media_ns if state in ("running", "paused") else 0, speed, state)
        self._history.add(segment)
        return segment

    def _change(self, kind: str, message: str, **data: object) -> ClockChange:
        seg = self._history.last
        info: dict[str, object] = {
            "state": seg.state,
            "media_s": seg.media_ns / 1e9 if seg.state in ("running", "paused") else None,
            "speed": seg.speed,
        }
        info.update(data)
        return ClockChange(kind, message, info)

    def _transition(self, before: Segment, reason: str = "") -> ClockChange:
        """The announcement for a new segment after `before` (a state or speed change)."""
        now = self._history.last
        at = f" at {now.media_ns / 1e9:.3f} s" if now.state in ("running", "paused") else ""
        why = f" ({reason})" if reason else ""
        if before.state == "lost" and now.state != "lost":
            return self._change("clock.found", f"following {self.source}: {now.state}{at}{why}")
        if now.state == "lost":
            return self._change("clock.lost", f"lost {self.source}{why}: no media position")
        if now.state == "stopped":
            return self._change("clock.stop", f"{self.source} stopped{why}: no media position")
        if before.state == "stopped":
            return self._change("clock.start", f"{self.source} started: {now.state}{at}{why}")
        if now.state == "paused" and before.state == "running":
            return self._change("clock.pause", f"paused{at}{why}")
        if now.state == "running" and before.state == "paused":
            return self._change("clock.resume", f"resumed{at}{why}", from_s=before.media_ns / 1e9)
        if now.state == "running" and now.speed != before.speed:
            return self._change("clock.speed", f"speed {now.speed:g}{at}{why}", from_speed=before.speed)
        return self._change("clock.seek", f"sought to{at}{why}")

    # -- the common rule ------------------------------------------------------------------

    def follow(self, mono_ns: int, state: ClockState, media_ns: int = 0, speed: float = 1.0) -> ClockChange | None:
        """Apply one report: `state` (at `media_ns`, playing at `speed`) was true at `mono_ns`.

        Returns the change to announce, or None when the report only confirmed the model. A position
        or speed outside the bounds (daq.mediaclock.base) raises ClockInputError and changes nothing.
        """
        if abs(media_ns) > MAX_MEDIA_NS:
            raise ClockInputError(f"position {media_ns / 1e9:g} s is out of range: within +-{MAX_MEDIA_NS / 1e9:g} s")
        check_speed(speed)
        last = self._history.last
        if state in ("stopped", "lost"):
            if last.state == state:
                return None
            self._add(mono_ns, state, speed=speed)
            return self._transition(last)
        if last.state == state and (state == "paused" or last.speed == speed):
            model = self._history.media_ns_at(mono_ns)
            drift = media_ns - (model if model is not None else 0)
            if abs(drift) <= self.half_frame_ns:
                return None  # plain progress
            self._add(mono_ns, state, media_ns, speed)
            if state == "paused" or abs(drift) >= SEEK_ANNOUNCE_NS:
                from_s = model / 1e9 if model is not None else None
                return self._change("clock.seek", f"sought to {media_ns / 1e9:.3f} s", from_s=from_s)
            return None  # a small correction: re-anchored, nothing to announce
        self._add(mono_ns, state, media_ns, speed)
        return self._transition(last)
