"""Make the media clock the station config asks for."""

from __future__ import annotations

from daq.config import MediaConfig
from daq.mediaclock.base import MediaClock
from daq.mediaclock.session import SessionClock
from daq.timecode import FrameRate


def make_clock(media: MediaConfig) -> MediaClock | None:
    rate = FrameRate.parse(media.rate)
    if media.clock == "session":
        return SessionClock(rate, media.start_timecode)
    return None
