"""One way to keep a station job running: a failure is handed to `on_failure` (log it, announce it),
then the job starts again after `restart_s`; a job that returns is done; cancelling stops it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def restart_on_failure(
    job: Callable[[], Awaitable[None]], on_failure: Callable[[Exception], None], restart_s: float
) -> None:
    while True:
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            on_failure(exc)
            await asyncio.sleep(restart_s)
