"""Chunks handed from a device's reader thread to the event loop, and the end of a device.

A reader thread stamps each chunk right after its read returned and `put`s it (thread-safe);
the transport's `read()` is `take()` (`take_from`): every chunk waiting, or DeviceGone once the
chunks read before the device went away were all handed over; its `close()` ends with
`close_handoff`, which wakes a `read()` still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib

from daq.exceptions import DeviceGone
from daq.reading import Chunk

Item = Chunk | DeviceGone


class Handoff:
    """Made in the event loop; `put` from any thread, `take` in the loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._gone: DeviceGone | None = None

    def put(self, item: Item) -> None:
        """From the reader thread. A closed loop (the daemon is exiting) drops the item."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def put_nowait(self, item: Item) -> None:
        """From the event loop."""
        self._queue.put_nowait(item)

    async def take(self) -> list[Chunk]:
        """The chunks waiting (at least one); DeviceGone after the last."""
        if self._gone is not None:
            raise DeviceGone(str(self._gone))
        item = await self._queue.get()
        chunks: list[Chunk] = []
        while True:
            if isinstance(item, DeviceGone):
                self._gone = item
                break
            chunks.append(item)
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        if chunks:
            return chunks
        raise DeviceGone(str(item))


def close_handoff(handoff: Handoff | None, describe: str) -> None:
    """A threaded transport's `close()`, last: DeviceGone('<describe>: closed') wakes a `read()` still waiting."""
    if handoff is not None:
        handoff.put_nowait(DeviceGone(f"{describe}: closed"))


async def take_from(handoff: Handoff | None, describe: str) -> list[Chunk]:
    """A threaded transport's `read()`: its handoff's `take()`; RuntimeError while it is not open (no handoff)."""
    if handoff is None:
        raise RuntimeError(f"{describe} is not open")
    return await handoff.take()
