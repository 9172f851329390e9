"""MIDI Time Code in: decoding (pure, `MtcDecoder`) and a thin MIDI input port (`MtcClock`).

The port needs the `midi` extra (mido + python-rtmidi), imported only when the mtc clock runs.

- Quarter frame `F1 0nnn dddd`: piece nnn (0-7) carries a nibble of frames, seconds, minutes, hours
  (low nibble first); piece 7 also holds the rate code in bits 1-2. Eight pieces span two frames
  and describe the frame at which piece 0 was sent, so when piece 7 arrives the time is that frame
  + 1 3/4: the frame label is corrected by +2 frames (the frame starting with the next quarter
  frame) and the position stamped on piece 7's arrival is a quarter frame before that frame.
  Pieces must arrive in order 0..7; a gap (or a transport running backwards) drops the group.
- Full frame `F0 7F cc 01 01 hh mm ss ff F7` (cc: device id, 7F = all), sent after a locate: the
  exact frame, no correction; the clock holds there (paused) until quarter frames run again.
- Rate code (hh bits 5-6, or piece 7 bits 1-2): 0 = 24, 1 = 25, 2 = 29.97 drop-frame, 3 = 30.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from daq.exceptions import MissingExtraError
from daq.mediaclock.base import ClockChange, ClockState, OnChange
from daq.mediaclock.follow import FollowedClock
from daq.timecode import FrameRate, TimecodeError, frame_to_timecode, timecode_to_frame

log = logging.getLogger(__name__)

MTC_RATES: dict[int, FrameRate] = {
    0: FrameRate(Fraction(24), False),
    1: FrameRate(Fraction(25), False),
    2: FrameRate(Fraction(30000, 1001), True),
    3: FrameRate(Fraction(30), False),
}
STALL_NS = 250_000_000  # no quarter frame for this long: the transport stopped
_NS = 1_000_000_000


def require_mido() -> Any:
    """The mido module, or MissingExtraError naming the extra to install."""
    try:
        import mido
    except ImportError:
        raise MissingExtraError("mido", "midi", "the mtc media clock") from None
    return mido


@dataclass(frozen=True, slots=True)
class MtcTime:
    """A decoded time code: the frame it stands for, and the media position when it arrived."""

    frame: int  # frame count at `rate` from 00:00:00:00, +2 already added for quarter frames
    rate: FrameRate
    media_ns: int  # media position at the arrival of the message that completed it
    full: bool  # a full-frame (locate) message, not quarter frames

    @property
    def timecode(self) -> str:
        return frame_to_timecode(self.frame, self.rate)


def _frame_ns(quarters: int, rate: FrameRate) -> int:
    """`quarters` quarter frames in ns, rounded to the nearest ns."""
    fps = rate.fps
    return (2 * quarters * fps.denominator * _NS + 4 * fps.numerator) // (8 * fps.numerator)


class MtcDecoder:
    """Bytes of MIDI messages in, `MtcTime`s out; no I/O, no clock."""

    def __init__(self) -> None:
        self._nibbles = [0] * 8
        self._next = 0  # the piece expected next; 8 = none (waiting for piece 0)

    def feed(self, message: Sequence[int]) -> MtcTime | None:
        """One complete MIDI message; returns a time when it completes one, else None."""
        if len(message) == 2 and message[0] == 0xF1:
            return self.quarter_frame(message[1])
        if (
            len(message) == 10
            and message[0] == 0xF0
            and message[1] == 0x7F
            and message[3] == 0x01
            and message[4] == 0x01
            and message[9] == 0xF7
        ):
            return self.full_frame(message[5], message[6], message[7], message[8])
        return None

    def quarter_frame(self, data: int) -> MtcTime | None:
        piece, nibble = (data >> 4) & 0x07, data & 0x0F
        if piece != self._next and piece != 0:
            self._next = 8  # out of order: wait for the next piece 0
            return None
        self._nibbles[piece] = nibble
        self._next = piece + 1
        if piece != 7:
            return None
        n = self._nibbles
        hh_byte = n[6] | (n[7] << 4)
        decoded = self._decode(hh_byte, n[4] | (n[5] << 4), n[2] | (n[3] << 4), n[0] | (n[1] << 4))
        if decoded is None:
            return None
        frame, rate = decoded
        frame = (frame + 2) % rate.frames_per_day
        return MtcTime(frame, rate, _frame_ns(4 * frame - 1, rate), full=False)

    def full_frame(self, hh: int, mm: int, ss: int, ff: int) -> MtcTime | None:
        self._next = 8
        decoded = self._decode(hh, mm, ss, ff)
        if decoded is None:
            return None
        frame, rate = decoded
        return MtcTime(frame, rate, _frame_ns(4 * frame, rate), full=True)

    @staticmethod
    def _decode(hh: int, mm: int, ss: int, ff: int) -> tuple[int, FrameRate] | None:
        rate = MTC_RATES[(hh >> 5) & 0x03]
        sep = ";" if rate.drop_frame else ":"
        label = f"{hh & 0x1F:02d}:{mm & 0x3F:02d}:{ss & 0x3F:02d}{sep}{ff & 0x1F:02d}"
        try:
            return timecode_to_frame(label, rate), rate
        except TimecodeError:
            log.debug("MTC: %s is not a time code at %s", label, rate.label)
            return None


class MtcClock(FollowedClock):
    """Follow MIDI Time Code: quarter frames run the clock, a full frame holds it at a locate."""

    kind = "mtc"
    source = "MIDI Time Code"

    def __init__(self, rate: FrameRate, port: str | None = None, start_mono_ns: int = 0) -> None:
        super().__init__(rate, start_mono_ns)
        self.port = port
        self.decoder = MtcDecoder()
        self._last_quarter_mono: int | None = None
        self._warned_rate: FrameRate | None = None

    @property
    def deadline(self) -> int | None:
        if self.current().state != "running" or self._last_quarter_mono is None:
            return None
        return self._last_quarter_mono + STALL_NS

    def feed(self, message: Sequence[int], mono_ns: int) -> list[ClockChange]:
        """One MIDI message that arrived at `mono_ns`."""
        if len(message) == 2 and message[0] == 0xF1:
            self._last_quarter_mono = mono_ns
        decoded = self.decoder.feed(message)
        if decoded is None:
            return []
        if decoded.rate != self.rate and decoded.rate != self._warned_rate:
            self._warned_rate = decoded.rate
            log.warning("MTC runs at %s, the session at %s: positions are converted", decoded.rate, self.rate)
        state: ClockState = "paused" if decoded.full else "running"
        change = self.follow(mono_ns, state, decoded.media_ns, 1.0)
        return [change] if change is not None else []

    def tick(self, mono_ns: int) -> list[ClockChange]:
        """Quarter frames stopped coming: hold where they stopped."""
        deadline = self.deadline
        if deadline is None or mono_ns < deadline or self._last_quarter_mono is None:
            return []
        stopped_at = self._last_quarter_mono
        media = self.media_ns_at(stopped_at)
        change = self.follow(stopped_at, "paused", media if media is not None else 0)
        return [change] if change is not None else []

    async def run(self, on_change: OnChange) -> None:
        """Read the MIDI input port until cancelled."""
        mido = require_mido()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()

        def received(msg: Any) -> None:  # on rtmidi's thread: stamp first
            mono_ns = time.monotonic_ns()
            loop.call_soon_threadsafe(queue.put_nowait, (bytes(msg.bytes()), mono_ns))

        try:
            port = mido.open_input(self.port, callback=received)
        except ImportError:
            raise MissingExtraError("python-rtmidi", "midi", "the mtc media clock") from None
        log.info("reading MIDI Time Code from %s", port.name)
        try:
            while True:
                deadline = self.deadline
                timeout = None if deadline is None else max(0.0, (deadline - time.monotonic_ns()) / 1e9)
                try:
                    message, mono_ns = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    changes = self.tick(time.monotonic_ns())
                else:
                    changes = self.feed(message, mono_ns)
                for change in changes:
                    on_change(change.kind, change.message, change.data)
        finally:
            port.close()
