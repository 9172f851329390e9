"""A simulated dial: what a person turning a dial might do, deterministic for a seed.

It behaves like a serial dial that prints one decimal line per reading (0..1000), paced
on an absolute schedule so that the rate holds on average even when the loop is late
(late readings come out together, each stamped when it was handed over, as a real read would).
The movement is a sequence of segments: holds (the rater is content), slow sweeps (opinion
drifts), quick jumps (a moment that matters).
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Iterator

from daq.exceptions import DeviceGone, DeviceUnavailable
from daq.reading import Chunk, Decoded, Garbage, Reading

RAW_MIN = 0
RAW_MAX = 1000


def movement(seed: int, rate_hz: float) -> Iterator[int]:
    """Endless raw positions, one per reading."""
    rng = random.Random(seed)
    pos = float(rng.randint(300, 700))
    while True:
        kind = rng.choices(("hold", "sweep", "jump"), weights=(4, 4, 1))[0]
        if kind == "jump":
            target = float(rng.randint(RAW_MIN, RAW_MAX))
            steps = max(1, int(rate_hz * 0.05))  # a flick: 50 ms
        else:
            target = pos if kind == "hold" else float(rng.randint(RAW_MIN, RAW_MAX))
            steps = max(1, int(rate_hz * rng.uniform(0.5, 3.0 if kind == "hold" else 5.0)))
        start = pos
        for i in range(1, steps + 1):
            pos = start + (target - start) * i / steps
            yield round(pos)


def seed_for(dial_id: str) -> int:
    return zlib.crc32(dial_id.encode())


class SimulatedTransport:
    def __init__(self, dial_id: str, rate_hz: float, seed: int | None = None) -> None:
        self.dial_id = dial_id
        self.rate_hz = rate_hz
        self.period_ns = int(1e9 / rate_hz)
        self._values = movement(seed if seed is not None else seed_for(dial_id), rate_hz)
        self._next_ns = 0
        self._open = False
        self.plugged = True  # tests and demos unplug a simulated dial to show what a station does

    @property
    def describe(self) -> str:
        return f"simulated:{self.dial_id}@{self.rate_hz:g}Hz"

    async def open(self) -> None:
        if not self.plugged:
            raise DeviceUnavailable(f"{self.describe} is unplugged")
        self._open = True
        # On the grid of its period (from the monotonic clock's zero), not its own open time: the
        # simulated dials of one rate then read at the same instants, and the station handles and
        # sends their samples together (the demo's four dials: one send a tick, not two).
        now = time.monotonic_ns()
        self._next_ns = now - now % self.period_ns

    async def read(self) -> list[Chunk]:
        if not self._open:
            raise DeviceGone(f"{self.describe} is not open")
        now = time.monotonic_ns()
        if now < self._next_ns:
            await asyncio.sleep((self._next_ns - now) / 1e9)
            now = time.monotonic_ns()
        if not self.plugged:
            self._open = False
            raise DeviceGone(f"{self.describe} was unplugged")
        due = max(1, (now - self._next_ns) // self.period_ns + 1)
        self._next_ns += due * self.period_ns
        lines = b"".join(b"%d\n" % next(self._values) for _ in range(due))
        return [Chunk(lines, time.monotonic_ns())]

    async def close(self) -> None:
        self._open = False


class SimulatedDecoder:
    """Decimal lines, one per reading, all on the one channel 'position'."""

    channel = "position"
    ignored = 0  # every line is a reading or garbage

    def feed(self, chunk: Chunk) -> list[Decoded]:
        out: list[Decoded] = []
        for line in chunk.data.split(b"\n"):
            if not line:
                continue
            try:
                out.append(Reading(self.channel, int(line), chunk.mono_ns))
            except ValueError:
                out.append(Garbage("not a number", line, chunk.mono_ns))
        return out

    def reset(self, *, after_gap: bool = False) -> bytes:
        return b""  # each chunk holds whole lines: nothing held, nothing cut
