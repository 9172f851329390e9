"""The station's health: retained on `<root>/<station>/health` every few seconds, read by `daq status`.

Per dial: samples, measured rate, garbage (undecodable runs of input, and readings that cannot be
a sample), discarded (lines dropped on purpose), device_lost (reports the device's own counter says
never arrived), unrouted (readings on a channel of the dial's device that no dial is configured for,
counted on the device's first dial), media_errors (samples sent with null media fields because the clock could not
place them), connected, reconnects; the outbox depth; the broker connection's counts (refused:
control messages the broker refused, dropped; samples_refused: kept and sent again); media_refused
(inputs the media clocks refused). An addition to the contract's topics, inside the station's subtree.

The reporter reads what it is given: the dials' stats, the outbox's `stats()` (the outbox
protocol), the broker connection's counters, and the read clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from daq.cadence import HOUSEKEEPING_S, sleep_to_grid
from daq.contract import CONTRACT_VERSION
from daq.outbox.base import Outbox
from daq.readclock import ReadClock
from daq.station.announcer import Outlet
from daq.station.dial_pipeline import DialStats
from daq.station.payloads import StationIdentity

HEALTH_EVERY_S = HOUSEKEEPING_S


class BrokerStats(Protocol):
    """The broker connection's counters (the publisher's `stats`)."""

    connected: bool
    connects: int
    messages: int
    samples: int
    last_error: str
    refused: int
    samples_refused: int
    control_dropped: int


def _none_refused() -> int:
    return 0


@dataclass(slots=True, eq=False)
class HealthReporter:
    who: StationIdentity
    read_clock: ReadClock
    dials: Mapping[str, DialStats]
    outbox: Outbox
    broker: BrokerStats
    outlet: Outlet
    topic: str
    media_refused: Callable[[], int] = _none_refused  # inputs the media clocks refused (the clock stage's count)
    started_mono_ns: int = field(default_factory=time.monotonic_ns, init=False)
    _last_counts: dict[str, int] = field(default_factory=dict, init=False)
    _last_mono: float = field(default_factory=time.monotonic, init=False)

    def publish(self) -> None:
        """Publish the health as it is now (retained)."""
        self.outlet.set_retained(self.topic, orjson.dumps(self.payload()))

    async def run(self) -> None:
        """Publish now and every HEALTH_EVERY_S, until cancelled."""
        while True:
            self.publish()
            await sleep_to_grid(HEALTH_EVERY_S)

    def payload(self) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = max(now - self._last_mono, 1e-9)
        dials: dict[str, Any] = {}
        for dial, stats in self.dials.items():
            before = self._last_counts.get(dial, 0)
            dials[dial] = {
                "connected": stats.connected,
                "samples": stats.samples,
                "rate_hz": round((stats.samples - before) / elapsed, 2) if elapsed >= 1.0 else None,
                "garbage": stats.garbage,
                "media_errors": stats.media_errors,
                "discarded": stats.extra.get("discarded", 0),
                "device_lost": stats.extra.get("device_lost", 0),
                "unrouted": stats.extra.get("unrouted", 0),
                "buttons": stats.buttons,
                "reconnects": max(stats.reconnects - 1, 0),
                "last_value": stats.last_value,
            }
            self._last_counts[dial] = stats.samples
        self._last_mono = now
        outbox = self.outbox.stats()
        pub = self.broker
        return {
            "v": CONTRACT_VERSION,
            "station": self.who.station,
            "boot": self.who.boot,
            "t_ns": self.read_clock.now_ns(),
            "uptime_s": round((time.monotonic_ns() - self.started_mono_ns) / 1e9, 1),
            "outbox": outbox.as_dict(),
            "broker": {
                "connected": pub.connected,
                "connects": pub.connects,
                "reconnects": max(pub.connects - 1, 0),
                "messages": pub.messages,
                "samples": pub.samples,
                "last_error": pub.last_error,
                "refused": pub.refused,
                "samples_refused": pub.samples_refused,
                "control_dropped": pub.control_dropped,
            },
            "media_refused": self.media_refused(),
            "dials": dials,
        }
