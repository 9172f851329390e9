"""Framings: cutting a device's input into lines, frames or reports, one decoder class each.

Stream framings (line, binary) buffer across chunks: an item is stamped with the `mono_ns`
of the chunk that completed it. Every decoder here follows `daq.profiles.decode.Decoder`.

Garbage is counted per undecodable run, whatever the reads: a line decoder is back in sync
at every terminator, so one bad line (or one overlong stretch) is one `Garbage`; a binary
decoder is out of sync from its first bad byte to its next good frame, and every `Garbage`
after the first of that run has `continues` set. A line dropped on purpose (the first one
after opening, with `discard_first_line`) is `Discarded`, not silently ignored.
"""

from __future__ import annotations

import functools
import operator
import struct
from collections.abc import Callable
from dataclasses import replace

from daq.profiles.fields import Extractor, Interpreter, Value, parse_int
from daq.profiles.linear_regex import compile_linear
from daq.profiles.model import Profile
from daq.profiles.model_fields import BinaryField
from daq.profiles.model_framings import BinaryFraming, LineFraming, ReportFraming
from daq.profiles.model_types import INT_TYPES
from daq.reading import Chunk, Decoded, Discarded, Garbage

# ---------------------------------------------------------------- checksums


def _reflected_table(poly: int) -> list[int]:
    """The byte table of a reflected (LSB-first) CRC with the reflected polynomial `poly`."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC8 = _reflected_table(0x8C)  # CRC-8/MAXIM: poly 0x31, reflected
_CRC16 = _reflected_table(0xA001)  # CRC-16/MODBUS: poly 0x8005, reflected


def sum8(data: bytes) -> int:
    return sum(data) & 0xFF


def xor8(data: bytes) -> int:
    return functools.reduce(operator.xor, data, 0)


def crc8_maxim(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = _CRC8[crc ^ b]
    return crc


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC16[(crc ^ b) & 0xFF]
    return crc


CHECKSUMS: dict[str, Callable[[bytes], int]] = {
    "sum8": sum8,
    "xor8": xor8,
    "crc8-maxim": crc8_maxim,
    "crc16-modbus": crc16_modbus,
}


# ---------------------------------------------------------------- fields with a condition


class Conditional:
    """A field read only from frames or reports whose `when` bytes hold their values (else None)."""

    __slots__ = ("_conditions", "_extract", "end")

    def __init__(self, field: BinaryField) -> None:
        self._extract = Extractor(field)
        self._conditions = tuple((c.offset, c.equals) for c in field.when)
        self.end = max([self._extract.end, *(off + 1 for off, _ in self._conditions)])

    def __call__(self, frame: bytes) -> int | None:
        for offset, equals in self._conditions:
            if frame[offset] != equals:
                return None
        return self._extract(frame)


def field_reader(field: BinaryField) -> Extractor | Conditional:
    return Conditional(field) if field.when else Extractor(field)


class FrameFields:
    """The binary fields an Interpreter reads, and its sequence field, read out of one frame or report."""

    __slots__ = ("_fields", "_sequence", "end")

    def __init__(self, profile: Profile, interp: Interpreter) -> None:
        self._fields = [field_reader(profile.fields[name]) for name in interp.fields]
        seq = interp.sequence
        self._sequence = field_reader(profile.fields[seq.field]) if seq is not None else None
        readers = [*self._fields, *([self._sequence] if self._sequence is not None else [])]
        self.end = max((r.end for r in readers), default=0)  # the bytes a frame needs to hold them all

    def values(self, frame: bytes) -> list[Value | None]:
        """The Interpreter's field values, in its order (None: a conditional field this frame lacks)."""
        return [f(frame) for f in self._fields]

    def sequence(self, frame: bytes) -> int | None:
        return self._sequence(frame) if self._sequence is not None else None


# ---------------------------------------------------------------- line

_FIRST_LINE = "the first line after the port opened (discard_first_line: it may be cut)"
_GAP_LINE = (
    "the first line after a gap in the byte stream (a reader process died, or the decoder failed: "
    "its start may be lost)"
)


class LineDecoder:
    """Text lines: `pattern` groups or `delimiter` columns become field values."""

    def __init__(self, profile: Profile, *, synced: bool = False) -> None:
        framing = profile.framing
        assert isinstance(framing, LineFraming)
        self._term = framing.terminator.encode("ascii")
        self._max = framing.max_length
        # A '\r' before the terminator and a partial terminator may sit in the buffer too.
        self._max_buffered = framing.max_length + 1 + len(self._term) - 1
        self._encoding = framing.encoding
        self._discard_first = framing.discard_first_line
        self._ignore = [compile_linear(p) for p in framing.ignore]
        self._pattern = compile_linear(framing.pattern) if framing.pattern is not None else None
        self._delimiter = framing.delimiter
        self._interp = Interpreter(profile)
        self._parsers = [s.parse for s in self._interp.channels] + [parse_int for _ in self._interp.buttons]
        seq = self._interp.sequence
        self._seq_slot = len(self._interp.fields) if seq is not None else -1  # where its text goes in `texts`
        self._one_value = len(self._parsers) == 1 and seq is None
        wanted = self._interp.fields + ([seq.field] if seq is not None else [])
        if self._pattern is not None:
            self._group_indices = [self._pattern.groupindex[f] for f in wanted]
        if framing.fields is not None:
            self._columns = [framing.fields[name] for name in wanted]
            self._min_columns = max(framing.fields.values()) + 1
        self._buf = bytearray()
        self._skipping = False  # inside an overlong line, already reported
        self._first = self._discard_first and not synced
        self._first_reason = _FIRST_LINE  # why `_first`'s line is discarded
        self.ignored = 0
        quick = self._one_value and self._interp.one_absolute and self._pattern is not None
        self._quick_sink = self._interp.channels[0] if quick else None  # the one absolute channel `quick` reads
        self.quick_channel: str | None = self._quick_sink.name if self._quick_sink is not None else None
        """The channel `quick` reads (None: this profile has no quick path; `quick` always says None)."""

    def reset(self, *, after_gap: bool = False) -> bytes:
        """Start afresh (the port was opened again): returns the start of a line it held, dropped
        undecoded (not an overlong line's, reported already), for the caller to count.

        `after_gap`: the stream goes on, but bytes may be missing before what comes next (a reader
        process died with a round unsent). The next line may be the end of a cut one, so it is
        discarded whatever the profile says, never decoded into a value the dial did not send: the
        start held now and that end are one cut line, one `Discarded` item ("51" + "7\n", whatever
        was lost between them), so nothing is dropped now. The dial's counter and sequence baselines
        are kept then: a running count reads on, and a sequence says what the gap lost (device_lost)."""
        if after_gap:
            if not self._skipping:  # inside an overlong line (counted already), its skip takes the rest
                self._first, self._first_reason = True, _GAP_LINE
            return b""
        held = b"" if self._skipping else bytes(self._buf)
        self._buf.clear()
        self._skipping = False
        self._first, self._first_reason = self._discard_first, _FIRST_LINE
        self._interp.reset()
        return held

    def feed(self, chunk: Chunk) -> list[Decoded]:
        out: list[Decoded] = []
        buf = self._buf
        term, mono = self._term, chunk.mono_ns
        data = chunk.data
        if not buf and not self._skipping and not self._first:
            # The common chunk: exactly one whole line (a dial's line per read), nothing held before it.
            end = len(data) - len(term)
            if end >= 0 and data.find(term) == end:
                self._line(data[:end], mono, out)
                return out
        buf += data
        start = 0
        while (end := buf.find(term, start)) >= 0:
            line = bytes(buf[start:end])
            start = end + len(term)
            if self._skipping:
                self._skipping = False
            elif self._first:
                self._first = False
                if self._not_data(line):
                    self.ignored += 1  # an empty line or a banner: no reading was dropped
                else:
                    out.append(Discarded(self._first_reason, line, mono))
            else:
                self._line(line, mono, out)
        del buf[:start]
        if len(buf) > self._max_buffered:
            keep = len(term) - 1  # the start of a terminator split over two chunks
            cut = len(buf) - keep
            if not self._skipping:
                if self._first:  # the first line, however long, is the one dropped on purpose
                    out.append(Discarded(self._first_reason, bytes(buf[:cut]), mono))
                else:
                    out.append(Garbage(f"line longer than {self._max} bytes", bytes(buf[:cut]), mono))
                self._skipping = True
                self._first = False
            del buf[:cut]
        return out

    def quick(self, data: bytes) -> Value | None:
        """The raw value of `data` when it is exactly one whole line, nothing buffered before it,
        that decodes to one in-range reading of `quick_channel`; None for anything else (then
        `feed` the chunk: it decodes it and says what it is). Changes no state, so None costs only
        the time: the station's common dial (one value per line, one read per line) takes this
        path, and `_line` below is the same rules with a reason for every refusal
        (tests/test_decode_edges.py holds the two to the same answers, rule by rule)."""
        sink = self._quick_sink
        if sink is None or self._buf or self._skipping or self._first:
            return None
        end = len(data) - len(self._term)
        if end < 0 or data.find(self._term) != end:
            return None
        raw = data[: end - 1] if data[end - 1 : end] == b"\r" else data[:end]
        if len(raw) > self._max:
            return None
        try:
            text = raw.decode(self._encoding).strip()
        except UnicodeDecodeError:
            return None
        if not text:
            return None
        for rx in self._ignore:
            if rx.search(text):
                return None
        matched = self._pattern.groups(text, self._group_indices)  # type: ignore[union-attr]  # quick_channel: a pattern
        if matched is None or (t := matched[0]) is None:
            return None
        v = self._parsers[0](t)
        if v is None:
            return None
        return v if sink.lo <= v <= sink.hi else None

    def _not_data(self, line: bytes) -> bool:
        """An empty line or one `ignore` drops: dropping it loses no reading."""
        try:
            text = line.decode(self._encoding).strip()
        except UnicodeDecodeError:
            return False
        return not text or any(rx.search(text) for rx in self._ignore)

    def _line(self, line: bytes, mono: int, out: list[Decoded]) -> None:
        # A rule added here goes into `quick` too (tests/test_decode_edges.py compares the two).
        raw = line[:-1] if line.endswith(b"\r") else line
        if len(raw) > self._max:
            out.append(Garbage(f"line longer than {self._max} bytes", line, mono))
            return
        try:
            text = raw.decode(self._encoding).strip()
        except UnicodeDecodeError:
            out.append(Garbage(f"not {self._encoding} text", line, mono))
            return
        if not text:
            self.ignored += 1
            return
        for rx in self._ignore:
            if rx.search(text):
                self.ignored += 1
                return
        texts: list[str | None]
        if self._pattern is not None:
            matched = self._pattern.groups(text, self._group_indices)
            if matched is None:
                out.append(Garbage("line does not match the profile's pattern", line, mono))
                return
            texts = matched
        else:
            cols = text.split(self._delimiter)
            if len(cols) < self._min_columns:
                out.append(Garbage(f"line has {len(cols)} columns, the profile needs {self._min_columns}", line, mono))
                return
            texts = [cols[i].strip() for i in self._columns]
        sequence: int | None = None
        if self._seq_slot >= 0:
            seq_text = texts[self._seq_slot]
            if seq_text is not None:
                sequence = parse_int(seq_text)
                if sequence is None:
                    out.append(Garbage(f"sequence {seq_text!r} is not a whole number", line, mono))
                    return
        if self._one_value:  # one field, no sequence: the common dial, without the loop below
            t = texts[0]
            v = None
            if t is not None:
                v = self._parsers[0](t)
                if v is None:
                    out.append(Garbage(f"{t!r} is not a number", line, mono))
                    return
            self._interp.emit((v,), line, mono, out)
            return
        values: list[Value | None] = []
        for parse, t in zip(self._parsers, texts, strict=False):  # texts may end with the sequence's
            if t is None:
                values.append(None)
                continue
            v = parse(t)
            if v is None:
                out.append(Garbage(f"{t!r} is not a number", line, mono))
                return
            values.append(v)
        self._interp.emit(values, line, mono, out, sequence)


# ---------------------------------------------------------------- binary


class BinaryDecoder:
    """Sync-delimited frames in a byte stream, hunting for the sync after anything bad."""

    def __init__(self, profile: Profile, *, synced: bool = False) -> None:
        framing = profile.framing
        assert isinstance(framing, BinaryFraming)
        self._sync = framing.sync_bytes
        self._header = framing.header_length
        self._fixed = framing.length
        self._max = framing.length or framing.max_length
        self._length: Callable[[bytes | bytearray, int], int] | None = None
        if framing.length_field is not None:
            lf = framing.length_field
            unpack = struct.Struct(INT_TYPES[lf.type][0]).unpack_from
            offset, adjust = lf.offset, lf.adjust
            self._length = lambda buf, pos: int(unpack(buf, pos + offset)[0]) + adjust
        kind = framing.checksum.kind
        self._check = CHECKSUMS.get(kind)
        self._ck_size = framing.checksum.size
        self._ck_offset = framing.checksum_offset
        self._covers = framing.checksum_covers
        self._interp = Interpreter(profile)
        self._fields = FrameFields(profile, self._interp)
        self._min = self._min_length()
        self._buf = bytearray()
        self._reported = 0  # bytes at the start of the buffer already in a Garbage
        self._lost_sync = False  # inside an undecodable run: its first Garbage is out already
        self.ignored = 0

    def _min_length(self) -> int:
        """The shortest frame that holds the header, the fields and the checksum apart."""
        if self._fixed is not None:
            return self._fixed  # the model checked that everything fits
        before = max(self._header, self._fields.end)
        if self._check is None:
            return before
        off, (start, end) = self._ck_offset, self._covers
        need = before - off if off < 0 else max(before, off + self._ck_size)
        return max(need, start - end + 1 if end < 0 else end)

    def reset(self, *, after_gap: bool = False) -> bytes:
        """Start afresh: returns the start of a frame it held (bytes reported as garbage excluded),
        dropped undecoded, for the caller to count. After a gap (bytes may be missing) the next frame
        is found by its sync and checksum, and the counter and sequence baselines are kept (as in
        LineDecoder.reset). A frame cut by the gap is one loss: the start returned now is counted,
        and the rest skipped before the next sync continues it (garbage said, not counted again);
        when nothing was held, that rest is counted as garbage. Only a frame's possible start is
        returned: bytes that begin with the sync, or the first bytes of one. Other bytes kept at the
        end (in case a sync was cut there) are no frame's start, so no reading; a garbage run they
        end was counted already."""
        held = bytes(self._buf[self._reported :])
        if not (held.startswith(self._sync) or self._sync.startswith(held)):
            held = b""  # bytes kept in case a sync was cut, and no sync's start: no frame's start
        self._buf.clear()
        self._reported = 0
        self._lost_sync = after_gap and (bool(held) or self._lost_sync)
        if not after_gap:
            self._interp.reset()
        return held

    def _bad(self, item: Garbage, out: list[Decoded]) -> None:
        """Garbage, counted once per run: anything after the run's first is marked `continues`."""
        out.append(replace(item, continues=True) if self._lost_sync else item)
        self._lost_sync = True

    def feed(self, chunk: Chunk) -> list[Decoded]:
        out: list[Decoded] = []
        buf = self._buf
        buf += chunk.data
        mono, sync, n = chunk.mono_ns, self._sync, len(buf)
        pos = 0
        while True:
            at = buf.find(sync, pos)
            if at < 0:
                keep = max(pos, n - len(sync) + 1)  # a sync may be cut by the chunk boundary
                self._skipped(buf, pos, keep, mono, out)
                pos = keep
                break
            self._skipped(buf, pos, at, mono, out)
            pos = at
            if n - pos < self._header:
                break
            length = self._length(buf, pos) if self._length is not None else self._fixed or 0
            if not self._min <= length <= self._max:
                self._bad(
                    Garbage(f"frame length {length} is impossible", bytes(buf[pos : pos + self._header]), mono), out
                )
                self._reported = max(self._reported, pos + self._header)
                pos += 1
                continue
            if n - pos < length:
                break
            frame = bytes(buf[pos : pos + length])
            if not self._valid(frame):
                self._bad(Garbage("bad checksum", frame, mono), out)
            elif self._emit(frame, mono, out):
                self._lost_sync = False  # a good frame: back in sync
                pos += length
                continue
            # A bad frame, or one whose checksum passed by chance but whose value cannot be:
            # the real sync may be inside it.
            self._reported = max(self._reported, pos + length)
            pos += 1
        del buf[:pos]
        self._reported = max(0, self._reported - pos)
        return out

    def _emit(self, frame: bytes, mono: int, out: list[Decoded]) -> bool:
        if self._interp.emit(self._fields.values(frame), frame, mono, out, self._fields.sequence(frame)):
            return True
        refused = out.pop()  # the Interpreter's Garbage (a value out of range, too big a step), always last
        assert isinstance(refused, Garbage)
        self._bad(refused, out)
        return False

    def _skipped(self, buf: bytearray, start: int, end: int, mono: int, out: list[Decoded]) -> None:
        start = max(start, self._reported)
        if end > start:
            self._bad(Garbage(f"skipped {end - start} bytes hunting for sync", bytes(buf[start:end]), mono), out)
            self._reported = end

    def _valid(self, frame: bytes) -> bool:
        if self._check is None:
            return True
        size = len(frame)
        off = self._ck_offset if self._ck_offset >= 0 else size + self._ck_offset
        start, end = self._covers
        if end < 0:
            end += size
        if off < 0 or off + self._ck_size > size or not 0 <= start < end <= size:
            return False
        stored = frame[off]
        if self._ck_size == 2:
            stored |= frame[off + 1] << 8  # CRC-16/MODBUS goes low byte first
        return self._check(frame[start:end]) == stored


# ---------------------------------------------------------------- report


class ReportDecoder:
    """One chunk is one HID input report."""

    def __init__(self, profile: Profile, *, synced: bool = False) -> None:
        framing = profile.framing
        assert isinstance(framing, ReportFraming)
        self._report_id = framing.report_id
        self._interp = Interpreter(profile)
        self._fields = FrameFields(profile, self._interp)
        self._min = max(framing.length or 1, self._fields.end)
        self.ignored = 0

    def reset(self, *, after_gap: bool = False) -> bytes:
        """Whole reports are never cut: after a gap the decoder reads on as it is; otherwise the
        Interpreter starts afresh (counter baselines). Nothing is held, so nothing is dropped."""
        if not after_gap:
            self._interp.reset()
        return b""

    def feed(self, chunk: Chunk) -> list[Decoded]:
        data, mono = chunk.data, chunk.mono_ns
        if data and self._report_id is not None and data[0] != self._report_id:
            self.ignored += 1  # another report of the same device
            return []
        if len(data) < self._min:
            return [Garbage(f"report of {len(data)} bytes, the profile needs {self._min}", data, mono)]
        values = self._fields.values(data)
        sequence = self._fields.sequence(data)
        if sequence is None and all(v is None for v in values):
            self.ignored += 1  # a report no field reads (another event type of the device)
            return []
        out: list[Decoded] = []
        self._interp.emit(values, data, mono, out, sequence)
        return out
