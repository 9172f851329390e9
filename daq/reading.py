"""What flows out of a transport and a decoder, before calibration.

A transport hands over `Chunk`s: bytes exactly as read, with the monotonic time taken right
after the read returned. A decoder (built from a firmware profile) turns chunks into
`Reading`s (a value of one channel), `ButtonEvent`s, `Garbage` (input that did not
decode; counted and reported, never published as a sample), `Discarded` (input dropped on
purpose, counted and announced) and `DeviceLoss` (reports the device's own counter says were
sent but never arrived).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Chunk(NamedTuple):
    """Bytes as one read returned them (a serial read, one HID report, one MIDI message).

    Chunk and Reading are named tuples, not frozen dataclasses: one of each is made per reading,
    and a frozen dataclass takes about 1.7 times as long to make (an object.__setattr__ per field)."""

    data: bytes
    mono_ns: int  # time.monotonic_ns() taken right after the read returned


class Reading(NamedTuple):
    """One decoded value of one channel of a device.

    `raw` is the device's reading after decoding: an absolute position, or the accumulated
    count of a relative dial (deltas summed, wrap-around undone).
    """

    channel: str
    raw: int | float
    mono_ns: int


@dataclass(frozen=True, slots=True)
class ButtonEvent:
    """A button changed state."""

    button: str
    pressed: bool
    mono_ns: int


@dataclass(frozen=True, slots=True)
class Garbage:
    """Input that did not decode. Never becomes a sample.

    One undecodable run of input (from where the decoder lost sync to where it found it again)
    is counted once: its first `Garbage` has `continues` False, and any later ones of the same
    run (more bytes of it in a later read, another reason within it) have `continues` True."""

    reason: str
    data: bytes = field(repr=False)
    mono_ns: int
    continues: bool = False


@dataclass(frozen=True, slots=True)
class Discarded:
    """Input the decoder threw away on purpose though it may have been a reading (the first line
    after the port opened, which may be cut): counted and announced, never silent. `count`: the
    readings it may have held (the events of an input frame the kernel cut), one for a line."""

    reason: str
    data: bytes = field(repr=False)
    mono_ns: int
    count: int = 1


@dataclass(frozen=True, slots=True)
class DeviceLoss:
    """The device's own sequence counter (a profile's `sequence`) jumped: `lost` reports were
    sent by the device and never reached the host (loss on the link, not in dialdaq)."""

    lost: int
    expected: int
    got: int
    mono_ns: int


Decoded = Reading | ButtonEvent | Garbage | Discarded | DeviceLoss
