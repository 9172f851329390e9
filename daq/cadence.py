"""One grid of wake-ups for the daemon's periodic jobs.

A job that sleeps a fixed time after its work drifts against every other one: an idle station
with three once-a-second jobs wakes three times a second. `sleep_to_grid(period)` sleeps to the
next whole multiple of `period` on the event loop's clock instead, so jobs on the same (or a
dividing) period fall due in the same loop turn and the process wakes once for all of them.
A wake-up is the costly part of an idle daemon: on the 2-core VM the benchmarks run on, work
after a 1 s sleep runs 20-40x slower than the same work warm (benchmarks/README.md, "cold
wake-ups"), so an idle station's CPU is its wake-ups.

`HOUSEKEEPING_S` is the station's grid: health, the wall-clock check and the MQTT keepalive
check all run on it.
"""

from __future__ import annotations

import asyncio
import math

HOUSEKEEPING_S = 5.0
_EARLY = 0.01  # a timer may fire a hair before its time: within 1% of a grid point counts as on it


def next_grid_point(now: float, period: float) -> float:
    """The first multiple of `period` after `now` (a point just ahead of `now` counts as passed)."""
    return (math.floor(now / period + _EARLY) + 1) * period


async def sleep_to_grid(period: float) -> None:
    """Sleep until the next whole multiple of `period` seconds on the running loop's clock."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    await asyncio.sleep(next_grid_point(now, period) - now)
