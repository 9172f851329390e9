"""Framings of input devices that arrive already cut into events: Linux input events (evdev)
and MIDI messages. Listed, with their models, in daq.profiles.framing_registry.

evdev chunk format (what daq.transports.evdev_input hands over, and what a capture holds):
8-byte records, struct '<HHi' = type, code, value, one per input event, as many as one read
returned. Two record types the kernel never sends (EV_MAX is 0x1f) carry an absolute axis's
range, sent by the transport right after it opens the device: ABSINFO_MIN (0xFFFE) and
ABSINFO_MAX (0xFFFF), code = the axis, value = its minimum / maximum.

MIDI chunk format: the bytes of MIDI messages as the port delivered them (one message a
chunk from the transport; a capture may hold several back to back).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from daq.profiles.fields import Interpreter, Value
from daq.profiles.input_codes import EV_ABS, EV_KEY, EV_SYN
from daq.profiles.model import Profile
from daq.profiles.model_framings import EvdevFraming, MidiFraming, MidiKey
from daq.reading import Chunk, Decoded, Discarded, Garbage

EVENT = struct.Struct("<HHi")
ABSINFO_MIN = 0xFFFE
ABSINFO_MAX = 0xFFFF
SYN_REPORT, SYN_DROPPED = 0, 3  # EV_SYN codes: a frame's end; the kernel's buffer for us overflowed
_KERNEL_DROPPED = (
    "input events the kernel dropped (SYN_DROPPED: its buffer for this reader overflowed), "
    "and the frame it cut, up to the next SYN_REPORT"
)
_AFTER_DROP = "the rest of the frame the kernel cut (SYN_DROPPED: up to the next SYN_REPORT)"

# Message length by status (channel messages by their high nibble); other system messages: 1.
MESSAGE_SIZE = {0x80: 3, 0x90: 3, 0xA0: 3, 0xB0: 3, 0xC0: 2, 0xD0: 2, 0xE0: 3, 0xF1: 2, 0xF2: 3, 0xF3: 2}

K = TypeVar("K")


def pack_events(events: Iterable[tuple[int, int, int]]) -> bytes:
    """(type, code, value) events -> one evdev chunk."""
    return b"".join(EVENT.pack(t, c, v) for t, c, v in events)


def pack_absinfo(code: int, minimum: int, maximum: int) -> bytes:
    """The records that tell the decoder an absolute axis's range."""
    return EVENT.pack(ABSINFO_MIN, code, minimum) + EVENT.pack(ABSINFO_MAX, code, maximum)


def button_keys(profile: Profile) -> list[int]:
    """The EV_KEY codes of an evdev profile that feed buttons only (no channel): after SYN_DROPPED
    the reader asks the device for their state (daq.transports.evdev_input), which restores them,
    so the decoder does not count their events in the cut frame as lost readings."""
    framing = profile.framing
    assert isinstance(framing, EvdevFraming)
    inputs = framing.field_inputs()
    of_buttons = {inputs[b.field or n] for n, b in profile.buttons.items() if (b.field or n) in inputs}
    of_channels = {inputs[c.field or n] for n, c in profile.channels.items() if (c.field or n) in inputs}
    return sorted(code for ev_type, code in of_buttons - of_channels if ev_type == EV_KEY)


class _EventDecoder(Generic[K]):
    """What the event framings share: each event key (an input event, a MIDI control) feeds the
    Interpreter value slots (channels, then buttons) of the fields it is named as."""

    def __init__(self, profile: Profile, field_keys: dict[str, K]) -> None:
        self._interp = Interpreter(profile)
        self._slots: dict[K, list[int]] = {}
        for i, field in enumerate(self._interp.fields):
            self._slots.setdefault(field_keys[field], []).append(i)
        self._width = len(self._interp.fields)
        self.ignored = 0

    def reset(self, *, after_gap: bool = False) -> bytes:
        """Whole events are never cut: after a gap the decoder reads on as it is; otherwise the
        Interpreter starts afresh (counter baselines). Nothing is held, so nothing is dropped."""
        if not after_gap:
            self._interp.reset()
        return b""

    def _emit(self, slots: list[int], value: Value, raw: bytes, mono_ns: int, out: list[Decoded]) -> None:
        """One event's `value` into each of its `slots`, emitted as the readings and button events it makes."""
        values: list[Value | None] = [None] * self._width
        for slot in slots:
            values[slot] = value
        self._interp.emit(values, raw, mono_ns, out)


class EvdevDecoder(_EventDecoder[tuple[int, int]]):
    """Input events: each named event feeds the channels and buttons that read its field."""

    def __init__(self, profile: Profile, *, synced: bool = False) -> None:
        framing = profile.framing
        assert isinstance(framing, EvdevFraming)
        super().__init__(profile, framing.field_inputs())
        n = len(self._interp.channels)
        # An absolute axis with a channel range: the axis's absinfo min..max maps onto it.
        self._target: dict[int, tuple[float, float]] = {}
        for (ev_type, code), slots in self._slots.items():
            for slot in slots:
                if ev_type == EV_ABS and slot < n:
                    sink = self._interp.channels[slot]
                    if math.isfinite(sink.lo) and math.isfinite(sink.hi):
                        self._target[code] = (sink.lo, sink.hi)
        self._absmin: dict[int, int] = {}
        self._absmax: dict[int, int] = {}
        self._dropping = False  # after SYN_DROPPED, until the next SYN_REPORT
        self._restored = {(EV_KEY, code) for code in button_keys(profile)}  # the reader asks their state then
        self._cut: list[bytes] = []  # what the frame the kernel cut held (the Discarded item's data)
        self._cut_readings = 0  # the events of it that would have been readings
        self._cut_reason = _KERNEL_DROPPED

    def reset(self, *, after_gap: bool = False) -> bytes:
        if not after_gap:
            super().reset()
            self._dropping = False
        return b""

    def feed(self, chunk: Chunk) -> list[Decoded]:
        """The events of a read. SYN_DROPPED (the kernel lost events: this reader fell behind) is
        discarded, counted and said, and so is each event the profile reads up to the next
        SYN_REPORT, as the kernel's documentation asks (that frame is incomplete), but for the keys
        only buttons read (`button_keys`): the reader asks the device for their state once the frame
        ends, which says each button's state then. A relative dial's steps lost there are lost; an
        absolute axis says its position again when it moves."""
        data, mono = chunk.data, chunk.mono_ns
        out: list[Decoded] = []
        whole = len(data) - len(data) % EVENT.size
        for ev_type, code, value in EVENT.iter_unpack(data[:whole]):
            if ev_type == ABSINFO_MIN:
                self._absmin[code] = value
                continue
            if ev_type == ABSINFO_MAX:
                self._absmax[code] = value
                continue
            if ev_type == EV_SYN and code == SYN_DROPPED:
                self._cut_off(mono, out)  # a drop inside a cut frame: that one is said first
                self._dropping, self._cut_reason = True, _KERNEL_DROPPED
                self._cut.append(EVENT.pack(ev_type, code, value))
                self._cut_readings += 1  # whatever the kernel dropped: at least one event, not known which
                continue
            if self._dropping:
                if ev_type == EV_SYN and code == SYN_REPORT:
                    self._dropping = False
                    self._cut_off(mono, out)
                elif (
                    (ev_type, code) in self._slots
                    and (ev_type, code) not in self._restored
                    and not (ev_type == EV_KEY and value == 2)
                ):  # not a button the reader's query restores, nor an autorepeat (no reading)
                    self._cut.append(EVENT.pack(ev_type, code, value))
                    self._cut_readings += 1
                continue
            slots = self._slots.get((ev_type, code))
            if slots is None:
                if ev_type != EV_SYN:
                    self.ignored += 1  # an event the profile does not read
                continue
            if ev_type == EV_KEY and value == 2:
                continue  # autorepeat of a held key
            reading: Value = self._scaled(code, value) if ev_type == EV_ABS else value
            self._emit(slots, reading, EVENT.pack(ev_type, code, value), mono, out)
        self._cut_off(mono, out)  # a cut frame that goes on in the next read: said now, its rest then
        if whole < len(data):
            out.append(Garbage(f"{len(data) - whole} bytes are not a whole input event", data[whole:], mono))
        return out

    def _cut_off(self, mono: int, out: list[Decoded]) -> None:
        """The frame the kernel cut, as one Discarded item counting the readings it may have held."""
        if self._cut:
            out.append(Discarded(self._cut_reason, b"".join(self._cut), mono, self._cut_readings))
            self._cut.clear()
            self._cut_readings = 0
            self._cut_reason = _AFTER_DROP

    def _scaled(self, code: int, value: int) -> Value:
        target = self._target.get(code)
        lo, hi = self._absmin.get(code), self._absmax.get(code)
        if target is None or lo is None or hi is None or hi <= lo:
            return value
        if (lo, hi) == target:
            return value
        return target[0] + (value - lo) * (target[1] - target[0]) / (hi - lo)


# ---------------------------------------------------------------- MIDI


def midi_messages(data: bytes) -> Iterator[bytes | str]:
    """Split bytes into MIDI messages; a str says why the bytes from there on are not one."""
    i, n = 0, len(data)
    while i < n:
        status = data[i]
        if status < 0x80:
            yield f"data byte 0x{status:02x} where a status byte was expected"
            return
        if status == 0xF0:  # system exclusive, up to F7
            end = data.find(b"\xf7", i)
            if end < 0:
                yield "a system exclusive message without its end (F7)"
                return
            size, body = end - i + 1, data[i + 1 : end]
        else:
            size = MESSAGE_SIZE.get(status & 0xF0 if status < 0xF0 else status, 1)
            body = data[i + 1 : i + size]
            if len(body) < size - 1:
                yield f"a cut MIDI message (status 0x{status:02x})"
                return
        if any(b >= 0x80 for b in body):
            yield f"a malformed MIDI message (status 0x{status:02x})"
            return
        yield data[i : i + size]
        i += size


class MidiDecoder(_EventDecoder[MidiKey]):
    """Control Change and note messages: each named control feeds the channels and buttons reading it."""

    def __init__(self, profile: Profile, *, synced: bool = False) -> None:
        framing = profile.framing
        assert isinstance(framing, MidiFraming)
        super().__init__(profile, framing.field_inputs())

    def feed(self, chunk: Chunk) -> list[Decoded]:
        data, mono = chunk.data, chunk.mono_ns
        out: list[Decoded] = []
        for message in midi_messages(data):
            if isinstance(message, str):
                out.append(Garbage(message, data, mono))
                break
            kind, channel = message[0] & 0xF0, message[0] & 0x0F
            if kind == 0xB0:
                key: MidiKey = ("cc", channel, message[1])
                value = message[2]
            elif kind in (0x80, 0x90):
                key = ("note", channel, message[1])
                value = message[2] if kind == 0x90 else 0
            else:
                self.ignored += 1
                continue
            slots = self._slots.get(key)
            if slots is None:
                self.ignored += 1  # a control the profile does not read
                continue
            self._emit(slots, value, message, mono, out)
        return out
