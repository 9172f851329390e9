"""The disk outbox's events, handed to a sink, never raising.

Kinds: outbox.full, outbox.ok, outbox.dropped (daq/outbox/bound.py), outbox.degraded
(daq/outbox/degraded.py), outbox.replay, outbox.corrupt, outbox.segment_missing
(daq/outbox/recovery.py; outbox.corrupt also from daq/outbox/disk.py when a record is damaged
while running).

Events that happen before the outbox is in use (inside its constructor) are held back and
delivered at the first put(), notify() or take().
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

EventSink = Callable[[str, str, dict[str, object]], None]


class Events:
    """Calls `sink(kind, message, data)`; an exception in the sink is logged, not raised."""

    def __init__(self, sink: EventSink | None) -> None:
        self.sink = sink
        self.deferred: list[tuple[str, str, dict[str, object]]] | None = []  # None once delivered

    def emit(self, kind: str, message: str, data: dict[str, object]) -> None:
        if self.deferred is not None:
            self.deferred.append((kind, message, data))
            return
        if self.sink is None:
            return
        try:
            self.sink(kind, message, data)
        except Exception:
            log.exception("outbox event handler failed on %s", kind)

    def deliver_deferred(self) -> None:
        """From now on events go to the sink at once; the ones held back go there now."""
        deferred, self.deferred = self.deferred or [], None
        for kind, message, data in deferred:
            self.emit(kind, message, data)
