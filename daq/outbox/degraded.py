"""The disk outbox's degraded mode: the disk is unusable, so new samples wait in memory only.

Disk trouble (the folder cannot be created or written, ENOSPC, EIO, a short write): put()
never raises. The outbox logs one error line, emits `outbox.degraded` (a message naming the
path and the OS error) once per episode, and keeps new samples in memory, in the same stream
(order kept; entries already on disk are still read from it). Every `retry_s` a put tries the
disk again; when its write works, `outbox.ok`.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable

from daq.exceptions import FatalError
from daq.outbox.events import Events
from daq.outbox.segments import SegmentFiles

log = logging.getLogger(__name__)


class DegradedMode:
    """Whether the disk is usable, when to try it again, and what to say when that changes."""

    def __init__(self, files: SegmentFiles, events: Events, retry_s: float) -> None:
        self.active = False
        self.retry_s = retry_s
        self._retry_at = 0.0
        self._files = files
        self._events = events

    def enter(self, exc: OSError, doing: str) -> None:
        """The disk failed: seal what is open and (once per episode) say so."""
        self._retry_at = time.monotonic() + self.retry_s
        self._files.cut_active()
        if self.active:
            return
        self.active = True
        path = self._files.path
        reason = exc.strerror or str(exc)
        code = errno.errorcode.get(exc.errno, "") if exc.errno is not None else ""
        message = (
            f"outbox folder {path} is unusable ({doing}: {reason}{f' [{code}]' if code else ''}): "
            "new samples are held in memory only, and lost if the daemon dies before they are sent; "
            f"trying the disk again every {self.retry_s:g} s"
        )
        log.error("%s", message)
        data: dict[str, object] = {"path": str(path), "errno": code or None, "error": reason, "operation": doing}
        self._events.emit("outbox.degraded", message, data)

    def may_write(self, prepare: Callable[[], None]) -> bool:
        """Degraded: has the retry time come and can the folder be opened (then the put writes)?

        `prepare` runs once the folder is locked, before the write (it may raise OSError)."""
        if time.monotonic() < self._retry_at:
            return False
        self._retry_at = time.monotonic() + self.retry_s
        files = self._files
        try:
            files.path.mkdir(parents=True, exist_ok=True)
            if files.lock_fd < 0:
                files.lock()
            prepare()
        except (OSError, FatalError) as exc:
            log.debug("outbox %s: still unusable: %s", files.path, exc)
            return False
        return True

    def leave(self) -> None:
        """A probing put has written: write the acks held back, and leave the degraded mode."""
        path = self._files.path
        try:
            self._files.write_all_acks()
        except OSError as exc:
            log.debug("outbox %s: still unusable: %s", path, exc)
            return
        self.active = False
        message = f"outbox folder {path} is writable again: new samples are stored on disk"
        log.warning("%s", message)
        self._events.emit("outbox.ok", message, {"path": str(path), "was": "degraded"})
