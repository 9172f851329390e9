"""The station's retained `status`: online while it runs, and kept so against a stale Last Will.

The station subscribes to its own status topic. A Last Will of an earlier connection can arrive
late and overwrite `online`; the guard puts `online` back. An `online` from another boot is a
second daemon publishing as this station: answering would ping-pong, so it is logged once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import orjson

from daq.readclock import ReadClock
from daq.station.announcer import Outlet
from daq.station.payloads import StationIdentity, status_payload

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class StatusGuard:
    outlet: Outlet
    who: StationIdentity
    topic: str
    read_clock: ReadClock
    online: bool = field(default=False, init=False)
    _twin_warned: bool = field(default=False, init=False)

    @staticmethod
    def will_of(who: StationIdentity) -> bytes:
        """The Last Will: offline, lost, no time stamp (built before the connection exists)."""
        return status_payload(who, "offline", "lost", None)

    def payload(self, state: str, reason: str = "") -> bytes:
        return status_payload(self.who, state, reason, self.read_clock.now_ns())

    def go_online(self) -> None:
        self.online = True
        self.outlet.set_retained(self.topic, self.payload("online"))

    def go_offline(self) -> bytes:
        """Stop guarding; return the `offline` (stopped) payload to publish last."""
        self.online = False
        return self.payload("offline", "stopped")

    def on_message(self, payload: bytes, retained: bool) -> None:
        """A message on our status topic."""
        if retained or not self.online:  # an earlier run's state, handed over at subscribe; our online follows it
            return
        try:
            seen = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            seen = {}
        if not isinstance(seen, dict):
            return
        if seen.get("state") == "online" and seen.get("boot") != self.who.boot:
            if not self._twin_warned:
                self._twin_warned = True
                log.error(
                    "another daemon publishes as station %s (boot %s): give each station its own id",
                    self.who.station,
                    seen.get("boot"),
                )
            return
        if seen.get("state") != "online":
            log.warning(
                "status was overwritten (%s, boot %s): publishing online again", seen.get("state"), seen.get("boot")
            )
            self.outlet.set_retained(self.topic, self.payload("online"))
