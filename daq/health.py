"""The station's health: retained on `<root>/<station>/health` every few seconds, read by `daq status`.

Per dial: samples, measured rate, garbage (undecodable runs of input), discarded (lines dropped on
purpose), device_lost (reports the device's own counter says never arrived), connected,
reconnects; the outbox depth; the broker connection's counts. An addition to the contract's topics,
inside the station's subtree.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from daq.contract import CONTRACT_VERSION
from daq.outbox.disk import DiskOutbox

if TYPE_CHECKING:
    from daq.station import Station

HEALTH_EVERY_S = 5.0


class HealthReporter:
    def __init__(self, station: Station) -> None:
        self.station = station
        self._last_counts: dict[str, int] = {}
        self._last_mono = time.monotonic()

    def payload(self) -> dict[str, Any]:
        station = self.station
        now = time.monotonic()
        elapsed = max(now - self._last_mono, 1e-9)
        dials: dict[str, Any] = {}
        for dial, pipe in station.pipelines.items():
            stats = pipe.stats
            before = self._last_counts.get(dial, 0)
            dials[dial] = {
                "connected": stats.connected,
                "samples": stats.samples,
                "rate_hz": round((stats.samples - before) / elapsed, 2) if elapsed >= 1.0 else None,
                "garbage": stats.garbage,
                "discarded": stats.extra.get("discarded", 0),
                "device_lost": stats.extra.get("device_lost", 0),
                "buttons": stats.buttons,
                "reconnects": max(stats.reconnects - 1, 0),
                "last_value": stats.last_value,
            }
            self._last_counts[dial] = stats.samples
        self._last_mono = now
        outbox = station.outbox
        pub = station.publisher.stats
        return {
            "v": CONTRACT_VERSION,
            "station": station.station_id,
            "boot": station.boot,
            "t_ns": station.read_clock.now_ns(),
            "uptime_s": round((time.monotonic_ns() - station.started_mono_ns) / 1e9, 1),
            "outbox": {
                "kind": "disk" if isinstance(outbox, DiskOutbox) else "memory",
                "pending": outbox.pending,
                "inflight": outbox.inflight,
                "dropped": getattr(outbox, "dropped", 0),
                "degraded": getattr(outbox, "degraded", False),
                "bytes_on_disk": getattr(outbox, "bytes_on_disk", 0),
                "recovered": getattr(outbox, "recovered", 0),
            },
            "broker": {
                "connected": pub.connected,
                "connects": pub.connects,
                "reconnects": max(pub.connects - 1, 0),
                "messages": pub.messages,
                "samples": pub.samples,
                "last_error": pub.last_error,
            },
            "dials": dials,
        }
