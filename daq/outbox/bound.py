"""The disk outbox's size bound: `max_bytes` over the segment and ack files plus what is held only in memory.

`policy="drop-oldest"` deletes the oldest segment and counts its entries that were waiting in
`dropped`; `policy="refuse-new"` drops the new sample and counts it. When the bound is first
hit, an `outbox.full` event is emitted once for the episode; when acks bring the usage back
under 90 % of the bound, `outbox.ok`. What is dropped is said as `outbox.dropped` events
(`records` since the last one, `total` so far), at most one per `DROP_EVENT_S`: the first drop
at once, then the count of each second with drops (said at the next drop or ack after it).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Literal

from daq.outbox.events import Events
from daq.outbox.segments import SegmentFiles
from daq.outbox.streams import Streams

log = logging.getLogger(__name__)

Policy = Literal["drop-oldest", "refuse-new"]
_OK_BELOW = 0.9
DROP_EVENT_S = 1.0


class SizeBound:
    """Makes room for new records by the policy, and says when the outbox is full and when it is not."""

    def __init__(self, max_bytes: int, policy: Policy, files: SegmentFiles, streams: Streams, events: Events) -> None:
        if policy not in ("drop-oldest", "refuse-new"):
            raise ValueError(f"outbox policy must be 'drop-oldest' or 'refuse-new', not {policy!r}")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.max_bytes = max_bytes
        self.policy: Policy = policy
        self.full = False
        self._files = files
        self._streams = streams
        self._events = events
        self._reported = 0  # drops said in outbox.dropped events so far
        self._reported_at = -math.inf

    def bound_dropped(self) -> int:
        """Samples dropped by the bound (not lost to damage)."""
        return self._streams.dropped - self._streams.damaged

    def report_drops(self, force: bool = False) -> None:
        """Say the drops not said yet, unless the last `outbox.dropped` was less than a second ago."""
        total = self.bound_dropped()
        if total == self._reported:
            return
        now = time.monotonic()
        if not force and now - self._reported_at < DROP_EVENT_S:
            return
        n = total - self._reported
        self._reported, self._reported_at = total, now
        path = self._files.path
        message = f"outbox {path}: {n} samples dropped by its size bound ({self.policy}); {total} so far"
        log.warning("%s", message)
        data: dict[str, object] = {"path": str(path), "records": n, "total": total, "policy": self.policy}
        self._events.emit("outbox.dropped", message, data)

    def usage(self) -> int:
        return self._files.disk_bytes + self._streams.volatile_bytes

    def admit(self, size: int) -> bool:
        """Can `size` more bytes be stored (after applying the policy)? False: the new sample is dropped."""
        return self._files.disk_bytes + self._streams.volatile_bytes + size <= self.max_bytes or self._make_room(size)

    def check_ok(self) -> None:
        """After acks: say drops not said yet; leave the full episode once the usage is back under 90 % of the bound."""
        if self._reported != self.bound_dropped():
            self.report_drops()
        if self.full and self.usage() < _OK_BELOW * self.max_bytes:
            self.full = False
            path, dropped = self._files.path, self._streams.dropped
            message = f"outbox {path} is back under 90% of its bound; {dropped} samples dropped so far"
            log.warning("%s", message)
            self._events.emit("outbox.ok", message, {"path": str(path), "was": "full", "dropped": dropped})

    def _make_room(self, size: int) -> bool:
        streams, files = self._streams, self._files
        if not self.full:
            self.full = True
            what = "the oldest unsent samples" if self.policy == "drop-oldest" else "new samples"
            message = f"outbox {files.path} reached its bound of {self.max_bytes} bytes: dropping {what}"
            log.warning("%s", message)
            data: dict[str, object] = {"path": str(files.path), "max_bytes": self.max_bytes, "policy": self.policy}
            self._events.emit("outbox.full", message, data)
        if self.policy == "refuse-new":
            streams.dropped += 1
            self.report_drops()
            return False
        admitted = True
        while self.usage() + size > self.max_bytes:
            if files.segments:
                streams.drop_segment(files.segments[0])
            elif not streams.drop_oldest_in_memory():
                streams.dropped += 1
                admitted = False
                break
        self.report_drops()
        return admitted
