"""A stand-in for the publisher where the station's parts send messages: it keeps them for the test."""

from __future__ import annotations

import orjson


class RecordingOutlet:
    """The `Outlet` protocol (daq.station.announcer): sent messages in order, retained ones by topic."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.retained: dict[str, bytes] = {}

    def send(self, topic: str, payload: bytes) -> None:
        self.sent.append((topic, payload))

    def set_retained(self, topic: str, payload: bytes) -> None:
        self.retained[topic] = payload

    def bodies(self, topic: str) -> list[dict[str, object]]:
        """The JSON bodies sent (not retained) on `topic`."""
        return [orjson.loads(p) for t, p in self.sent if t == topic]
