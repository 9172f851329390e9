"""What the station says about itself: events, the retained session and each dial's meta, replies.

The parts that have something to say (control, the media clock stage, device readers, the outbox)
get this announcer, not the station: it holds the publisher only as an `Outlet` (send, set_retained)
and reads the session state and the read clock it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from daq.readclock import ReadClock
from daq.station.payloads import StationIdentity, event_payload, meta_payload, session_payload
from daq.station.session_state import SessionState
from daq.topics import Topics


class Outlet(Protocol):
    """Where messages go out (the publisher): QoS 1 sends, and retained state kept across reconnects."""

    def send(self, topic: str, payload: bytes) -> None: ...

    def set_retained(self, topic: str, payload: bytes) -> None: ...


@dataclass(slots=True, eq=False)
class Announcer:
    outlet: Outlet
    who: StationIdentity
    topics: Topics
    read_clock: ReadClock
    session_state: SessionState
    dial_meta: Mapping[str, Mapping[str, Any]]  # dial -> the static part of its meta (from the device setup)

    def event(self, kind: str, dial: str | None, message: str, data: Mapping[str, object]) -> None:
        """An event on `events` (not retained)."""
        payload = event_payload(self.who, kind, dial, message, data, self.read_clock.now_ns())
        self.outlet.send(self.topics.events, payload)

    def station_event(self, kind: str, message: str, data: Mapping[str, object]) -> None:
        """An event that concerns no dial (the outbox's, the read clock's)."""
        self.event(kind, None, message, data)

    def session(self) -> None:
        """Publish the retained `session` as it is now."""
        state = self.session_state
        clock = self.read_clock
        payload = session_payload(self.who, state.session_id, state.clock, clock.offset_ns, clock.now_ns())
        self.outlet.set_retained(self.topics.session, payload)

    def session_changed(self, kind: str, message: str, data: Mapping[str, object]) -> None:
        """Something about the session or its clock changed: announce it, then republish `session`."""
        self.event(kind, None, message, data)
        self.session()

    def meta(self, dial: str, connected: bool) -> None:
        """Publish a dial's retained `meta` (at start, and when its device comes or goes)."""
        payload = meta_payload(self.who, dial, connected, self.dial_meta[dial], self.read_clock.now_ns())
        self.outlet.set_retained(self.topics.meta(dial), payload)

    def reply(self, verb: str, body: Mapping[str, Any], response_topic: str | None) -> None:
        """A command's reply: to the request's response topic, else `cmd/<verb>/reply`."""
        self.outlet.send(response_topic or self.topics.cmd_reply(verb), orjson.dumps(body))
