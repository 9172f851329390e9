"""Waiting on an outbox the way the station's publisher does: one asyncio.Event registered with `notify`."""

from __future__ import annotations

import asyncio

from daq.outbox.base import Outbox


async def until_pending(box: Outbox) -> None:
    """Return once `box` has an entry pending, woken only by the Event `box.notify` sets (as
    `Publisher._pump` idles). Bound it with `asyncio.wait_for`."""
    wake = asyncio.Event()
    box.notify(wake)
    while not box.pending:
        wake.clear()
        await wake.wait()
