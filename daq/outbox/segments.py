"""The disk outbox's folder: its lock, its segment files and their ack files.

Layout of the folder: segments `seg-<first id>.open` (being written), renamed
`seg-<first id>-<count>.log` when sealed; per segment `seg-<first id>.ack` (acked ids, u64
little-endian, appended); `SEGMENTS`, the journal of which segments should exist
(daq/outbox/journal.py); and `LOCK` (flock: one process per folder, a second gets
FatalError). A segment is deleted once every record in it is acked or dropped: that is the
compaction. Every write of a record or an ack goes through `_write` (tests make it fail).

At start-up (`load`) every segment is scanned (daq/outbox/codec.py): damaged records are
skipped, the intact ones after them kept; a segment the journal names but whose file is
gone, or an ack file without its segment, is a missing segment. What was lost is returned in
a `LoadReport` for the outbox to announce.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import logging
import os
import re
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from daq.exceptions import FatalError
from daq.outbox.codec import MIN_RECORD, SEG_HEADER, V2, Format, Run, ScanResult, scan
from daq.outbox.journal import COMPACT_BYTES, Journal

log = logging.getLogger(__name__)

_OPEN_RE = re.compile(r"seg-(\d{20})\.open")
_ACK_RE = re.compile(r"seg-(\d{20})\.ack")
_SEALED_RE = re.compile(r"seg-(\d{20})-(\d+)\.log")
_write: Callable[[int, bytes], int] = os.write  # every write to the folder goes through this (tests make it fail)


def append(fd: int, data: bytes) -> None:
    """Write `data` with one os.write to a file opened O_APPEND; a short write raises ENOSPC."""
    written = _write(fd, data)
    if written != len(data):
        raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")


class Segment:
    """One log file: records with consecutive ids `first`..`first + count - 1`."""

    __slots__ = (
        "ack_buf",
        "ack_fd",
        "ack_size",
        "count",
        "done",
        "fd",
        "first",
        "fmt",
        "lost",
        "n_done",
        "name",
        "outstanding",
        "refs",
        "runs",
        "scan",
        "size",
        "writable",
    )

    def __init__(self, first: int, name: str, fd: int, writable: bool) -> None:
        self.first = first
        self.name = name
        self.fd = fd
        self.writable = writable  # the segment being appended to
        self.size = 0  # bytes of valid records
        self.count = 0
        self.done = bytearray()  # 1 per record acked
        self.n_done = 0
        self.outstanding = 0  # records held in memory (pending or in flight), not acked
        self.refs = 0  # disk pieces that still have records of this segment to read
        self.ack_fd = -1
        self.ack_size = 0
        self.ack_buf: list[int] = []
        self.fmt: Format = V2
        self.runs: list[Run] = []  # of a segment found at start-up: its intact records with some not acked
        self.lost = 0  # records of it that could not be read (damaged), counted as done
        self.scan: ScanResult | None = None  # what the start-up scan found

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    @property
    def ack_name(self) -> str:
        return f"seg-{self.first:020d}.ack"


class SegmentFiles:
    """The segments of the folder `path`, by first id, and the bytes their files hold."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self.segments: list[Segment] = []  # by first id
        self.firsts: list[int] = []
        self.active: Segment | None = None  # the segment being appended to
        self.disk_bytes = 0
        self.lock_fd = -1
        self.dir_fd = -1
        self.journal = Journal(path, fsync)

    # -- the folder ---------------------------------------------------------------------

    def open_folder(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.lock()
        except OSError as exc:  # a read-only folder: no other process writes it; read it all the same
            log.debug("outbox %s: cannot lock: %s", self.path, exc)

    def lock(self) -> None:
        fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FatalError(
                f"outbox folder {self.path} is in use by another process: give each daemon its own outbox path"
            ) from None
        self.lock_fd = fd
        try:
            self.dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            self.dir_fd = -1

    def next_id(self) -> int:
        """The id after every segment's records (ids start at 1)."""
        return max((s.last + 1 for s in self.segments), default=1)

    def top_id_in_folder(self) -> int:
        """An id beyond every record the folder may hold, read from file names and sizes only."""
        top = 0
        for name in os.listdir(self.path):
            if m := _SEALED_RE.fullmatch(name):
                top = max(top, int(m.group(1)) + int(m.group(2)))
            elif m := _OPEN_RE.fullmatch(name):
                top = max(top, int(m.group(1)) + os.stat(self.path / name).st_size // MIN_RECORD + 1)
        return top

    def close_files(self) -> None:
        """Close every file without writing anything: what a crash leaves behind."""
        for seg in self.segments:
            for fd in (seg.fd, seg.ack_fd):
                if fd >= 0:
                    os.close(fd)
            seg.fd = seg.ack_fd = -1
        for fd in (self.lock_fd, self.dir_fd):
            if fd >= 0:
                os.close(fd)
        self.lock_fd = self.dir_fd = -1
        self.journal.close()

    # -- writing ------------------------------------------------------------------------

    def append_record(self, ident: int, record: bytes, segment_bytes: int) -> tuple[Segment, int]:
        """Append the record of id `ident` (the next id); return its segment and offset. Raises OSError."""
        seg = self.active
        size = len(record)
        if seg is None or (seg.count and seg.size + size > segment_bytes):
            seg = self.rotate(ident)
        written = _write(seg.fd, record)  # (append() inlined: this is the hot path)
        if written != size:
            raise OSError(errno.ENOSPC, f"short write ({written} of {size} bytes)")
        if self.fsync:
            os.fsync(seg.fd)
        offset = seg.size
        seg.size += size
        seg.count += 1
        seg.done.append(0)
        self.disk_bytes += size
        return seg, offset

    def rotate(self, first: int) -> Segment:
        if self.active is not None:
            self.seal(self.active)
        name = f"seg-{first:020d}.open"
        fd = os.open(self.path / name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            append(fd, SEG_HEADER)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path / name)
            raise
        seg = Segment(first, name, fd, writable=True)
        seg.size = len(SEG_HEADER)
        self.disk_bytes += seg.size
        self.segments.append(seg)
        self.firsts.append(first)
        self.active = seg
        self.sync_dir()
        self.journal.opened(first)
        return seg

    def cut_active(self) -> None:
        """A write failed: cut a partial record off the segment being written, and seal it."""
        seg = self.active
        if seg is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(seg.fd, seg.size)
            self.seal(seg)

    def seal(self, seg: Segment) -> None:
        """No more appends to `seg`: give it its final name (best effort); delete it if all acked."""
        seg.writable = False
        if seg is self.active:
            self.active = None
        if seg.count and seg.name.endswith(".open"):
            name = f"seg-{seg.first:020d}-{seg.count}.log"
            try:
                os.rename(self.path / seg.name, self.path / name)
                seg.name = name
                self.sync_dir()
                self.journal.sealed(seg.first, seg.count)
            except OSError as exc:
                log.debug("outbox %s: cannot seal %s: %s", self.path, seg.name, exc)
        self.maybe_delete(seg)

    def sync_dir(self) -> None:
        if self.fsync and self.dir_fd >= 0:
            try:
                os.fsync(self.dir_fd)
            except OSError as exc:
                log.debug("outbox %s: fsync of the folder failed: %s", self.path, exc)

    def write_acks(self, seg: Segment) -> None:
        """Append the buffered acks of `seg` to its ack file; raises OSError (the buffer is kept)."""
        data = array("Q", seg.ack_buf)
        if sys.byteorder != "little":
            data.byteswap()
        raw = data.tobytes()
        if seg.ack_fd < 0:
            seg.ack_fd = os.open(self.path / seg.ack_name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            append(seg.ack_fd, raw)
        except OSError:
            # A torn ack would misalign every later one: cut it off and keep the buffer.
            with contextlib.suppress(OSError):
                os.ftruncate(seg.ack_fd, seg.ack_size)
            raise
        seg.ack_buf.clear()
        seg.ack_size += len(raw)
        self.disk_bytes += len(raw)

    def write_all_acks(self) -> None:
        """Append every segment's buffered acks; raises OSError at the first that fails."""
        for seg in self.segments:
            if seg.ack_buf:
                self.write_acks(seg)

    # -- finding and deleting -----------------------------------------------------------

    def segment_of(self, ident: int) -> Segment | None:
        i = bisect.bisect_right(self.firsts, ident) - 1
        if i < 0:
            return None
        seg = self.segments[i]
        return seg if ident <= seg.last else None

    def maybe_delete(self, seg: Segment) -> None:
        if not seg.writable and seg.refs <= 0 and seg.outstanding <= 0:
            self.delete(seg)

    def delete(self, seg: Segment) -> None:
        i = bisect.bisect_left(self.firsts, seg.first)
        if i == len(self.segments) or self.segments[i] is not seg:
            return
        del self.segments[i]
        del self.firsts[i]
        if seg is self.active:
            self.active = None
        seg.writable = False
        self.disk_bytes -= seg.size + seg.ack_size
        for fd in (seg.fd, seg.ack_fd):
            if fd >= 0:
                os.close(fd)
        seg.fd = seg.ack_fd = -1
        self.journal.gone(seg.first)
        if self.journal.size > COMPACT_BYTES:
            self.journal.rewrite(self.present())
        for name in (seg.name, seg.ack_name):
            try:
                os.unlink(self.path / name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("outbox %s: cannot delete %s: %s", self.path, name, exc)

    # -- start-up -----------------------------------------------------------------------

    def present(self) -> list[tuple[int, int | None]]:
        """The segments held, for the journal: (first id, count; None while being written)."""
        return [(s.first, None if s.writable else s.count) for s in self.segments]

    def load(self) -> LoadReport:
        """Open the segments of earlier runs: those with records not acked, in id order, and what was lost."""
        started = time.perf_counter()
        report = LoadReport()
        found: list[tuple[int, str, int | None]] = []
        acks: set[int] = set()
        for name in os.listdir(self.path):
            if m := _SEALED_RE.fullmatch(name):
                found.append((int(m.group(1)), name, int(m.group(2))))
            elif m := _OPEN_RE.fullmatch(name):
                found.append((int(m.group(1)), name, None))
            elif m := _ACK_RE.fullmatch(name):
                acks.add(int(m.group(1)))
        found.sort()
        expected, gone = self.journal.read()
        present = {first for first, _, _ in found}
        for first, name, count in found:
            try:
                seg = self._open_old(first, name, count, report)
            except OSError as exc:
                log.error("outbox %s: cannot read %s (%s): its samples are lost", self.path, name, exc)
                report.damaged.append(Damaged(name, count, 0, 0))
                continue
            if seg is None:
                continue
            if self.segments and seg.first <= self.segments[-1].last:
                log.error("outbox %s: %s overlaps the segment before it: ignored", self.path, name)
                os.close(seg.fd)
                continue
            self.segments.append(seg)
            self.firsts.append(seg.first)
            self.disk_bytes += seg.size + seg.ack_size
            if seg.count == seg.n_done:
                self.delete(seg)
                continue
            seg.refs = len(seg.runs)
            report.left.append(seg)
        self._find_missing(expected, gone, present, acks, report)
        self.journal.rewrite(self.present())
        report.ms = (time.perf_counter() - started) * 1000
        return report

    def _find_missing(
        self, expected: dict[int, int | None], gone: set[int], present: set[int], acks: set[int], report: LoadReport
    ) -> None:
        """Segments the journal names (or an ack file points at) whose file is not there."""
        known = sorted(present | set(expected))
        orphans = acks - present - gone
        for first in sorted(set(expected) - present | orphans):
            count = expected.get(first)
            if count is None:  # never sealed (or not in the journal): its ids run up to the next segment's
                later = known[bisect.bisect_right(known, first) :]
                count = later[0] - first if later else None
            acked = read_acks(self.path / f"seg-{first:020d}.ack")
            delivered = len({i for i in acked if count is None or first <= i < first + count})
            records = None if count is None else count - delivered
            if records != 0:
                report.missing.append(Missing(f"seg-{first:020d}", first, records, delivered))
            with contextlib.suppress(OSError):
                os.unlink(self.path / f"seg-{first:020d}.ack")

    def _open_old(self, first: int, name: str, count: int | None, report: LoadReport) -> Segment | None:
        fd = os.open(self.path / name, os.O_RDONLY | os.O_CLOEXEC)
        seg = Segment(first, name, fd, writable=False)
        try:
            buf = os.pread(fd, os.fstat(fd).st_size, 0)
            acked = read_acks(self.path / seg.ack_name)
        except OSError:
            os.close(fd)
            raise
        seg.ack_size = len(acked) * 8
        skip = bytearray(count if count is not None else len(buf) // MIN_RECORD + 1)
        for ident in acked:
            if 0 <= ident - first < len(skip):
                skip[ident - first] = 1
        res = scan(buf, first, count, skip)
        size = len(buf)
        if count is None:  # not sealed: the run that wrote it crashed; keep its valid records
            count = res.last_id - first + 1 if res.runs else 0
            if res.valid_end < size:
                log.warning("outbox %s: cut %d bytes of torn tail off %s", self.path, size - res.valid_end, name)
            size = res.valid_end
            if count == 0:
                os.close(fd)
                for stale in (name, seg.ack_name):
                    with contextlib.suppress(OSError):
                        os.unlink(self.path / stale)
                return None
            try:  # seal it, so that the next start-up need not scan it again
                os.truncate(self.path / name, size)
                sealed = f"seg-{first:020d}-{count}.log"
                os.rename(self.path / name, self.path / sealed)
                seg.name = sealed
            except OSError:
                pass
            damaged = res.damaged_bytes
        else:
            damaged = res.damaged_bytes + size - res.valid_end
        seg.count = count
        seg.size = size
        seg.fmt = res.fmt
        seg.scan = res
        seg.done = done = skip[:count]
        if res.found < count:  # damaged: the ids no intact record holds are lost (unless acked)
            intact = bytearray(count)
            for run in res.runs:
                intact[run.first - first : run.first - first + run.count] = b"\x01" * run.count
            for i in range(count):
                if not intact[i] and not done[i]:
                    done[i] = 1
                    seg.lost += 1
        if seg.lost or damaged:
            report.damaged.append(Damaged(seg.name, seg.lost, damaged, res.fmt.version))
        seg.n_done = done.count(1)
        seg.runs = []
        for run in res.runs:
            lo = run.first - first
            run.left = run.count - done[lo : lo + run.count].count(1)
            if run.left:
                seg.runs.append(run)
        return seg


def read_acks(path: Path) -> array[int]:
    """The ids an ack file holds (a torn last id ignored); empty if there is none."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raw = b""
    acked = array("Q")
    acked.frombytes(raw[: len(raw) - len(raw) % 8])
    if sys.byteorder != "little":
        acked.byteswap()
    return acked


@dataclass(frozen=True, slots=True)
class Damaged:
    """A segment with records that could not be read: `records` lost (None: unknown), `bytes` skipped."""

    segment: str
    records: int | None
    bytes: int
    version: int  # its format (0: the file could not be read)


@dataclass(frozen=True, slots=True)
class Missing:
    """A segment whose file is gone: `records` not delivered with it (None: unknown), `delivered` acked."""

    segment: str
    first: int
    records: int | None
    delivered: int


@dataclass(slots=True)
class LoadReport:
    """What start-up found: the segments to replay, and what could not be recovered."""

    left: list[Segment] = field(default_factory=list)
    damaged: list[Damaged] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    ms: float = 0.0
