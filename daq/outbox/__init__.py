"""Outboxes: where samples wait for the broker's acknowledgement."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from daq.config import DaqConfig, default_outbox_dir
from daq.outbox.base import Entry, Outbox, OutboxStats
from daq.outbox.disk import DiskOutbox
from daq.outbox.memory import MemoryOutbox

__all__ = ["DiskOutbox", "Entry", "MemoryOutbox", "Outbox", "OutboxStats", "make_outbox"]


def make_outbox(config: DaqConfig, on_event: Callable[[str, str, Mapping[str, object]], None]) -> Outbox:
    """The outbox the config asks for: on disk (default) or in memory."""
    cfg = config.outbox
    if cfg.memory:
        return MemoryOutbox()
    return DiskOutbox(
        cfg.path or default_outbox_dir(config.station.id),
        max_bytes=cfg.max_bytes,
        policy=cfg.policy,
        fsync=cfg.fsync,
        backlog_share=cfg.backlog_share,
        on_event=lambda kind, message, data: on_event(kind, message, data),
    )
