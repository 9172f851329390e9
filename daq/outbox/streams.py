"""Where the disk outbox's entries wait: two streams (backlog and this run), in flight, and taking.

Entries wait in two streams: the *backlog*, everything found on disk at start-up (returned
with `replay=True`), and *this run*, everything put() since. A stream is a row of pieces in
id order, each in memory (a deque of entries: for this run, a cached copy of what is on disk,
or entries held only in memory) or on disk (a byte range of one segment, read as it is
taken). Within a stream entries are taken for the first time in id order; `requeue()` puts
the in-flight entries back at the front of their own stream, in id order, marked replay.

Interleaving (`take`): while both streams wait, a take of n entries serves this run first and
gives the backlog floor(backlog_share * n) of them, the fraction carried over to the next take
(with n = 1: every 1/backlog_share-th take), plus every slot this run leaves unused. The list
is sorted by id (backlog first).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from daq.outbox.base import Entry, requeued, take_entries
from daq.outbox.codec import Names, read_record_chunk, scan_from, whole_record
from daq.outbox.segments import Segment, SegmentFiles

log = logging.getLogger(__name__)


@dataclass(slots=True)
class VolatileEntry(Entry):
    """An entry held in memory only: put while the disk was unusable, or in flight when the
    size bound deleted its segment."""


class MemPiece:
    """Entries waiting in memory (for entries of this run: a cached copy of what is on disk)."""

    __slots__ = ("entries",)

    def __init__(self, entries: deque[Entry] | None = None) -> None:
        self.entries: deque[Entry] = entries if entries is not None else deque()


class DiskPiece:
    """Records waiting only on disk: bytes [start, end) of one segment."""

    __slots__ = ("bad_at", "buf", "buf_at", "count", "end", "seg", "start")

    def __init__(self, seg: Segment, start: int, end: int, count: int) -> None:
        self.seg = seg
        self.start = start
        self.end = end
        self.count = count  # records in [start, end) not acked yet
        self.buf = b""
        self.buf_at = 0
        self.bad_at = -1  # where reading found a damaged record


class Stream:
    """Entries in id order: pieces, each in memory or on disk."""

    __slots__ = ("count", "pieces", "replay")

    def __init__(self, replay: bool) -> None:
        self.pieces: deque[MemPiece | DiskPiece] = deque()
        self.count = 0
        self.replay = replay


class Streams:
    """The backlog and this run's stream, the entries in flight, and the bytes they hold in memory."""

    def __init__(self, files: SegmentFiles, names: Names, backlog_share: float, memory_bytes: int) -> None:
        self.files = files
        self.path: Path = files.path
        self.names = names
        self.backlog_share = backlog_share
        self.memory_bytes = memory_bytes
        self.backlog = Stream(replay=True)
        self.live = Stream(replay=False)
        self.inflight: dict[int, Entry] = {}
        self.run_first = 1  # the first id of this run: requeue splits the streams there
        self.dropped = 0  # samples lost to the size bound (or to a corrupt file), never sent
        self.damaged = 0  # of them, lost to a corrupt file
        self.mem_bytes = 0  # payload bytes in memory pieces
        self.volatile_bytes = 0  # payload bytes held only in memory (pending or in flight)
        self.also_wake: asyncio.Event | None = None  # the publisher's own (`notify`)
        self.on_damage: Callable[[str, int], None] | None = None  # (segment, records): lost reading it
        self._credit = 0.0

    @property
    def pending(self) -> int:
        return self.backlog.count + self.live.count

    def signal(self) -> None:
        """Entries are pending: wake the publisher (`notify`)."""
        if self.also_wake is not None:
            self.also_wake.set()

    # -- adding -------------------------------------------------------------------------

    def add_backlog(self, segments: Iterable[Segment]) -> None:
        """The segments of earlier runs (their `refs` taken, one per run): their intact records not
        acked join the backlog."""
        for seg in segments:
            for run in seg.runs:
                self.backlog.pieces.append(DiskPiece(seg, run.start, run.end, run.left))
                self.backlog.count += run.left
        if self.backlog.count:
            self.signal()

    def add_written(self, entry: Entry, seg: Segment, offset: int, size: int) -> None:
        """An entry of this run, just written to `seg` at `offset` (`size` bytes): cached while memory allows."""
        live = self.live
        pieces = live.pieces
        tail = pieces[-1] if pieces else None
        if self.mem_bytes < self.memory_bytes and not isinstance(tail, DiskPiece):
            if tail is None:
                tail = MemPiece()
                pieces.append(tail)
            tail.entries.append(entry)
            self.mem_bytes += len(entry.payload)
            seg.outstanding += 1
        elif isinstance(tail, DiskPiece) and tail.seg is seg and tail.end == offset:
            tail.end += size
            tail.count += 1
        else:
            pieces.append(DiskPiece(seg, offset, offset + size, 1))
            seg.refs += 1
        live.count += 1
        self.signal()

    def add_volatile(self, entry: VolatileEntry) -> None:
        """An entry of this run held in memory only."""
        pieces = self.live.pieces
        tail = pieces[-1] if pieces else None
        if not isinstance(tail, MemPiece):
            tail = MemPiece()
            pieces.append(tail)
        tail.entries.append(entry)
        size = len(entry.payload)
        self.mem_bytes += size
        self.volatile_bytes += size
        self.live.count += 1
        self.signal()

    # -- taking, acking, requeueing -----------------------------------------------------

    def take(self, max_entries: int) -> list[Entry]:
        """Up to `max_entries` pending entries, now in flight, sorted by id (see "Interleaving")."""
        out: list[Entry] = []
        backlog, live = self.backlog, self.live
        if backlog.count and live.count:
            self._credit = min(self._credit + max_entries * self.backlog_share, float(max_entries))
            quota = int(self._credit)
            fresh: list[Entry] = []
            self._take_from(live, max_entries - quota, fresh)
            got = self._take_from(backlog, max_entries - len(fresh), out)
            self._credit = 0.0 if got < quota else self._credit - quota
            out.extend(fresh)
        else:
            self._credit = 0.0
            self._take_from(backlog if backlog.count else live, max_entries, out)
        return out

    def ack(self, entries: list[Entry]) -> list[Segment]:
        """Mark these acked (no longer in flight); return the segments whose ack buffers they joined."""
        touched: list[Segment] = []
        seg: Segment | None = None
        inflight = self.inflight
        for entry in entries:
            mine = inflight.pop(entry.id, None)
            if mine is None:
                continue
            if isinstance(mine, VolatileEntry):
                self.volatile_bytes -= len(mine.payload)
                continue
            if seg is None or not seg.first <= entry.id <= seg.last:
                seg = self.files.segment_of(entry.id)
                if seg is None:
                    continue  # its segment was dropped by the size bound meanwhile
            i = entry.id - seg.first
            if seg.done[i]:
                continue
            seg.done[i] = 1
            seg.n_done += 1
            seg.outstanding -= 1
            if not seg.ack_buf:
                touched.append(seg)
            seg.ack_buf.append(entry.id)
        return touched

    def requeue(self) -> int:
        """Put every in-flight entry back at the front of its stream, in id order, marked replay."""
        if not self.inflight:
            return 0
        back = requeued(self.inflight)
        split = bisect.bisect_left(back, self.run_first, key=lambda e: e.id)
        for stream, part in ((self.backlog, back[:split]), (self.live, back[split:])):
            if part:
                self.mem_bytes += sum(len(entry.payload) for entry in part)
                stream.pieces.appendleft(MemPiece(deque(part)))
                stream.count += len(part)
        self.signal()
        return len(back)

    def volatile_held(self) -> int:
        """Entries pending or in flight that are held in memory only."""
        held = sum(1 for e in self.inflight.values() if isinstance(e, VolatileEntry))
        for stream in (self.backlog, self.live):
            for piece in stream.pieces:
                if isinstance(piece, MemPiece):
                    held += sum(1 for e in piece.entries if isinstance(e, VolatileEntry))
        return held

    def _take_from(self, stream: Stream, n: int, out: list[Entry]) -> int:
        got = 0
        pieces = stream.pieces
        while got < n and pieces:
            piece = pieces[0]
            if isinstance(piece, MemPiece):
                start = len(out)
                got += take_entries(piece.entries, n - got, self.inflight, out)
                self.mem_bytes -= sum(len(entry.payload) for entry in islice(out, start, None))
                if not piece.entries:
                    pieces.popleft()
            else:
                read = self._read(piece, n - got, out, stream.replay)
                got += read
                piece.count -= read
                if piece.count <= 0 or piece.start >= piece.end:
                    pieces.popleft()
                    piece.buf = b""
                    if piece.count > 0:  # cut short by a corrupt or unreadable record
                        after = self._resync(piece)
                        pieces.extendleft(reversed(after))
                        piece.seg.refs += len(after)
                        piece.count -= sum(p.count for p in after)
                        lost = piece.count
                        self._lost(piece, stream)
                        self.damaged += lost
                        if self.on_damage is not None and lost:
                            self.on_damage(piece.seg.name, lost)
                    piece.seg.refs -= 1
                    self.files.maybe_delete(piece.seg)
        stream.count -= got
        return got

    def _read(self, piece: DiskPiece, n: int, out: list[Entry], replay: bool) -> int:
        """Read up to n unacked records of `piece` into `out` (and in flight); advance the piece.

        On a corrupt or unreadable record the piece is ended (`start = end`) with `count` left over.
        """
        seg = piece.seg
        done = seg.done
        first = seg.first
        count = seg.count
        inflight = self.inflight
        decoded = self.names.decoded
        fmt = seg.fmt
        head = fmt.head
        head_size = head.size
        crc_from = fmt.crc_from
        magic_ok = fmt.magic
        got = 0
        while got < n and piece.start < piece.end:
            buf = piece.buf
            pos = piece.start - piece.buf_at
            if not whole_record(buf, pos, fmt):
                try:
                    buf = read_record_chunk(seg.fd, piece.start, piece.end, fmt)
                except OSError as exc:
                    log.error("outbox %s: cannot read %s: %s", self.path, seg.name, exc)
                    piece.start = piece.end
                    return got
                piece.buf, piece.buf_at, pos = buf, piece.start, 0
                if not whole_record(buf, 0, fmt):
                    log.error("outbox %s: %s ends in a partial record at byte %d", self.path, seg.name, piece.start)
                    piece.bad_at = piece.start
                    piece.start = piece.end
                    return got
            view = memoryview(buf)
            size = len(buf)
            while got < n and pos + head_size <= size:
                magic, crc, length, ident, dial_len, topic_len = head.unpack_from(buf, pos)
                end = pos + head_size + length
                if end > size:
                    break
                i = ident - first
                if (
                    magic != magic_ok
                    or not 0 <= i < count
                    or dial_len + topic_len > length
                    or zlib.crc32(view[pos + crc_from : end]) != crc
                ):
                    log.error("outbox %s: corrupt record in %s at byte %d", self.path, seg.name, piece.buf_at + pos)
                    piece.bad_at = piece.buf_at + pos
                    piece.start = piece.end
                    return got
                if not done[i]:
                    at = pos + head_size
                    mid = at + dial_len
                    body = mid + topic_len
                    dial_b = buf[at:mid]
                    dial = decoded.get(dial_b) or self.names.decode(dial_b)
                    topic_b = buf[mid:body]
                    topic = decoded.get(topic_b) or self.names.decode(topic_b)
                    entry = Entry(ident, dial, topic, buf[body:end], replay)
                    inflight[ident] = entry
                    out.append(entry)
                    seg.outstanding += 1
                    got += 1
                pos = end
            piece.start = piece.buf_at + pos
        return got

    def _resync(self, piece: DiskPiece) -> list[DiskPiece]:
        """Pieces for the intact records after the damaged one at `piece.bad_at` (format 1: none)."""
        seg, at = piece.seg, piece.bad_at
        if at < 0:
            return []
        try:
            buf = os.pread(seg.fd, piece.end - at, at)
        except OSError:
            return []
        res = scan_from(buf, seg.fmt, 0, seg.first, seg.first + seg.count, seg.done)
        out: list[DiskPiece] = []
        for run in res.runs:
            lo = run.first - seg.first
            left = run.count - seg.done[lo : lo + run.count].count(1)
            if left:
                out.append(DiskPiece(seg, at + run.start, at + run.end, left))
        return out

    def _lost(self, piece: DiskPiece, stream: Stream) -> None:
        self.dropped += piece.count
        stream.count -= piece.count
        piece.count = 0

    # -- dropping (the size bound) ------------------------------------------------------

    def drop_segment(self, seg: Segment) -> None:
        """Delete a whole segment; its records waiting to be taken are counted as dropped.

        Its records in flight are not dropped: the broker may acknowledge them, or they are
        requeued and sent again; but from now on they are held in memory only.
        """
        lo, hi = seg.first, seg.last
        for ident, entry in self.inflight.items():
            if lo <= ident <= hi and not isinstance(entry, VolatileEntry):
                self.inflight[ident] = VolatileEntry(ident, entry.dial, entry.topic, entry.payload, entry.replay)
                self.volatile_bytes += len(entry.payload)
        for stream in (self.backlog, self.live):
            kept: deque[MemPiece | DiskPiece] = deque()
            for piece in stream.pieces:
                if isinstance(piece, DiskPiece):
                    if piece.seg is seg:
                        self._lost(piece, stream)
                        continue
                else:
                    entries = piece.entries
                    if entries and entries[0].id <= hi and entries[-1].id >= lo:
                        gone = [e for e in entries if lo <= e.id <= hi]
                        piece.entries = deque(e for e in entries if not (lo <= e.id <= hi))
                        self.mem_bytes -= sum(len(e.payload) for e in gone)
                        self.dropped += len(gone)
                        stream.count -= len(gone)
                    if not piece.entries:
                        continue
                kept.append(piece)
            stream.pieces = kept
        self.files.delete(seg)

    def drop_oldest_in_memory(self) -> bool:
        """Drop the oldest entry waiting in memory (there are no segments); False if there is none."""
        for stream in (self.backlog, self.live):
            while stream.pieces:
                piece = stream.pieces[0]
                if isinstance(piece, MemPiece) and piece.entries:
                    entry = piece.entries.popleft()
                    self.mem_bytes -= len(entry.payload)
                    if isinstance(entry, VolatileEntry):
                        self.volatile_bytes -= len(entry.payload)
                    stream.count -= 1
                    self.dropped += 1
                    return True
                stream.pieces.popleft()  # (a disk piece cannot be here: there are no segments)
        return False
