"""The daemon's wake-up grid (daq.cadence) and the jobs on it."""

from __future__ import annotations

import asyncio

import pytest

from daq.cadence import HOUSEKEEPING_S, next_grid_point, sleep_to_grid
from daq.mqtt.client import misc_every


@pytest.mark.parametrize(
    ("now", "period", "expected"),
    [
        (0.0, 5.0, 5.0),
        (3.2, 5.0, 5.0),
        (5.0, 5.0, 10.0),  # on a point: the next one
        (4.999, 5.0, 10.0),  # a timer that fired a hair early counts as on the point
        (4.9, 5.0, 5.0),
        (12.34, 1.0, 13.0),
    ],
)
def test_next_grid_point(now: float, period: float, expected: float) -> None:
    assert next_grid_point(now, period) == pytest.approx(expected)


def test_jobs_started_apart_wake_in_one_loop_turn() -> None:
    """Two jobs that start 13 ms apart fall due at the same grid point: one wake-up for both.

    A trial counts only if both jobs asked for the grid before its point (a loaded machine can wake
    the second job past it; then it rightly waits for the next point): up to 5 trials for one."""
    period = 0.05

    async def job(delay: float) -> tuple[float, float]:  # when it asked for the grid, when it woke
        loop = asyncio.get_running_loop()
        await asyncio.sleep(delay)
        asked = loop.time()
        await sleep_to_grid(period)
        return asked, loop.time()

    async def trial() -> tuple[float, tuple[float, float], tuple[float, float]]:
        loop = asyncio.get_running_loop()
        await sleep_to_grid(period)  # start just after a grid point, so neither job starts past the next
        start = loop.time()
        a, b = await asyncio.gather(job(0.0), job(0.013))
        return start, a, b

    for _ in range(5):
        start, (asked_a, a), (asked_b, b) = asyncio.run(trial())
        point = next_grid_point(start, period)
        if max(asked_a, asked_b) < point - 0.001:
            break
    else:
        pytest.fail("in 5 trials the second job never started before the grid point it should share")
    assert a >= point - 0.001 and b >= point - 0.001
    assert abs(a - b) < 0.002  # one wake-up: without the grid, the second job would wake 13 ms later


def test_keepalive_check_every() -> None:
    assert misc_every(30) == HOUSEKEEPING_S == 5.0  # the default keepalive: on the station's grid
    assert misc_every(12) == 2.0  # a sixth of the keepalive below that
    assert misc_every(5) == 1.0  # never more often than aiomqtt's own second
    assert misc_every(3600) == HOUSEKEEPING_S
