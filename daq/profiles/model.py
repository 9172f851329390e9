"""Firmware profiles: what a dial says, as data (profile spec version 1).

A profile is a TOML file describing one device model: its transport kind, how its byte
stream is cut into lines, frames or reports (`framing`), where the numbers are (`fields`),
and what they mean (`channels`, `buttons`), plus serial settings and the USB ids discovery
recognises. It never says where a device is attached: that is station config.

`Profile` is the whole format: `Profile.model_json_schema()` is its JSON Schema. Its parts
live by job: daq.profiles.model_types (shared types, `ProfileProblem`), model_match ([match]),
model_framings ([framing], listed in daq.profiles.framing_registry), model_fields ([fields],
[channels], [buttons]); they are re-exported here. The transport kinds, and the framings each
carries, come from daq.transports.registry. Checks that span several tables (a channel naming
a field that exists, serial settings only on serial profiles) raise `ProfileProblem`, which
carries the dotted key, so the loader can say 'file: channels.position.field: ...'.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from daq.profiles.framing_registry import BY_KIND, Framing
from daq.profiles.model_fields import BinaryField, Button, Channel, Condition, SequenceCounter
from daq.profiles.model_framings import (
    BinaryFraming,
    Checksum,
    EvdevFraming,
    LengthField,
    LineFraming,
    MidiControl,
    MidiFraming,
    ReportFraming,
)
from daq.profiles.model_match import Match
from daq.profiles.model_types import (
    ID_RE,
    INT_TYPES,
    NAME_RE,
    SPEC_VERSION,
    USB_ID_RE,
    IntType,
    ProfileProblem,
    Regex,
    UsbId,
    parse_hex,
)
from daq.profiles.serial_settings import SerialSettings
from daq.transports.registry import TRANSPORTS
from daq.validation import StrictModel

__all__ = [
    "ID_RE",
    "INT_TYPES",
    "NAME_RE",
    "SPEC_VERSION",
    "USB_ID_RE",
    "BinaryField",
    "BinaryFraming",
    "Button",
    "Channel",
    "Checksum",
    "Condition",
    "EvdevFraming",
    "Framing",
    "IntType",
    "LengthField",
    "LineFraming",
    "Match",
    "MidiControl",
    "MidiFraming",
    "Profile",
    "ProfileProblem",
    "Regex",
    "ReportFraming",
    "SequenceCounter",
    "TransportName",
    "UsbId",
    "framings_for_transport",
    "parse_hex",
]


def _known_transport(value: Any) -> Any:
    """A registered transport kind (daq.transports.registry), checked when the profile is read."""
    if not isinstance(value, str) or TRANSPORTS.get(value) is None:
        raise ProfileProblem(None, f"Input should be {TRANSPORTS.choices()} (got {value!r})")
    return value


def _transport_enum(schema: dict[str, Any]) -> None:
    schema["enum"] = list(TRANSPORTS.names())


TransportName = Annotated[str, BeforeValidator(_known_transport)]
"""A profile's `transport`: the name of a kind in daq.transports.registry."""


def framings_for_transport(transport: str) -> frozenset[str]:
    """The framing kinds a transport kind can carry (none for an unknown kind)."""
    kind = TRANSPORTS.get(transport)
    return frozenset(kind.framings) if kind is not None else frozenset()


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
    transport: TransportName = Field(
        description="how the device is read: serial, hid, evdev or midi", json_schema_extra=_transport_enum
    )
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
    sequence: SequenceCounter | None = Field(
        default=None,
        description="line, binary and report framings: the field that is the device's own report counter, "
        "e.g. sequence = { field = 'n', wrap = 256 }; a jump in it is counted as device-side loss",
    )

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
        if BY_KIND[self.framing.kind].fields_in is not None:
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
        allowed = framings_for_transport(self.transport)
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
        own = None if line else BY_KIND[framing.kind].fields_in  # where the framing names its fields
        if own is not None and self.fields:
            raise ProfileProblem("fields", f"{framing.kind} framing names its fields in {own}: remove [fields]")
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
        where = "pattern groups" if line and getattr(framing, "pattern", None) else own or "fields"
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
        self._check_sequence(known, where)
        for name, channel in self.channels.items():
            if channel.number == "decimal" and not line:
                raise ProfileProblem(f"channels.{name}.number", "binary fields are integers: remove `number`")

    def _check_sequence(self, known: frozenset[str], where: str) -> None:
        seq = self.sequence
        if seq is None:
            return
        if self.framing.kind not in SEQUENCE_FRAMINGS:
            raise ProfileProblem("sequence", f"{self.framing.kind} input carries no report counter: remove [sequence]")
        if seq.field not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ProfileProblem("sequence.field", f"no field {seq.field!r} (the {where} are: {listed})")
        if seq.field in self.fields and self.fields[seq.field].width < 2 and seq.wrap is None:
            raise ProfileProblem("sequence.field", "a one-bit field cannot count reports: give a wider field")


SEQUENCE_FRAMINGS = frozenset({"line", "binary", "report"})
"""The framings whose input can carry a device's own report counter (a profile's [sequence])."""
