"""The outbox: every sample enters it before it is published and leaves when the broker acknowledged it.

The publisher `take`s entries (they become in flight), publishes them, and `ack`s them on
PUBACK. After a lost connection `requeue` puts everything in flight back at the front, in
order, so per-dial `seq` order is kept and nothing read is lost (duplicates are possible).
`stats()` is what health reports and the station says at exit read: no one needs to know
which outbox it is. `take_entries` and `requeued` are the queueing steps every outbox shares.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import asdict, dataclass
from typing import Literal, Protocol


@dataclass(slots=True)
class Entry:
    id: int
    dial: str
    topic: str
    payload: bytes
    replay: bool = False  # sent before, or left over from an earlier run


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """How an outbox is doing: counts of entries, and for one on disk its files."""

    kind: Literal["disk", "memory"]
    pending: int
    inflight: int
    dropped: int = 0  # samples lost to the size bound (or to a corrupt file), never sent
    degraded: bool = False  # the disk is unusable: new samples are held in memory only
    bytes_on_disk: int = 0
    recovered: int = 0  # samples found on disk at start-up, to replay

    @property
    def depth(self) -> int:
        """Samples not yet acknowledged: pending + in flight."""
        return self.pending + self.inflight

    @property
    def durable(self) -> bool:
        """Do entries left at exit wait for the next start (on disk), or are they lost?"""
        return self.kind == "disk"

    def as_dict(self) -> dict[str, object]:
        """The `outbox` object of a health report."""
        return asdict(self)


class Outbox(Protocol):
    def put(self, dial: str, topic: str, payload: bytes) -> None: ...

    def notify(self, wake: asyncio.Event) -> None:
        """Set `wake` too whenever entries become pending (one waiter for the publisher, no task)."""
        ...

    def take(self, max_entries: int) -> list[Entry]: ...

    def ack(self, entries: list[Entry]) -> None: ...

    def requeue(self) -> int:
        """Put every in-flight entry back at the front; return how many."""
        ...

    @property
    def pending(self) -> int: ...

    @property
    def inflight(self) -> int: ...

    def stats(self) -> OutboxStats: ...

    def close(self) -> None: ...


def take_entries(entries: deque[Entry], n: int, inflight: dict[int, Entry], out: list[Entry]) -> int:
    """Move up to `n` entries from the front of `entries` into flight (and `out`); return how many."""
    got = 0
    while entries and got < n:
        entry = entries.popleft()
        inflight[entry.id] = entry
        out.append(entry)
        got += 1
    return got


def requeued(inflight: dict[int, Entry]) -> list[Entry]:
    """Every entry in flight, in id order and marked replay; nothing is in flight any more."""
    back = sorted(inflight.values(), key=lambda e: e.id)
    inflight.clear()
    for entry in back:
        entry.replay = True
    return back
