"""An outbox in memory: survives broker outages, not a daemon crash."""

from __future__ import annotations

import asyncio
from collections import deque

from daq.outbox.base import Entry, OutboxStats, requeued, take_entries


class MemoryOutbox:
    def __init__(self) -> None:
        self._pending: deque[Entry] = deque()
        self._inflight: dict[int, Entry] = {}
        self._next_id = 0
        self._also_wake: asyncio.Event | None = None

    def notify(self, wake: asyncio.Event) -> None:
        self._also_wake = wake

    def _signal(self) -> None:
        if self._also_wake is not None:
            self._also_wake.set()

    def put(self, dial: str, topic: str, payload: bytes) -> None:
        self._pending.append(Entry(self._next_id, dial, topic, payload))
        self._next_id += 1
        self._signal()

    def take(self, max_entries: int) -> list[Entry]:
        out: list[Entry] = []
        take_entries(self._pending, max_entries, self._inflight, out)
        return out

    def ack(self, entries: list[Entry]) -> None:
        for entry in entries:
            self._inflight.pop(entry.id, None)

    def requeue(self) -> int:
        back = requeued(self._inflight)
        self._pending.extendleft(reversed(back))
        if back:
            self._signal()
        return len(back)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def stats(self) -> OutboxStats:
        return OutboxStats(kind="memory", pending=self.pending, inflight=self.inflight)

    def close(self) -> None:
        pass
