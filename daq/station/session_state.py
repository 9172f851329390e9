"""The current session: its id (by read time) and the media clock in use.

A sample carries the session that ran when it was *read*, as it carries the media position of its
read time: `session_at(mono_ns)` looks the id up in a short history of starts and stops, so a
reading taken just before `session.start` (or `session.stop`) and processed after it keeps the
session it was read in.
"""

from __future__ import annotations

import bisect
import math
import secrets
import time

from daq.mediaclock.base import MediaClock, MediaPosition
from daq.mediaclock.session_clock import SessionClock

KEEP = 64  # starts and stops remembered; a reading is processed well within a few of them


def new_session_id(wall_ns: int | None = None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime((wall_ns or time.time_ns()) / 1e9))
    return f"s-{stamp}-{secrets.token_hex(2)}"


class SessionState:
    def __init__(self, clock: MediaClock | None) -> None:
        self.clock = clock
        self._starts: list[int] = [0]  # monotonic ns from which each id holds
        self._ids: list[str | None] = [None]

    @property
    def session_id(self) -> str | None:
        """The session running now (None between sessions)."""
        return self._ids[-1]

    def session_at(self, mono_ns: int) -> str | None:
        """The session that ran at monotonic time `mono_ns` (a reading's read time)."""
        if mono_ns >= self._starts[-1]:
            return self._ids[-1]
        return self._ids[max(bisect.bisect_right(self._starts, mono_ns) - 1, 0)]

    def set_session(self, session_id: str | None, mono_ns: int | None = None) -> None:
        """From `mono_ns` (default: now) on, readings belong to `session_id`."""
        now = time.monotonic_ns() if mono_ns is None else mono_ns
        now = max(now, self._starts[-1])  # history never rewritten
        self._starts.append(now)
        self._ids.append(session_id)
        if len(self._starts) > KEEP:
            del self._starts[0]
            del self._ids[0]

    def start(self, wall_ns: int, timecode: str | None = None, mono_ns: int | None = None) -> str:
        """A new session from `mono_ns` (default now); the session clock, if in use, starts (at `timecode`).

        `wall_ns` (the wall clock now) stamps the new id. Other clocks keep following their player.
        """
        now = time.monotonic_ns() if mono_ns is None else mono_ns
        clock = self.clock
        if isinstance(clock, SessionClock):
            clock.start(timecode, mono_ns=now)
        session_id = new_session_id(wall_ns)
        self.set_session(session_id, now)
        return session_id

    def stop(self, mono_ns: int | None = None) -> None:
        """No session from `mono_ns` (default now) on; the session clock, if in use, stops."""
        now = time.monotonic_ns() if mono_ns is None else mono_ns
        clock = self.clock
        if isinstance(clock, SessionClock):
            clock.stop(mono_ns=now)
        self.set_session(None, now)

    def position_at(self, mono_ns: int) -> MediaPosition | None:
        """The clock's position at `mono_ns`, unchecked (it may raise): see `checked_position_at`."""
        clock = self.clock
        return clock.position_at(mono_ns) if clock is not None else None

    def checked_position_at(self, mono_ns: int) -> tuple[MediaPosition | None, str | None]:
        """(position, None), or (None, why) when the clock's position cannot go into a sample.

        Never raises: whatever a media clock says or does, a reading read at `mono_ns` can still
        become a sample (with null media fields). `why` is for the error event and the count.
        """
        clock = self.clock
        if clock is None:
            return None, None
        try:
            pos = clock.position_at(mono_ns)
        except Exception as exc:
            return None, f"media clock {getattr(clock, 'kind', '?')}: {type(exc).__name__}: {exc}"
        if pos is None:
            return None, None
        problem = position_problem(pos)
        if problem is not None:
            return None, f"media clock {getattr(clock, 'kind', '?')}: {problem}"
        return pos, None


# The largest frame a sample carries: every JSON reader holds it exactly (a double's integers). The
# clocks' input bounds (daq.mediaclock.base) keep positions far below; this is what a sample can carry.
MAX_FRAME = (1 << 53) - 1
_FAR = float("inf")  # a finite float lies strictly between -inf and inf


def position_problem(pos: MediaPosition) -> str | None:
    """Why `pos` cannot go into a sample (the contract's media fields), or None when it can."""
    media_s, frame, timecode = pos.media_s, pos.frame, pos.timecode
    # What the clocks make, checked at once (a NaN fails the comparison); anything else, below.
    quick = type(media_s) is float and -_FAR < media_s < _FAR and type(frame) is int and type(timecode) is str
    if quick and 0 <= frame <= MAX_FRAME and len(timecode) == 11:
        return None
    number = isinstance(media_s, float | int) and not isinstance(media_s, bool)
    if not number or not math.isfinite(media_s):
        return f"position {media_s!r} s is not a finite number"
    if type(frame) is not int or not 0 <= frame <= MAX_FRAME:
        return f"frame {frame!r} is out of range"
    if type(timecode) is not str or len(timecode) != 11:
        return f"timecode {timecode!r} is not HH:MM:SS:FF"
    return None
