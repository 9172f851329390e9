"""What a disk outbox folder holds, read without changing anything; and emptying it on purpose.

For `daq outbox show` and `daq outbox discard`: the samples not acknowledged, per boot and dial
(count, seq range, read-time range, bytes), the segments with damaged records, and whether a
daemon holds the folder's LOCK. `discard` deletes the segment, ack and journal files while
holding the lock itself, so it cannot race a daemon starting on the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from daq.exceptions import FatalError
from daq.outbox.codec import MIN_RECORD, records, scan
from daq.outbox.journal import NAME as JOURNAL
from daq.outbox.segments import read_acks

_SEGMENT_RE = re.compile(r"seg-(\d{20})(?:-(\d+)\.log|\.open)")
_OUTBOX_FILE_RE = re.compile(r"seg-\d{20}(?:-\d+\.log|\.open|\.ack)|" + JOURNAL + r"(?:\.tmp)?")


@dataclass(slots=True)
class Group:
    """The samples of one (boot, dial) waiting in the outbox."""

    boot: str
    dial: str
    records: int = 0
    bytes: int = 0
    seq_first: int | None = None
    seq_last: int | None = None
    t_ns_first: int | None = None
    t_ns_last: int | None = None

    def add(self, seq: object, t_ns: object, size: int) -> None:
        self.records += 1
        self.bytes += size
        if isinstance(seq, int):
            self.seq_first = seq if self.seq_first is None else min(self.seq_first, seq)
            self.seq_last = seq if self.seq_last is None else max(self.seq_last, seq)
        if isinstance(t_ns, int):
            self.t_ns_first = t_ns if self.t_ns_first is None else min(self.t_ns_first, t_ns)
            self.t_ns_last = t_ns if self.t_ns_last is None else max(self.t_ns_last, t_ns)


@dataclass(slots=True)
class Inventory:
    path: Path
    exists: bool = False
    in_use: bool = False  # a daemon holds the LOCK
    segments: int = 0
    bytes_on_disk: int = 0
    groups: dict[tuple[str, str], Group] = field(default_factory=dict)
    damaged: dict[str, int] = field(default_factory=dict)  # segment -> records that cannot be read

    @property
    def records(self) -> int:
        return sum(g.records for g in self.groups.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "exists": self.exists,
            "in_use": self.in_use,
            "segments": self.segments,
            "bytes_on_disk": self.bytes_on_disk,
            "records": self.records,
            "groups": [vars_of(g) for g in sorted(self.groups.values(), key=lambda g: (g.t_ns_first or 0, g.dial))],
            "damaged": self.damaged,
        }


def vars_of(group: Group) -> dict[str, object]:
    return {name: getattr(group, name) for name in Group.__slots__}


def in_use(path: Path) -> bool:
    """Does another process hold the folder's LOCK (a daemon running on it)?"""
    try:
        fd = os.open(path / "LOCK", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _segment_files(path: Path) -> Iterator[tuple[int, int | None, Path]]:
    for name in sorted(os.listdir(path)):
        if m := _SEGMENT_RE.fullmatch(name):
            yield int(m.group(1)), int(m.group(2)) if m.group(2) else None, path / name


def _sample_fields(payload: bytes) -> list[tuple[str, object, object]]:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return [("?", None, None)]
    items = body if isinstance(body, list) else [body]
    return [
        (str(s.get("boot", "?")), s.get("seq"), s.get("t_ns")) if isinstance(s, dict) else ("?", None, None)
        for s in items
    ] or [("?", None, None)]


def inventory(path: Path) -> Inventory:
    """What the folder `path` holds, not acknowledged yet (nothing in it is changed)."""
    inv = Inventory(path)
    if not path.is_dir():
        return inv
    inv.exists = True
    inv.in_use = in_use(path)
    for first, count, file in _segment_files(path):
        try:
            buf = file.read_bytes()
            acked = read_acks(path / f"seg-{first:020d}.ack")
        except OSError:
            inv.damaged[file.name] = count or 0
            continue
        inv.segments += 1
        inv.bytes_on_disk += len(buf) + len(acked) * 8
        done = bytearray(count if count is not None else len(buf) // MIN_RECORD + 1)
        for ident in acked:
            if 0 <= ident - first < len(done):
                done[ident - first] = 1
        res = scan(buf, first, count, done)
        total = count if count is not None else (res.last_id - first + 1 if res.runs else 0)
        if res.found < total:  # damaged: ids that no intact record holds and that were not acked
            intact = bytearray(total)
            for run in res.runs:
                intact[run.first - first : run.first - first + run.count] = b"\x01" * run.count
            inv.damaged[file.name] = sum(1 for i in range(total) if not intact[i] and not done[i])
        for ident, dial_b, payload, size in records(buf, res.fmt, res.runs):
            if done[ident - first]:
                continue
            dial = dial_b.decode(errors="replace")
            fields = _sample_fields(payload)
            for boot, seq, t_ns in fields:
                group = inv.groups.setdefault((boot, dial), Group(boot, dial))
                group.add(seq, t_ns, size // len(fields))
    return inv


@contextlib.contextmanager
def holding_lock(path: Path) -> Iterator[None]:
    """Hold the folder's LOCK, or raise FatalError naming the daemon's folder when it is taken."""
    fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FatalError(
                f"outbox folder {path} is in use by a running daemon: stop it first (its samples are still being sent)"
            ) from None
        yield
    finally:
        os.close(fd)


def discard(path: Path) -> int:
    """Delete every segment, ack and journal file of the folder (holding its lock); return how many files."""
    removed = 0
    with holding_lock(path):
        for name in os.listdir(path):
            if _OUTBOX_FILE_RE.fullmatch(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path / name)
                    removed += 1
    return removed
