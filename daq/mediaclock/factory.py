"""Make the media clock the station config asks for.

Optional libraries are imported here only for the clock that needs them, so a missing one stops
the station at start-up (MissingExtraError names the extra) and never breaks the other clocks.
"""

from __future__ import annotations

from daq.config import MediaConfig
from daq.mediaclock.base import MediaClock
from daq.mediaclock.mpv import MpvClock
from daq.mediaclock.mqtt_follow import MqttFollowClock
from daq.mediaclock.session_clock import SessionClock
from daq.timecode import FrameRate

CLOCK_KINDS = ("session", "mpv", "mqtt", "mtc", "none")


def make_clock(media: MediaConfig) -> MediaClock | None:
    """The clock for `media.clock`; None for "none". Clocks with a background job have `run`."""
    rate = FrameRate.parse(media.rate)
    if media.clock == "session":
        return SessionClock(rate, media.start_timecode)
    if media.clock == "mpv":
        if media.mpv_socket is None:  # the config refuses this; a hand-built MediaConfig may not
            raise ValueError("the mpv clock needs mpv_socket, the path given to mpv --input-ipc-server")
        return MpvClock(rate, media.mpv_socket)
    if media.clock == "mqtt":
        return MqttFollowClock(rate)
    if media.clock == "mtc":
        from daq.mediaclock.mtc import MtcClock, require_mido

        require_mido()
        return MtcClock(rate, media.mtc_port)
    return None
