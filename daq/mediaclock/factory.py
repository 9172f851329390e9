"""Make the media clock the station config asks for, through its entry in daq.mediaclock.registry;
and the build (and check) functions of the built-in clock kinds that the registry names.

Optional libraries are imported only for the clock that needs them (its entry's `extra`), so a
missing one stops the station at start-up (MissingExtraError names the extra) and never breaks
the other clocks.
"""

from __future__ import annotations

import importlib

from daq.config import MediaConfig
from daq.exceptions import MissingExtraError
from daq.mediaclock.base import MediaClock
from daq.mediaclock.mpv import MpvClock
from daq.mediaclock.mqtt_follow import MqttFollowClock
from daq.mediaclock.registry import CLOCKS
from daq.mediaclock.session_clock import SessionClock
from daq.seams import resolve
from daq.timecode import FrameRate

CLOCK_KINDS = tuple(kind.name for kind in CLOCKS.builtin)
"""The built-in clock kinds; `CLOCKS.names()` also has those registered at run time."""


def make_clock(media: MediaConfig) -> MediaClock | None:
    """The clock for `media.clock`; None for "none". Clocks with a background job have `run`."""
    kind = CLOCKS.get(media.clock)
    if kind is None:  # the config refuses this; a clock unregistered since may not
        raise ValueError(f"no media clock {media.clock!r}: give one of {CLOCKS.choices()}")
    if kind.extra is not None:
        for module in kind.extra.modules:
            try:
                importlib.import_module(module)
            except ImportError:
                raise MissingExtraError(module, kind.extra.name, f"the {kind.name} media clock") from None
    clock: MediaClock | None = resolve(kind.build)(media)
    return clock


# ---------------------------------------------------------------- the built-in kinds


def build_session(media: MediaConfig) -> SessionClock:
    return SessionClock(FrameRate.parse(media.rate), media.start_timecode)


def check_mpv(media: MediaConfig) -> None:
    if media.mpv_socket is None:
        raise ValueError(
            "clock = 'mpv' needs mpv_socket: the path mpv was started with, as in mpv --input-ipc-server=/tmp/mpv.sock"
        )


def build_mpv(media: MediaConfig) -> MpvClock:
    if media.mpv_socket is None:  # the config refuses this; a hand-built MediaConfig may not
        raise ValueError("the mpv clock needs mpv_socket, the path given to mpv --input-ipc-server")
    return MpvClock(FrameRate.parse(media.rate), media.mpv_socket)


def build_mqtt(media: MediaConfig) -> MqttFollowClock:
    return MqttFollowClock(FrameRate.parse(media.rate))


def build_mtc(media: MediaConfig) -> MediaClock:
    from daq.mediaclock.mtc import MtcClock, require_mido

    require_mido()
    return MtcClock(FrameRate.parse(media.rate), media.mtc_port)


def build_none(media: MediaConfig) -> None:
    return None
