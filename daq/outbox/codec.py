"""The disk outbox's record format: encode one record, find whole records, scan a segment past damage.

Format 2 (written since issue 13): a segment starts with the 8-byte header `SEG_HEADER` (a magic
and the format version), then records `magic 4 bytes | crc32 u32 | body length u32 | id u64 |
dial length u16 | topic length u16 | dial | topic | payload` (little-endian). The CRC covers
everything after itself. Ids are consecutive within a segment. A damaged record (flipped bytes,
a torn tail) fails its CRC; `scan` then looks for the next record magic whose record is whole,
passes its CRC and has a later id, and goes on from there: every intact record after the damage
is kept, and the ids in between are what was lost.

Format 1 (before issue 13): no segment header, records without the magic. Such segments are
still read; a damaged record in one ends it (there is no magic to resync on), and the records
after it are reported lost.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

SEG_HEADER = b"DQOBX\x00\x00\x02"  # magic + format version 2
MAGIC = b"\xd1\xa1\r\x5a"  # a record's start (CR: never raw in a JSON payload)
_HEAD_NOCRC = struct.Struct("<IQHH")
_CRC = struct.Struct("<I")
READ_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class Format:
    """Where a format's records start and what their header is: (magic, crc, length, id, dial len, topic len)."""

    version: int
    head: struct.Struct
    magic: bytes  # b"" in format 1
    crc_from: int  # offset in a record where the CRC'd bytes start
    data_start: int  # offset in a segment of its first record


V1 = Format(1, struct.Struct("<0sIIQHH"), b"", 4, 0)
V2 = Format(2, struct.Struct("<4sIIQHH"), MAGIC, 8, len(SEG_HEADER))
HEAD = V2.head
MIN_RECORD = V1.head.size  # no record of any format is smaller


class Names:
    """Dial and topic names, encoded and decoded once each (they repeat in every record)."""

    __slots__ = ("decoded", "encoded")

    def __init__(self) -> None:
        self.encoded: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self.decoded: dict[bytes, str] = {}

    def encode(self, dial: str, topic: str) -> tuple[bytes, bytes]:
        names = self.encoded.get((dial, topic))
        if names is None:
            names = self.encoded[(dial, topic)] = (dial.encode(), topic.encode())
        return names

    def decode(self, raw: bytes) -> str:
        name = self.decoded.get(raw)
        if name is None:
            name = self.decoded[raw] = raw.decode(errors="replace")
        return name


def encode(ident: int, dial_b: bytes, topic_b: bytes, body: bytes) -> bytes:
    """The format-2 record of id `ident`; `body` is `dial_b + topic_b + payload`."""
    head = _HEAD_NOCRC.pack(len(body), ident, len(dial_b), len(topic_b))
    return b"".join((MAGIC, _CRC.pack(zlib.crc32(body, zlib.crc32(head))), head, body))


def whole_record(buf: bytes, pos: int, fmt: Format = V2) -> bool:
    """Does `buf` hold the whole record starting at `pos`?"""
    head = fmt.head
    return pos >= 0 and pos + head.size <= len(buf) and pos + head.size + head.unpack_from(buf, pos)[2] <= len(buf)


def read_record_chunk(fd: int, start: int, end: int, fmt: Format = V2) -> bytes:
    """Bytes from `start` (a record boundary) up to `end`: a chunk, or at least one whole record."""
    head = fmt.head
    buf = os.pread(fd, min(READ_CHUNK, end - start), start)
    if len(buf) >= head.size:
        need = head.size + head.unpack_from(buf, 0)[2]
        if len(buf) < need <= end - start:
            buf = os.pread(fd, need, start)
    return buf


def detect(buf: bytes) -> Format:
    """The format of a segment whose bytes are `buf`: 2 unless it starts with a valid format-1 record."""
    if buf[: len(SEG_HEADER)] == SEG_HEADER:
        return V2
    if record_end(buf, memoryview(buf), 0, V1) > 0:
        return V1
    return V2  # a damaged header: the records still resync on their magic


def record_end(buf: bytes, view: memoryview, pos: int, fmt: Format) -> int:
    """The end of a whole, valid record at `pos`, or -1."""
    head = fmt.head
    if pos + head.size > len(buf):
        return -1
    magic, crc, length, _ident, dial_len, topic_len = head.unpack_from(buf, pos)
    end = pos + head.size + length
    if magic != fmt.magic or end > len(buf) or dial_len + topic_len > length:
        return -1
    return end if zlib.crc32(view[pos + fmt.crc_from : end]) == crc else -1


@dataclass(slots=True)
class Run:
    """Valid records with consecutive ids `first`..: bytes [start, end) of a segment."""

    start: int
    end: int
    first: int
    count: int
    left: int = 0  # of them not acked yet (set at start-up)


@dataclass(slots=True)
class ScanResult:
    """What a scan of one segment found."""

    fmt: Format
    runs: list[Run] = field(default_factory=list)
    last_id: int = 0  # the id of the last valid record (0: none)
    valid_end: int = 0  # the end of the last valid record
    damaged_bytes: int = 0  # bytes skipped between valid records
    dials: set[bytes] = field(default_factory=set)  # dial names of the records not in `skip`
    first_payload: bytes | None = None  # of the first valid record not in `skip`
    last_payload: bytes | None = None

    @property
    def found(self) -> int:
        return sum(run.count for run in self.runs)


def scan(buf: bytes, first: int, count: int | None, skip: bytearray | None = None) -> ScanResult:
    """The valid records of a segment's bytes `buf` whose ids are `first`..`first + count - 1`
    (`count` None: not known, a segment not sealed). Damage is skipped (format 2: on to the next
    record magic); `skip[i]` set: record `first + i` is acked (not in `dials` nor the payloads)."""
    fmt = detect(buf)
    pos = fmt.data_start if buf[: fmt.data_start] == SEG_HEADER else 0
    return scan_from(buf, fmt, pos, first, first + count if count is not None else 1 << 64, skip)


def scan_from(buf: bytes, fmt: Format, pos: int, first: int, limit: int, skip: bytearray | None) -> ScanResult:
    """`scan` of bytes of format `fmt` from `pos`: records with ids in [first, limit), rising."""
    head = fmt.head
    unpack = head.unpack_from
    head_size = head.size
    magic_ok, crc_from = fmt.magic, fmt.crc_from
    crc32 = zlib.crc32
    view = memoryview(buf)
    out = ScanResult(fmt)
    runs, dials = out.runs, out.dials
    size = len(buf)
    skip = skip if skip is not None else bytearray()
    n_skip = len(skip)
    expect = first
    run: Run | None = None
    first_at = last_at = -1  # the first and last record not skipped
    while pos + head_size <= size:
        magic, crc, length, ident, dial_len, topic_len = unpack(buf, pos)
        end = pos + head_size + length
        if (
            magic != magic_ok
            or end > size
            or dial_len + topic_len > length
            or not expect <= ident < limit
            or crc32(view[pos + crc_from : end]) != crc
        ):
            if fmt is V1:
                break
            nxt = buf.find(MAGIC, pos + 1)
            if nxt < 0:
                break
            out.damaged_bytes += nxt - pos
            pos = nxt
            run = None
            continue
        if run is None or ident != expect:
            run = Run(pos, end, ident, 0)
            runs.append(run)
        run.end = end
        run.count += 1
        i = ident - first
        if i >= n_skip or not skip[i]:
            at = pos + head_size
            dials.add(buf[at : at + dial_len])
            if first_at < 0:
                first_at = pos
            last_at = pos
        expect = ident + 1
        pos = end
    if runs:
        out.last_id = expect - 1
        out.valid_end = runs[-1].end
    else:
        out.valid_end = min(size, fmt.data_start)
    for at, name in ((first_at, "first_payload"), (last_at, "last_payload")):
        if at >= 0:
            _m, _c, length, _i, dial_len, topic_len = unpack(buf, at)
            setattr(out, name, buf[at + head_size + dial_len + topic_len : at + head_size + length])
    return out


def records(buf: bytes, fmt: Format, runs: list[Run]) -> Iterator[tuple[int, bytes, bytes, int]]:
    """(id, dial, payload, record size) of every record in `runs` (found by `scan` in `buf`)."""
    head = fmt.head
    for run in runs:
        pos = run.start
        while pos < run.end:
            _m, _c, length, ident, dial_len, topic_len = head.unpack_from(buf, pos)
            at = pos + head.size
            end = at + length
            yield ident, buf[at : at + dial_len], buf[at + dial_len + topic_len : end], end - pos
            pos = end
