"""Firmware profiles: what a dial says, as data (profile spec version 1).

A profile is a TOML file describing one device model: its transport kind, how its byte
stream is cut into lines, frames or reports (`framing`), where the numbers are (`fields`),
and what they mean (`channels`, `buttons`), plus serial settings and the USB ids discovery
recognises. It never says where a device is attached: that is station config.

The models here are the whole format: `Profile.model_json_schema()` is its JSON Schema.
Checks that span several tables (a channel naming a field that exists, serial settings only
on serial profiles) raise `ProfileProblem`, which carries the dotted key, so the loader can
say 'file: channels.position.field: ...'.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from daq.profiles.input_codes import parse_event
from daq.profiles.serial_settings import SerialSettings
from daq.validation import StrictModel

SPEC_VERSION = 1
"""The profile spec version this dialdaq reads."""

ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
USB_ID_RE = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")

Transport = Literal["serial", "hid", "evdev", "midi"]

IntType = Literal[
    "int8",
    "uint8",
    "int16le",
    "int16be",
    "uint16le",
    "uint16be",
    "int32le",
    "int32be",
    "uint32le",
    "uint32be",
]

# type -> (struct format, size in bytes, signed)
INT_TYPES: dict[str, tuple[str, int, bool]] = {
    "int8": ("b", 1, True),
    "uint8": ("B", 1, False),
    "int16le": ("<h", 2, True),
    "int16be": (">h", 2, True),
    "uint16le": ("<H", 2, False),
    "uint16be": (">H", 2, False),
    "int32le": ("<i", 4, True),
    "int32be": (">i", 4, True),
    "uint32le": ("<I", 4, False),
    "uint32be": (">I", 4, False),
}

# Which framings a transport can carry.
FRAMINGS_FOR_TRANSPORT: dict[str, frozenset[str]] = {
    "serial": frozenset({"line", "binary"}),
    "hid": frozenset({"report"}),
    "evdev": frozenset({"evdev"}),
    "midi": frozenset({"midi"}),
}


class ProfileProblem(ValueError):
    """A profile is wrong at `key` (dotted, relative to the model that raised it)."""

    def __init__(self, key: str | None, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


def _usb_id(value: str) -> str:
    if not USB_ID_RE.match(value):
        raise ProfileProblem(
            None,
            f"write a USB id as four hex digits, a colon, four hex digits, e.g. '2341:0043' (got {value!r})",
        )
    return value.lower()


def _regex(value: str) -> str:
    try:
        re.compile(value, re.ASCII)
    except re.error as exc:
        raise ProfileProblem(None, f"not a valid regular expression: {exc} (got {value!r})") from None
    return value


UsbId = Annotated[str, AfterValidator(_usb_id)]
Regex = Annotated[str, AfterValidator(_regex)]


def parse_hex(text: str) -> bytes:
    """'AA 55' / 'aa55' / '0xAA 0x55' / 'AA:55' -> b'\\xaa\\x55'. Raises ValueError."""
    cleaned = re.sub(r"0[xX]", "", text)
    cleaned = re.sub(r"[\s:,]", "", cleaned)
    if not cleaned or len(cleaned) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", cleaned):
        raise ValueError(f"write bytes as pairs of hex digits, e.g. 'AA 55' (got {text!r})")
    return bytes.fromhex(cleaned)


class Match(StrictModel):
    """How discovery recognises the device (`daq devices`).

    A profile matches a USB device when the VID:PID is in `usb` (or `usb` is empty) and,
    when `product` is given, the device's product string contains one of its entries
    (case-insensitive). Several profiles may match one device (many firmwares run on an
    Arduino Uno): the station config then names the profile.
    """

    usb: tuple[UsbId, ...] = Field(default=(), description="USB VID:PID pairs in hex, e.g. ['2341:0043', '1a86:7523']")
    product: tuple[str, ...] = Field(
        default=(),
        description="substrings of the USB product string (case-insensitive), e.g. ['ShuttleXpress']",
    )

    def usb_ids(self) -> frozenset[tuple[int, int]]:
        return frozenset((int(v, 16), int(p, 16)) for v, p in (u.split(":") for u in self.usb))


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
        default=True,
        description="drop everything up to the first terminator after the port opens (and after a "
        "reconnect): the port may open mid-line, and a cut line parses as a wrong number "
        "('512' cut to '12')",
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
            if not re.compile(self.pattern, re.ASCII).groupindex:
                raise ProfileProblem("pattern", "needs at least one named group, e.g. (?P<position>[0-9]+)")
        if self.delimiter is not None and not self.fields:
            raise ProfileProblem("fields", "required with `delimiter`: e.g. fields = { position = 1 }")
        return self

    def field_names(self) -> frozenset[str]:
        if self.pattern is not None:
            return frozenset(re.compile(self.pattern, re.ASCII).groupindex)
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


def _event(value: str) -> str:
    try:
        parse_event(value)
    except ValueError as exc:
        raise ProfileProblem(None, str(exc)) from None
    return value.strip().upper() if ":" not in value else value.strip()


EventName = Annotated[str, AfterValidator(_event)]


class EvdevFraming(StrictModel):
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

    @model_validator(mode="after")
    def _distinct(self) -> EvdevFraming:
        seen: dict[tuple[int, int], str] = {}
        for name, event in self.events.items():
            code = parse_event(event)
            if code in seen:
                raise ProfileProblem(f"events.{name}", f"the same event as {seen[code]!r}: a field reads one event")
            seen[code] = name
        return self

    def field_names(self) -> frozenset[str]:
        return frozenset(self.events)


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


class MidiFraming(StrictModel):
    """MIDI messages from an input port: one chunk is the bytes of one message (Control Change
    B0+ch cc value: three bytes). Messages of no control in `controls` are ignored."""

    kind: Literal["midi"] = Field(description="MIDI messages")
    channel: int = Field(default=1, ge=1, le=16, description="MIDI channel 1-16 of controls that give none")
    controls: dict[str, MidiControl] = Field(
        min_length=1,
        description="field name -> control, e.g. { k1 = { cc = 16 }, f1 = { cc = 0, channel = 2 } }; "
        "a Control Change value is absolute 0-127",
    )

    @model_validator(mode="after")
    def _distinct(self) -> MidiFraming:
        seen: dict[tuple[str, int, int], str] = {}
        for name, c in self.controls.items():
            key = (
                ("cc", c.cc, c.channel or self.channel)
                if c.cc is not None
                else ("note", c.note or 0, c.channel or self.channel)
            )
            if key in seen:
                raise ProfileProblem(f"controls.{name}", f"the same control as {seen[key]!r}: a field reads one")
            seen[key] = name
        return self

    def field_names(self) -> frozenset[str]:
        return frozenset(self.controls)


# The framings, told apart by `kind`. A new framing is one more class here, its entry in
# FRAMINGS_FOR_TRANSPORT, and its decoder registered in daq.profiles.decode.
Framing = Annotated[
    LineFraming | BinaryFraming | ReportFraming | EvdevFraming | MidiFraming, Field(discriminator="kind")
]


class Condition(StrictModel):
    """A byte that must have a value for a field to be read from this report."""

    offset: int = Field(ge=0, le=65535, description="byte offset, counted like the field's")
    equals: int = Field(ge=0, le=255, description="the byte's value, e.g. 0x03")


class BinaryField(StrictModel):
    """An integer at a fixed place in a binary frame or report; `bit`/`bits` take a bit field."""

    offset: int = Field(
        ge=0,
        le=65535,
        description="byte offset from the frame's first byte (the first sync byte; for a report, the first byte read)",
    )
    type: IntType = Field(
        default="uint8", description="how the number is stored: [u]int8, [u]int16le/be, [u]int32le/be"
    )
    bit: int | None = Field(
        default=None,
        ge=0,
        le=31,
        description="lowest bit of a bit field, 0 = least significant; bit fields are unsigned",
    )
    bits: int | None = Field(
        default=None, ge=1, le=32, description="width of the bit field (default 1 when `bit` is set)"
    )
    when: tuple[Condition, ...] = Field(
        default=(),
        description="read the field only from reports or frames where every listed byte has its value, e.g. "
        "[{ offset = 1, equals = 0x03 }] (a device whose reports carry an event type); elsewhere the field "
        "is absent and its channel or button does not change",
    )

    @property
    def size(self) -> int:
        return INT_TYPES[self.type][1]

    @property
    def width(self) -> int:
        """Bits the value can take: the bit field's width or the whole type."""
        if self.bit is None and self.bits is None:
            return 8 * self.size
        return self.bits or 1

    @model_validator(mode="after")
    def _fits(self) -> BinaryField:
        if (self.bit or 0) + (self.bits or 1) > 8 * self.size:
            raise ProfileProblem("bit", f"the bit field does not fit in a {self.type} ({8 * self.size} bits)")
        return self


class Channel(StrictModel):
    """What one number the device sends means.

    absolute: the value is the position (a potentiometer, a joystick axis).
    relative: the value is a step since the last report; dialdaq sums the steps.
    counter: the value is a running count that wraps at `wrap`; dialdaq takes the difference
    from the previous report (the first report after connecting is the baseline) and sums it.
    For relative and counter channels a reading's raw value is the sum, which survives
    reconnects; readings are produced only when the sum changes.
    """

    kind: Literal["absolute", "relative", "counter"] = Field(description="how the value relates to the dial's position")
    field: str | None = Field(
        default=None,
        description="the field (binary/report) or pattern group / column (line) to read; default: the channel's name",
    )
    range: tuple[float, float] | None = Field(
        default=None,
        description="absolute only: [min, max] the device can send; a value outside is garbage (noise from "
        "a wrong baud rate often parses as digits)",
    )
    number: Literal["int", "decimal"] = Field(
        default="int", description="line framings: how the text is read; decimal gives a float"
    )
    wrap: int | None = Field(
        default=None,
        ge=2,
        description="counter only: the counter's modulus. Default: 2**bits of a binary field (a uint8 wraps "
        "at 256); a line field has no width, so without `wrap` it is a plain signed count",
    )
    max_delta: float | None = Field(
        default=None,
        gt=0,
        description="relative/counter: a bigger step is garbage (noise, or a device reset the decoder "
        "did not see); a counter then takes the new value as its baseline",
    )
    counts_per_turn: float | None = Field(
        default=None, gt=0, description="counts per full turn (calibration of relative dials)"
    )
    detents_per_turn: int | None = Field(
        default=None, gt=0, description="clicks per full turn, if the dial has detents"
    )
    springs_back: bool = Field(default=False, description="returns to centre when let go (a shuttle ring, a joystick)")
    default: bool = Field(
        default=False,
        description="the channel a station dial uses when it names none (default: the first declared)",
    )
    description: str = Field(default="", description="free text for people")

    @model_validator(mode="after")
    def _kind_options(self) -> Channel:
        if self.range is not None:
            if self.kind != "absolute":
                raise ProfileProblem("range", f"only absolute channels have a range; a {self.kind} sum is unbounded")
            if self.range[0] >= self.range[1]:
                raise ProfileProblem("range", "write it as [min, max] with min < max")
        if self.wrap is not None and self.kind != "counter":
            raise ProfileProblem("wrap", "only counter channels wrap")
        if self.max_delta is not None and self.kind == "absolute":
            raise ProfileProblem("max_delta", "only relative and counter channels have steps")
        if self.number == "decimal" and self.kind == "counter":
            raise ProfileProblem("number", "a counter counts in integers")
        return self


class Button(StrictModel):
    """A button: a bit of a field (binary/report) or a pattern group / column (line).

    Pressed when the bit (or, without `bit`, the whole value) is non-zero; `active_low` inverts.
    The decoder reports a change only.
    """

    field: str | None = Field(default=None, description="the field or group to read; default: the button's name")
    bit: int | None = Field(default=None, ge=0, le=31, description="the bit of the field, 0 = least significant")
    active_low: bool = Field(default=False, description="pressed when the bit is 0")
    description: str = Field(default="", description="free text for people")


def _fields_table(value: Any) -> Any:
    """Accept [[fields]] (an array of tables with `name`) as well as [fields.<name>]."""
    if not isinstance(value, list):
        return value
    table: dict[str, Any] = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ProfileProblem(f"[{i}]", 'each [[fields]] entry needs a name, e.g. name = "position"')
        name = item["name"]
        if name in table:
            raise ProfileProblem(f"[{i}].name", f"the field {name!r} is declared twice")
        table[name] = {k: v for k, v in item.items() if k != "name"}
    return table


class Profile(StrictModel):
    """A firmware profile: what one device model says, as data. Spec version 1."""

    spec: Literal[1] = Field(description="profile format version; this dialdaq reads 1")
    id: str = Field(
        pattern=ID_RE.pattern,
        description="unique id, [A-Za-z0-9_.-]+; a station dial names its profile by it",
    )
    name: str = Field(min_length=1, description="what the device is, for people")
    transport: Transport = Field(description="how the device is read: serial, hid, evdev or midi")
    source: str = Field(
        min_length=1,
        description="where the facts come from (a datasheet, a driver, a sketch), so they can be checked",
    )
    description: str = Field(default="", description="free text for people")
    match: Match = Field(default_factory=Match, description="how discovery recognises the device")
    serial: SerialSettings | None = Field(
        default=None, description="serial port settings (serial profiles only, required)"
    )
    framing: Framing = Field(description="how the input is cut into lines, frames or reports")
    fields: dict[str, BinaryField] = Field(
        default_factory=dict,
        description="binary and report framings: the numbers in a frame, by name ([fields.<name>]; an array "
        "[[fields]] with `name` is accepted too)",
    )
    channels: dict[str, Channel] = Field(
        min_length=1, description="the values the device reports, by name; the first is the default"
    )
    buttons: dict[str, Button] = Field(default_factory=dict, description="the device's buttons, by name")

    @field_validator("fields", mode="before")
    @classmethod
    def _fields_array(cls, value: Any) -> Any:
        return _fields_table(value)

    @property
    def default_channel(self) -> str:
        for name, channel in self.channels.items():
            if channel.default:
                return name
        return next(iter(self.channels))

    def field_names(self) -> frozenset[str]:
        """Names a channel or button can read."""
        if isinstance(self.framing, LineFraming | EvdevFraming | MidiFraming):
            return self.framing.field_names()
        return frozenset(self.fields)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        self._check_transport()
        self._check_names()
        self._check_fields()
        return self

    def _check_transport(self) -> None:
        if self.transport == "serial" and self.serial is None:
            raise ProfileProblem("serial", "a serial profile needs a [serial] table (at least baud = ...)")
        if self.transport != "serial" and self.serial is not None:
            raise ProfileProblem("serial", f"only serial profiles have serial settings, this one is {self.transport}")
        allowed = FRAMINGS_FOR_TRANSPORT.get(self.transport, frozenset())
        if self.framing.kind not in allowed:
            fix = f"use one of: {', '.join(sorted(allowed))}" if allowed else "no framing for it is supported yet"
            raise ProfileProblem("framing.kind", f"{self.transport} cannot carry {self.framing.kind!r} framing: {fix}")

    def _check_names(self) -> None:
        for table, names in (("channels", self.channels), ("buttons", self.buttons)):
            for name in names:
                if not NAME_RE.match(name):
                    raise ProfileProblem(
                        f"{table}.{name}", "a name is a letter or _ followed by letters, digits, _ or -"
                    )
        both = sorted(set(self.channels) & set(self.buttons))
        if both:
            raise ProfileProblem(f"buttons.{both[0]}", "a channel has this name already: rename one")
        defaults = [n for n, c in self.channels.items() if c.default]
        if len(defaults) > 1:
            raise ProfileProblem(f"channels.{defaults[1]}.default", f"{defaults[0]} is the default already")

    def _check_fields(self) -> None:
        framing = self.framing
        line = isinstance(framing, LineFraming)
        if line and self.fields:
            raise ProfileProblem(
                "fields", "a line framing names its fields in [framing]: pattern groups or framing.fields"
            )
        if isinstance(framing, EvdevFraming | MidiFraming) and self.fields:
            table = "framing.events" if isinstance(framing, EvdevFraming) else "framing.controls"
            raise ProfileProblem("fields", f"{framing.kind} framing names its fields in {table}: remove [fields]")
        if isinstance(framing, BinaryFraming) and framing.length is not None:
            end = framing.length
            ck = framing.checksum_offset % end if framing.checksum.size else end
            for name, f in self.fields.items():
                if f.offset + f.size > end:
                    raise ProfileProblem(f"fields.{name}.offset", f"the field runs past the {end}-byte frame")
                for i, cond in enumerate(f.when):
                    if cond.offset >= end:
                        raise ProfileProblem(f"fields.{name}.when[{i}].offset", f"outside the {end}-byte frame")
                if f.offset < ck + framing.checksum.size and ck < f.offset + f.size:
                    raise ProfileProblem(f"fields.{name}.offset", f"the field overlaps the checksum at byte {ck}")
        known = self.field_names()
        where = "pattern groups" if line and getattr(framing, "pattern", None) else "fields"
        where = {"evdev": "framing.events", "midi": "framing.controls"}.get(framing.kind, where)
        entries: list[tuple[str, str | None]] = [(f"channels.{n}", c.field) for n, c in self.channels.items()]
        entries += [(f"buttons.{n}", b.field) for n, b in self.buttons.items()]
        for key, field in entries:
            name = field or key.split(".", 1)[1]
            if name not in known:
                listed = ", ".join(sorted(known)) or "none"
                raise ProfileProblem(
                    f"{key}.field",
                    f"no field {name!r} (the {where} are: {listed}): set `field` or add the field",
                )
        for name, channel in self.channels.items():
            if channel.number == "decimal" and not line:
                raise ProfileProblem(f"channels.{name}.number", "binary fields are integers: remove `number`")
