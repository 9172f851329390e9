"""The disk outbox's size bound: `max_bytes` over the segment and ack files plus what is held only in memory.

`policy="drop-oldest"` deletes the oldest segment and counts its entries that were waiting in
`dropped`; `policy="refuse-new"` drops the new sample and counts it. When the bound is first
hit, an `outbox.full` event is emitted once for the episode; when acks bring the usage back
under 90 % of the bound, `outbox.ok`.
"""

from __future__ import annotations

import logging
from typing import Literal

from daq.outbox.events import Events
from daq.outbox.segments import SegmentFiles
from daq.outbox.streams import Streams

log = logging.getLogger(__name__)

Policy = Literal["drop-oldest", "refuse-new"]
_OK_BELOW = 0.9


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

    def usage(self) -> int:
        return self._files.disk_bytes + self._streams.volatile_bytes

    def admit(self, size: int) -> bool:
        """Can `size` more bytes be stored (after applying the policy)? False: the new sample is dropped."""
        return self._files.disk_bytes + self._streams.volatile_bytes + size <= self.max_bytes or self._make_room(size)

    def check_ok(self) -> None:
        """After acks: leave the full episode once the usage is back under 90 % of the bound."""
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
            return False
        while self.usage() + size > self.max_bytes:
            if files.segments:
                streams.drop_segment(files.segments[0])
            elif not streams.drop_oldest_in_memory():
                streams.dropped += 1
                return False
        return True
