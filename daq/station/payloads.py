"""The station's own messages (status, meta, session, event), built from the contract's models.

Each builder fills the `daq.contract` model of its message, so a field the contract lacks (or a
value it forbids) fails here, and serialises it with orjson as every other payload is. Samples are
not built here: the hot path writes their dict directly (daq.station.dial_pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from daq import __version__
from daq.contract import CONTRACT_VERSION, ClockInfo, Event, Meta, Session, Status
from daq.mediaclock.base import MediaClock


@dataclass(frozen=True, slots=True)
class StationIdentity:
    """Who speaks: the station id, this run's boot id, and the configured dials."""

    station: str
    boot: str
    dials: tuple[str, ...]


def _header(who: StationIdentity) -> dict[str, Any]:
    """What every message of the station starts with: the contract version, who speaks, which boot."""
    return {"v": CONTRACT_VERSION, "station": who.station, "boot": who.boot}


def status_payload(who: StationIdentity, state: str, reason: str, t_ns: int | None) -> bytes:
    """`status`; `t_ns` None for the Last Will (the contract leaves it out there)."""
    status = Status(
        **_header(who),
        state=state,  # validated: "online" | "offline"
        reason=reason,
        t_ns=t_ns,
        version=__version__,
        dials=list(who.dials),
    )
    return orjson.dumps(status.model_dump(exclude={"t_ns"} if t_ns is None else None))


def meta_payload(who: StationIdentity, dial: str, connected: bool, static: Mapping[str, Any], t_ns: int) -> bytes:
    """A dial's `meta`: `static` holds what the device setup knows (profile, transport, scale...)."""
    meta = Meta.model_validate(_header(who) | {"dial": dial, "connected": connected} | dict(static) | {"t_ns": t_ns})
    return orjson.dumps(meta.model_dump())


def clock_info(clock: MediaClock | None, wall_offset_ns: int) -> ClockInfo:
    """The `clock` part of `session`; `wall_offset_ns` (wall - monotonic) dates the anchor."""
    if clock is None:
        return ClockInfo(
            kind="none",
            rate="25",
            state="stopped",
            position_s=None,
            anchor_t_ns=None,
            speed=1.0,
            start_timecode=None,
        )
    seg = clock.current()
    playing = seg.state in ("running", "paused")
    return ClockInfo(
        kind=clock.kind,
        rate=clock.rate.label,
        state=seg.state,
        position_s=seg.media_ns / 1e9 if playing else None,
        anchor_t_ns=seg.mono_ns + wall_offset_ns if playing else None,
        speed=seg.speed if seg.state == "running" else 0.0,
        start_timecode=getattr(clock, "start_timecode", None),
    )


def session_payload(
    who: StationIdentity, session_id: str | None, clock: MediaClock | None, wall_offset_ns: int, t_ns: int
) -> bytes:
    """The retained `session`: the session running now and its media clock."""
    session = Session(
        **_header(who),
        session=session_id,
        clock=clock_info(clock, wall_offset_ns),
        t_ns=t_ns,
    )
    return orjson.dumps(session.model_dump())


def event_payload(
    who: StationIdentity, kind: str, dial: str | None, message: str, data: Mapping[str, object], t_ns: int
) -> bytes:
    event = Event(
        **_header(who),
        t_ns=t_ns,
        kind=kind,
        dial=dial,
        message=message,
        data=dict(data),
    )
    return orjson.dumps(event.model_dump())
