"""The value layer of decoding: numbers out of text or bytes, and what they mean.

A framing (daq.profiles.framing) cuts the input into lines, frames or reports; this module
reads the numbers out of one of them and applies the channel semantics of the profile
(absolute range checks, summing relative steps, undoing counter wrap-around, button changes).
Everything is compiled once, when the decoder is made.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Sequence

from daq.profiles.model import Profile
from daq.profiles.model_fields import BinaryField, Button, Channel, SequenceCounter
from daq.profiles.model_types import INT_TYPES
from daq.reading import ButtonEvent, Decoded, DeviceLoss, Garbage, Reading

Value = int | float

# Bounded lengths: int() of a huge digit string is slow (and raises past 4300 digits).
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]{1,18}(?:\.[0-9]{0,18})?|\.[0-9]{1,18})(?:[eE][+-]?[0-9]{1,3})?")


def parse_int(text: str) -> int | None:
    """Decimal integer text -> int; anything else (including '1_000', '١٢', ' 5') -> None."""
    if len(text) <= 18 and text.isascii() and text.isdigit():  # the common reading: plain ASCII digits
        return int(text)
    return int(text) if _INT_TEXT.fullmatch(text) else None


def parse_decimal(text: str) -> float | None:
    """Decimal text -> float; 'nan', 'inf' and non-numbers -> None."""
    if not _DECIMAL_TEXT.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


class Extractor:
    """Reads one `BinaryField` out of a frame (the frame is long enough: the framing checked)."""

    __slots__ = ("_mask", "_shift", "_unpack", "end", "offset")

    def __init__(self, field: BinaryField) -> None:
        fmt, size, _signed = INT_TYPES[field.type]
        self.offset = field.offset
        self.end = field.offset + size
        if field.bit is None and field.bits is None:
            self._shift, self._mask = 0, -1
        else:
            fmt = fmt.upper() if fmt[-1].islower() else fmt  # bit fields read the unsigned value
            self._shift = field.bit or 0
            self._mask = (1 << (field.bits or 1)) - 1
        self._unpack = struct.Struct(fmt).unpack_from

    def __call__(self, frame: bytes) -> int:
        value: int = self._unpack(frame, self.offset)[0]
        if self._mask >= 0:
            value = (value >> self._shift) & self._mask
        return value


class ChannelSink:
    """One channel's meaning. `apply` returns what a new value yields (or None: no change)."""

    __slots__ = ("field", "hi", "lo", "name", "parse")

    def __init__(self, name: str, channel: Channel) -> None:
        self.name = name
        self.field = channel.field or name
        self.parse: Callable[[str], Value | None] = parse_decimal if channel.number == "decimal" else parse_int
        self.lo = -math.inf  # only absolute channels have a range
        self.hi = math.inf

    def apply(self, value: Value, data: bytes, mono_ns: int) -> Decoded | None:
        raise NotImplementedError

    def reset(self) -> None:
        """After a reconnect. Totals are kept: a dial's position survives an unplug."""


class AbsoluteSink(ChannelSink):
    __slots__ = ()

    def __init__(self, name: str, channel: Channel) -> None:
        super().__init__(name, channel)
        if channel.range is not None:
            self.lo, self.hi = channel.range

    def apply(self, value: Value, data: bytes, mono_ns: int) -> Decoded | None:
        return Reading(self.name, value, mono_ns)


class RelativeSink(ChannelSink):
    __slots__ = ("max_delta", "total")

    def __init__(self, name: str, channel: Channel) -> None:
        super().__init__(name, channel)
        self.max_delta = channel.max_delta
        self.total: Value = 0

    def step(self, delta: Value, data: bytes, mono_ns: int) -> Decoded | None:
        if self.max_delta is not None and abs(delta) > self.max_delta:
            return Garbage(f"{self.name}: step {delta} is larger than max_delta {self.max_delta:g}", data, mono_ns)
        if delta == 0:
            return None
        self.total += delta
        return Reading(self.name, self.total, mono_ns)

    def apply(self, value: Value, data: bytes, mono_ns: int) -> Decoded | None:
        return self.step(value, data, mono_ns)


class CounterSink(RelativeSink):
    __slots__ = ("_half", "previous", "wrap")

    def __init__(self, name: str, channel: Channel, wrap: int | None) -> None:
        super().__init__(name, channel)
        self.wrap = wrap
        self._half = (wrap or 0) // 2
        self.previous: Value | None = None

    def apply(self, value: Value, data: bytes, mono_ns: int) -> Decoded | None:
        previous, self.previous = self.previous, value
        if previous is None:
            return None  # the baseline
        delta = value - previous
        if self.wrap:
            delta = (delta + self._half) % self.wrap - self._half
        return self.step(delta, data, mono_ns)

    def reset(self) -> None:
        self.previous = None  # the device may have restarted its count


class ButtonSink:
    __slots__ = ("active_low", "bit", "field", "name", "pressed")

    def __init__(self, name: str, button: Button) -> None:
        self.name = name
        self.field = button.field or name
        self.bit = button.bit
        self.active_low = button.active_low
        self.pressed = False  # kept across reconnects: a release after one is still reported

    def apply(self, value: int, mono_ns: int) -> ButtonEvent | None:
        pressed = bool((value >> self.bit) & 1) if self.bit is not None else value != 0
        if self.active_low:
            pressed = not pressed
        if pressed == self.pressed:
            return None
        self.pressed = pressed
        return ButtonEvent(self.name, pressed, mono_ns)


class SequenceSink:
    """The device's own report counter: a jump is `DeviceLoss` (see model_fields.SequenceCounter)."""

    __slots__ = ("_half", "field", "previous", "wrap")

    def __init__(self, counter: SequenceCounter, wrap_default: int | None) -> None:
        self.field = counter.field
        self.wrap = counter.wrap or wrap_default
        self._half = (self.wrap or 0) // 2
        self.previous: int | None = None

    def apply(self, value: int, mono_ns: int) -> DeviceLoss | None:
        previous, self.previous = self.previous, value
        if previous is None:
            return None  # the baseline
        wrap = self.wrap
        if wrap:
            delta = (value - previous) % wrap
            restarted = delta > self._half
        else:
            delta = value - previous
            restarted = delta < 0
        if delta <= 1 or restarted:
            return None  # the next one, a repeat, or the device counting afresh
        expected = (previous + 1) % wrap if wrap else previous + 1
        return DeviceLoss(delta - 1, expected, value, mono_ns)

    def reset(self) -> None:
        self.previous = None  # after a reconnect the device may count afresh: a new baseline


def _sink(name: str, channel: Channel, wrap_default: int | None) -> ChannelSink:
    if channel.kind == "absolute":
        return AbsoluteSink(name, channel)
    if channel.kind == "relative":
        return RelativeSink(name, channel)
    return CounterSink(name, channel, channel.wrap or wrap_default)


class Interpreter:
    """Applies a profile's channels and buttons to the values of one line, frame or report.

    `values` holds one entry per channel then per button, in declaration order (None: not in
    this line). A value out of an absolute channel's range makes the whole line or frame
    garbage, before any state changes.
    """

    __slots__ = ("buttons", "channels", "fields", "one_absolute", "sequence")

    def __init__(self, profile: Profile) -> None:
        widths = {name: f.width for name, f in profile.fields.items()}
        self.channels = [
            _sink(n, c, 2 ** widths[c.field or n] if (c.field or n) in widths else None)
            for n, c in profile.channels.items()
        ]
        self.buttons = [ButtonSink(n, b) for n, b in profile.buttons.items()]
        self.fields: list[str] = [s.field for s in self.channels] + [b.field for b in self.buttons]
        seq = profile.sequence
        self.sequence = SequenceSink(seq, 2 ** widths[seq.field] if seq.field in widths else None) if seq else None
        """The device's report counter, if the profile names one: its field is read apart from `fields`."""
        self.one_absolute = len(self.channels) == 1 and type(self.channels[0]) is AbsoluteSink and not self.buttons
        """The common dial: one absolute channel, no buttons (its values need no state)."""

    def emit(
        self,
        values: Sequence[Value | None],
        data: bytes,
        mono_ns: int,
        out: list[Decoded],
        sequence: int | None = None,
    ) -> bool:
        """Append what the values yield to `out`; False if they were refused as garbage.

        `sequence` is the value of the device's report counter in this input (None: absent);
        a report that arrived counts as arrived even when its values are refused."""
        if sequence is not None and self.sequence is not None:
            loss = self.sequence.apply(sequence, mono_ns)
            if loss is not None:
                out.append(loss)
        channels = self.channels
        if self.one_absolute:  # the common dial (one absolute channel, no buttons): the same, in one step
            value = values[0]
            if value is None:
                return True
            sink = channels[0]
            if not sink.lo <= value <= sink.hi:
                out.append(Garbage(f"{sink.name}: {value} is outside {sink.lo:g}..{sink.hi:g}", data, mono_ns))
                return False
            out.append(Reading(sink.name, value, mono_ns))
            return True
        for sink, value in zip(channels, values, strict=False):
            if value is not None and not sink.lo <= value <= sink.hi:
                out.append(Garbage(f"{sink.name}: {value} is outside {sink.lo:g}..{sink.hi:g}", data, mono_ns))
                return False
        for sink, value in zip(channels, values, strict=False):
            if value is not None:
                item = sink.apply(value, data, mono_ns)
                if item is not None:
                    out.append(item)
        n = len(channels)
        for j, button in enumerate(self.buttons):
            value = values[n + j]
            if value is not None:
                event = button.apply(int(value), mono_ns)
                if event is not None:
                    out.append(event)
        return True

    def reset(self) -> None:
        for sink in self.channels:
            sink.reset()
        if self.sequence is not None:
            self.sequence.reset()
