"""The outbox: every sample enters it before it is published and leaves when the broker acknowledged it.

The publisher `take`s entries (they become in flight), publishes them, and `ack`s them on
PUBACK. After a lost connection `requeue` puts everything in flight back at the front, in
order, so per-dial `seq` order is kept and nothing read is lost (duplicates are possible).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the station's health reports about its outbox."""

    kind: str  # "disk" (kept across restarts) or "memory"
    pending: int
    inflight: int
    dropped: int = 0  # samples lost to a size bound, never sent
    degraded: bool = False  # the disk is unusable; new samples held in memory only
    bytes_on_disk: int = 0
    recovered: int = 0  # samples found at start-up, to replay


@dataclass(slots=True)
class Entry:
    id: int
    dial: str
    topic: str
    payload: bytes
    replay: bool = False  # sent before, or left over from an earlier run


class Outbox(Protocol):
    def put(self, dial: str, topic: str, payload: bytes) -> None: ...

    async def wait(self) -> None:
        """Return when at least one entry is waiting to be taken."""
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
