"""Waiting in a test's event loop for a condition that callbacks, threads or other processes change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(condition: Callable[[], bool], what: str = "the condition", timeout_s: float = 5.0) -> None:
    """Poll `condition` every 10 ms, the loop running meanwhile; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.01)
