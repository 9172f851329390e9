"""A scripted transport for a DeviceReader without a device: it hands over given reads, then waits."""

from __future__ import annotations

import asyncio

from daq.reading import Chunk


class ScriptedTransport:
    """Each read() returns the next list of chunks in `reads`; once they are used up, it waits (an hour)."""

    def __init__(self, reads: list[list[Chunk]], describe: str) -> None:
        self.reads = reads
        self.describe = describe

    async def open(self) -> None:
        pass

    async def read(self) -> list[Chunk]:
        if self.reads:
            return self.reads.pop(0)
        await asyncio.sleep(3600)
        return []

    async def close(self) -> None:
        pass
