"""The framing models: how a profile's [framing] table says its input is cut into lines,
binary frames, HID reports, input events or MIDI messages. One class per framing kind; the
list of kinds, with each one's decoder, is daq.profiles.framing_registry.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from daq.profiles.input_codes import parse_event
from daq.profiles.linear_regex import compile_linear
from daq.profiles.model_types import INT_TYPES, IntType, ProfileProblem, Regex, parse_hex
from daq.validation import StrictModel


class LineFraming(StrictModel):
    """Text lines, e.g. `Serial.println(value)`: one reading (or several fields) per line.

    A trailing '\\r' and surrounding spaces are stripped; empty lines and lines matching
    `ignore` are dropped and counted as ignored. Give either `pattern` (a regex whose named
    groups are the fields; it must match the whole line) or `delimiter` with `fields`
    (column numbers). A line that does not match is garbage.
    """

    kind: Literal["line"] = Field(description="text lines")
    terminator: str = Field(
        default="\n",
        min_length=1,
        max_length=4,
        description="end of a line; a trailing '\\r' is always stripped",
    )
    max_length: int = Field(
        default=256,
        ge=1,
        le=65536,
        description="longest line in bytes (terminator excluded); longer is garbage",
    )
    encoding: Literal["ascii", "utf-8"] = Field(default="ascii", description="text encoding; undecodable is garbage")
    discard_first_line: bool = Field(
        default=False,
        description="drop everything up to the first terminator after the port opens (and after a "
        "reconnect), for boards that reset when the port opens (an Arduino, through DTR) or that "
        "stream without pause, so the port opens mid-line and a cut line would parse as a wrong "
        "number ('512' cut to '12'). The dropped line is counted (`discarded` in health) and "
        "announced (an input.discarded event), unless it is empty or a line `ignore` drops anyway. "
        "Default false: every line is read",
    )
    ignore: tuple[Regex, ...] = Field(
        default=(),
        description="regexes (searched, anchor with ^) for lines to drop silently: banners, comments. "
        "Counted as ignored, not as garbage",
    )
    pattern: Regex | None = Field(
        default=None,
        description="regex that must match the whole line; each named group (?P<name>...) is a field "
        "that a channel or button can use. Groups that did not take part are absent from that line. "
        r"\d means [0-9] (ASCII mode)",
    )
    delimiter: str | None = Field(
        default=None, min_length=1, description="column separator, e.g. ','; use with `fields`"
    )
    fields: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="with `delimiter`: field name -> column number, counting from 0"
    )

    @field_validator("terminator", "delimiter")
    @classmethod
    def _ascii(cls, value: str | None) -> str | None:
        if value is not None and not value.isascii():
            raise ProfileProblem(None, f"must be ASCII (got {value!r})")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> LineFraming:
        if self.pattern is not None and self.delimiter is not None:
            raise ProfileProblem("delimiter", "give either `pattern` or `delimiter` with `fields`, not both")
        if self.pattern is None and self.delimiter is None:
            raise ProfileProblem(
                "pattern", "required: give `pattern` (a regex with named groups) or `delimiter` with `fields`"
            )
        if self.pattern is not None:
            if self.fields is not None:
                raise ProfileProblem("fields", "with `pattern` the fields are its named groups: remove `fields`")
            if not compile_linear(self.pattern).groupindex:
                raise ProfileProblem("pattern", "needs at least one named group, e.g. (?P<position>[0-9]+)")
        if self.delimiter is not None and not self.fields:
            raise ProfileProblem("fields", "required with `delimiter`: e.g. fields = { position = 1 }")
        return self

    def field_names(self) -> frozenset[str]:
        if self.pattern is not None:
            return frozenset(compile_linear(self.pattern).groupindex)
        return frozenset(self.fields or {})


class LengthField(StrictModel):
    """Where a variable-length frame says how long it is."""

    offset: int = Field(ge=0, description="byte offset from the frame's first (sync) byte")
    type: IntType = Field(default="uint8", description="how the length is stored")
    adjust: int = Field(default=0, description="frame length in bytes = stored value + adjust")


class Checksum(StrictModel):
    """How a binary frame is checked. A frame that fails is garbage and the decoder hunts for
    the next sync from the byte after the bad frame's first byte."""

    kind: Literal["sum8", "xor8", "crc8-maxim", "crc16-modbus", "none"] = Field(
        description="sum8: sum of bytes mod 256; xor8: xor of bytes; crc8-maxim: Dallas/Maxim 1-Wire "
        "CRC-8 (poly 0x31 reflected, init 0); crc16-modbus: CRC-16/MODBUS (init 0xFFFF), stored "
        "low byte first; none: no check"
    )
    offset: int | None = Field(
        default=None,
        description="where the checksum is stored; negative counts from the frame's end. "
        "Default: the last byte (the last two for crc16-modbus)",
    )
    covers: tuple[int, int] | None = Field(
        default=None,
        description="[start, end) of the bytes checked, like a Python slice: a negative end counts "
        "from the frame's end. Default: from after the sync to the checksum",
    )

    @property
    def size(self) -> int:
        return {"none": 0, "crc16-modbus": 2}.get(self.kind, 1)

    @model_validator(mode="after")
    def _covers(self) -> Checksum:
        if self.covers is not None and self.covers[0] < 0:
            raise ProfileProblem("covers", "the start must be 0 or more (an offset from the frame's first byte)")
        if self.kind == "none" and (self.offset is not None or self.covers is not None):
            raise ProfileProblem("kind", "`offset` and `covers` need a checksum kind other than 'none'")
        return self


class BinaryFraming(StrictModel):
    """A byte stream of frames that start with fixed sync bytes, e.g. AA 55.

    Give a fixed `length` or a `length_field`. After a bad frame (checksum, length) or
    unexpected bytes, the decoder hunts for the next sync; skipped bytes are garbage.
    """

    kind: Literal["binary"] = Field(description="sync-delimited binary frames")
    sync: str = Field(description="the bytes every frame starts with, in hex, e.g. 'AA 55'")
    length: int | None = Field(
        default=None, ge=1, le=65536, description="frame length in bytes, sync and checksum included"
    )
    length_field: LengthField | None = Field(
        default=None, description="for variable-length frames, instead of `length`"
    )
    max_length: int = Field(
        default=256,
        ge=1,
        le=65536,
        description="with `length_field`: longer frames are garbage (a corrupt length)",
    )
    checksum: Checksum = Field(default_factory=lambda: Checksum(kind="none"), description="how a frame is checked")

    @field_validator("sync")
    @classmethod
    def _sync(cls, value: str) -> str:
        try:
            data = parse_hex(value)
        except ValueError as exc:
            raise ProfileProblem(None, str(exc)) from None
        return " ".join(f"{b:02X}" for b in data)

    @property
    def sync_bytes(self) -> bytes:
        return bytes.fromhex(self.sync)

    @property
    def checksum_offset(self) -> int:
        if self.checksum.offset is not None:
            return self.checksum.offset
        return -self.checksum.size

    @property
    def checksum_covers(self) -> tuple[int, int]:
        if self.checksum.covers is not None:
            return self.checksum.covers
        return (len(self.sync_bytes), self.checksum_offset)

    @property
    def header_length(self) -> int:
        """Bytes needed before the frame length is known."""
        n = len(self.sync_bytes)
        if self.length_field is not None:
            n = max(n, self.length_field.offset + INT_TYPES[self.length_field.type][1])
        return n

    def field_names(self) -> frozenset[str]:
        """None of its own: a binary profile names its fields in [fields]."""
        return frozenset()

    @model_validator(mode="after")
    def _shape(self) -> BinaryFraming:
        if (self.length is None) == (self.length_field is None):
            raise ProfileProblem("length", "give either a fixed `length` or a `length_field`")
        if self.length is not None:
            if self.length < len(self.sync_bytes) + self.checksum.size:
                raise ProfileProblem("length", "too short to hold the sync bytes and the checksum")
            if self.checksum.kind != "none":
                off = self.checksum_offset
                off = off if off >= 0 else self.length + off
                if off < 0 or off + self.checksum.size > self.length:
                    raise ProfileProblem("checksum.offset", f"outside the {self.length}-byte frame")
                start, end = self.checksum_covers
                end_abs = end if end >= 0 else self.length + end
                if not 0 <= start < end_abs <= self.length:
                    raise ProfileProblem("checksum.covers", f"not a byte range within the {self.length}-byte frame")
        return self


class ReportFraming(StrictModel):
    """One chunk is one report (a USB HID input report): no stream framing.

    Offsets count from the first byte read, which is the report id when the device uses them.
    """

    kind: Literal["report"] = Field(description="one HID input report per read")
    report_id: int | None = Field(
        default=None,
        ge=0,
        le=255,
        description="only reports whose first byte is this id are decoded; others are ignored",
    )
    length: int | None = Field(
        default=None,
        ge=1,
        description="minimum report length in bytes; shorter is garbage. Default: what the fields need",
    )
    backend: Literal["auto", "hidraw", "libusb"] = Field(
        default="auto",
        description="Linux only, which hidapi backend reads the device: hidraw (USB and Bluetooth, needs a "
        "/dev/hidraw node: a device claimed by another kernel driver has none), libusb (USB only, detaches the "
        "kernel driver), auto (hidraw when available). A station overrides it with port = 'libusb:' or "
        "'hidraw:'. macOS and Windows have one backend",
    )

    def field_names(self) -> frozenset[str]:
        """None of its own: a report profile names its fields in [fields]."""
        return frozenset()


def _event(value: str) -> str:
    try:
        parse_event(value)
    except ValueError as exc:
        raise ProfileProblem(None, str(exc)) from None
    return value.strip().upper() if ":" not in value else value.strip()


EventName = Annotated[str, AfterValidator(_event)]
MidiKey = tuple[str, int, int]  # ('cc' or 'note', channel 0-15, number): what a MIDI field reads


class _InputsFraming(StrictModel):
    """What the event framings share: their own table names the fields, each reading one input
    (an input event, a MIDI control), and no two fields read the same input."""

    inputs_table: ClassVar[str]  # the table of the [framing] that names the fields
    input_word: ClassVar[str]  # what one input is called in a message

    def field_inputs(self) -> Mapping[str, Hashable]:
        """Field name -> the input it reads."""
        raise NotImplementedError

    def field_names(self) -> frozenset[str]:
        return frozenset(self.field_inputs())

    @model_validator(mode="after")
    def _one_field_each(self) -> Self:
        seen: dict[Hashable, str] = {}
        word = self.input_word
        for name, key in self.field_inputs().items():
            if key in seen:
                where = f"{self.inputs_table}.{name}"
                raise ProfileProblem(where, f"the same {word} as {seen[key]!r}: a field reads one {word}")
            seen[key] = name
        return self


class EvdevFraming(_InputsFraming):
    """Linux input events (an evdev node, /dev/input/event*): one chunk is a batch of events.

    `events` names the fields: each is one event code. A relative event (REL_DIAL, REL_WHEEL)
    carries a step, so its channel is relative; an absolute one (ABS_X) a position: with a
    channel `range`, the axis's own min..max (the kernel's absinfo) is mapped onto that range,
    without one the value is taken as it is. A key (BTN_0) is a button: 1 pressed, 0 released
    (2, autorepeat, changes nothing). SYN and unnamed events are ignored.
    """

    kind: Literal["evdev"] = Field(description="Linux input events")
    events: dict[str, EventName] = Field(
        min_length=1,
        description="field name -> event code, e.g. { dial = 'REL_DIAL', press = 'BTN_0' }; names as in "
        "linux/input-event-codes.h (`evtest` shows them), or TYPE:NUMBER such as 'KEY:0x2c0'",
    )
    grab: bool = Field(
        default=False,
        description="open the device exclusively (EVIOCGRAB): its events no longer reach the desktop (a "
        "ShuttleXpress otherwise also scrolls windows); no other program can read it meanwhile",
    )

    inputs_table = "events"
    input_word = "event"

    def field_inputs(self) -> dict[str, tuple[int, int]]:
        """Field name -> the (type, code) of the input event it reads."""
        return {name: parse_event(event) for name, event in self.events.items()}


class MidiControl(StrictModel):
    """One MIDI control: a Control Change number or a note, on a MIDI channel."""

    cc: int | None = Field(default=None, ge=0, le=127, description="Control Change number 0-127 (value 0-127)")
    note: int | None = Field(
        default=None, ge=0, le=127, description="note number 0-127: the velocity while held, 0 when released"
    )
    channel: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="MIDI channel 1-16, counted as the device's manual does; default: framing.channel",
    )

    @model_validator(mode="after")
    def _one(self) -> MidiControl:
        if (self.cc is None) == (self.note is None):
            raise ProfileProblem("cc", "give either `cc` (a Control Change number) or `note`")
        return self


class MidiFraming(_InputsFraming):
    """MIDI messages from an input port: one chunk is the bytes of one message (Control Change
    B0+ch cc value: three bytes). Messages of no control in `controls` are ignored."""

    kind: Literal["midi"] = Field(description="MIDI messages")
    channel: int = Field(default=1, ge=1, le=16, description="MIDI channel 1-16 of controls that give none")
    controls: dict[str, MidiControl] = Field(
        min_length=1,
        description="field name -> control, e.g. { k1 = { cc = 16 }, f1 = { cc = 0, channel = 2 } }; "
        "a Control Change value is absolute 0-127",
    )

    inputs_table = "controls"
    input_word = "control"

    def field_inputs(self) -> dict[str, MidiKey]:
        """Field name -> the control it reads: ('cc' or 'note', MIDI channel 0-15 as in the status byte, number)."""
        keys: dict[str, MidiKey] = {}
        for name, c in self.controls.items():
            channel = (c.channel or self.channel) - 1
            keys[name] = ("cc", channel, c.cc) if c.cc is not None else ("note", channel, c.note or 0)
        return keys
