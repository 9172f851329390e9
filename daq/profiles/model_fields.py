"""What a profile's numbers mean: [fields] (integers at fixed places in a binary frame or
report), [channels] (the values a dial reports), [buttons] and [sequence] (the device's own
report counter)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from daq.profiles.model_types import INT_TYPES, IntType, ProfileProblem
from daq.validation import StrictModel

MAX_MAGNITUDE = 1e15
"""Bound on a channel's range ends and steps: beyond any device, and a span that cannot overflow."""


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
        le=MAX_MAGNITUDE,
        description="relative/counter: a bigger step is garbage (noise, or a device reset the decoder "
        "did not see); a counter then takes the new value as its baseline",
    )
    counts_per_turn: float | None = Field(
        default=None, ge=1e-3, le=1e9, description="counts per full turn (calibration of relative dials)"
    )
    detents_per_turn: int | None = Field(
        default=None, gt=0, le=1_000_000, description="clicks per full turn, if the dial has detents"
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
            if max(abs(self.range[0]), abs(self.range[1])) > MAX_MAGNITUDE:
                raise ProfileProblem("range", f"a device's range lies within ±{MAX_MAGNITUDE:g} (got {self.range!r})")
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


class SequenceCounter(StrictModel):
    """The device's own report counter: a field that rises by one per line, frame or report it sends.

    A jump in it means reports were sent and never arrived (loss on the link: a USB-serial
    bridge's overflowing buffer, a radio link): each missing count is counted as `device_lost`
    in health and announced (an input.device_lost event). The first report after the port opens
    is the baseline; a repeated value is not a loss; a jump back by more than half the wrap (or
    any jump back, without a wrap) is taken as the device restarting its count, not as loss.
    """

    field: str = Field(
        description="the field (binary/report) or pattern group / column (line) holding the counter; it may "
        "also feed a channel, but need not"
    )
    wrap: int | None = Field(
        default=None,
        ge=2,
        le=2**32,
        description="the counter's modulus (it goes wrap-1, 0, 1, ...). Default: 2**bits of a binary field "
        "(a uint8 wraps at 256); a line field has no width, so without `wrap` it is an unbounded count",
    )
