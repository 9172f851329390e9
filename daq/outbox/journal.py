"""The disk outbox's journal of segments: which segment files the folder should hold.

A segment is deleted when all its records are acked, in any order, so a gap in the numbering
says nothing by itself. The journal, `SEGMENTS` in the folder, is a text file of lines appended
as segments come and go: `open F` (segment of first id F created), `sealed F C` (C records),
`gone F` (deleted by the outbox). At start-up a segment the journal names, not gone, whose file
is absent, was deleted by someone else or lost: it is reported with its count (C minus the ids
its ack file says were delivered; for one never sealed, the ids up to the next segment).

Order of writes keeps this honest after a crash: a file is created before its `open` line and
its `gone` line is written before it is unlinked, so a crash between the two can leave a file
the journal does not know (loaded all the same) but never a journal line for a file that was
deleted on purpose. Writes are best effort (a full disk loses a line: at worst a segment
deleted on purpose at that moment is reported missing at the next start). The journal is
rewritten (atomically) at start-up and when it grows past `COMPACT_BYTES`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

NAME = "SEGMENTS"
COMPACT_BYTES = 256 * 1024


class Journal:
    """Appends `open`/`sealed`/`gone` lines; reads what should be present; rewrites itself."""

    def __init__(self, folder: Path, fsync: bool) -> None:
        self.path = folder / NAME
        self.fsync = fsync
        self.fd = -1
        self.size = 0

    def read(self) -> tuple[dict[int, int | None], set[int]]:
        """Segments that should be present (first id -> count, None: never sealed), and those deleted on purpose."""
        try:
            text = self.path.read_bytes().decode("ascii", errors="replace")
        except FileNotFoundError:
            return {}, set()
        live: dict[int, int | None] = {}
        gone: set[int] = set()
        for line in text.splitlines():
            parts = line.split()
            try:
                if len(parts) == 2 and parts[0] == "open":
                    live[int(parts[1])] = None
                    gone.discard(int(parts[1]))
                elif len(parts) == 3 and parts[0] == "sealed":
                    live[int(parts[1])] = int(parts[2])
                elif len(parts) == 2 and parts[0] == "gone":
                    live.pop(int(parts[1]), None)
                    gone.add(int(parts[1]))
            except ValueError:
                continue  # a torn or damaged line
        return live, gone

    def rewrite(self, present: Iterable[tuple[int, int | None]]) -> None:
        """Replace the journal by these segments (first id, count or None)."""
        lines = "".join(f"open {f}\n" if c is None else f"sealed {f} {c}\n" for f, c in present)
        tmp = self.path.with_name(NAME + ".tmp")
        try:
            self.close()
            tmp.write_text(lines, encoding="ascii")
            os.replace(tmp, self.path)
            self.size = len(lines)
        except OSError as exc:
            log.debug("outbox %s: cannot rewrite the journal: %s", self.path.parent, exc)

    def opened(self, first: int) -> None:
        self._append(f"open {first}\n")

    def sealed(self, first: int, count: int) -> None:
        self._append(f"sealed {first} {count}\n")

    def gone(self, first: int) -> None:
        self._append(f"gone {first}\n")

    def remove(self) -> None:
        """Delete the journal (the folder holds no segment)."""
        self.close()
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.size = 0

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = -1

    def _append(self, line: str) -> None:
        try:
            if self.fd < 0:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            os.write(self.fd, line.encode("ascii"))
            if self.fsync:
                os.fsync(self.fd)
            self.size += len(line)
        except OSError as exc:
            log.debug("outbox %s: cannot write the journal: %s", self.path.parent, exc)
