"""The disk outbox's record format: encode one record, find whole records, scan a torn segment.

A record is `crc32 u32 | body length u32 | id u64 | dial length u16 | topic length u16 | dial
| topic | payload` (little-endian); the CRC covers everything after itself, so a torn tail
(power loss) is found and cut at start-up. Ids are consecutive within a segment.
"""

from __future__ import annotations

import os
import struct
import zlib

HEAD = struct.Struct("<IIQHH")  # crc32, body length, id, dial length, topic length
_HEAD_NOCRC = struct.Struct("<IQHH")
_CRC = struct.Struct("<I")
READ_CHUNK = 256 * 1024


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
            name = self.decoded[raw] = raw.decode()
        return name


def encode(ident: int, dial_b: bytes, topic_b: bytes, body: bytes) -> bytes:
    """The record of id `ident`; `body` is `dial_b + topic_b + payload`."""
    head = _HEAD_NOCRC.pack(len(body), ident, len(dial_b), len(topic_b))
    return b"".join((_CRC.pack(zlib.crc32(body, zlib.crc32(head))), head, body))


def whole_record(buf: bytes, pos: int) -> bool:
    """Does `buf` hold the whole record starting at `pos`?"""
    return pos >= 0 and pos + HEAD.size <= len(buf) and pos + HEAD.size + HEAD.unpack_from(buf, pos)[1] <= len(buf)


def read_record_chunk(fd: int, start: int, end: int) -> bytes:
    """Bytes from `start` (a record boundary) up to `end`: a chunk, or at least one whole record."""
    buf = os.pread(fd, min(READ_CHUNK, end - start), start)
    if len(buf) >= HEAD.size:
        need = HEAD.size + HEAD.unpack_from(buf, 0)[1]
        if len(buf) < need <= end - start:
            buf = os.pread(fd, need, start)
    return buf


def scan(fd: int, first: int) -> tuple[int, int]:
    """The valid records of an unsealed segment: (count, bytes). Stops at the first bad one."""
    count = 0
    offset = 0
    end = os.fstat(fd).st_size
    while offset < end:
        buf = read_record_chunk(fd, offset, end)
        if not whole_record(buf, 0):
            break
        view = memoryview(buf)
        pos = 0
        while whole_record(buf, pos):
            crc, length, ident, dial_len, topic_len = HEAD.unpack_from(buf, pos)
            stop = pos + HEAD.size + length
            if ident != first + count or dial_len + topic_len > length or zlib.crc32(view[pos + 4 : stop]) != crc:
                return count, offset + pos
            count += 1
            pos = stop
        offset += pos
    return count, offset
