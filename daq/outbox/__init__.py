"""Outboxes: where samples wait for the broker's acknowledgement."""

from daq.outbox.base import Entry, Outbox
from daq.outbox.memory import MemoryOutbox

__all__ = ["Entry", "MemoryOutbox", "Outbox"]
