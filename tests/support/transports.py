"""Transports opened together in a test and closed together, however the block ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from daq.transports.base import Transport


@contextlib.asynccontextmanager
async def opened(*transports: Transport) -> AsyncIterator[None]:
    """Open `transports` at once (asyncio.gather); on leaving, close them all at once, even when an open failed."""
    try:
        await asyncio.gather(*(t.open() for t in transports))
        yield
    finally:
        await asyncio.gather(*(t.close() for t in transports))
