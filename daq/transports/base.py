"""What every transport provides: open a device, hand over chunks with read times, close.

A transport knows where a device is attached and how to read bytes from it; it knows nothing
about what the bytes mean (that is the profile's decoder). `DeviceReader` (daq.station.device_reader) runs it:
opens with backoff, reads, decodes, and reopens after `DeviceGone`.
"""

from __future__ import annotations

from typing import Protocol

from daq.reading import Chunk


class Transport(Protocol):
    """One opened device.

    `open` raises `DeviceUnavailable` when the device is absent or busy (retried);
    `read` returns one or more chunks, each stamped with time.monotonic_ns() right after
    the read returned, and raises `DeviceGone` when the device vanished (reopened).
    `read` must never block the event loop: blocking libraries read in a thread.
    """

    @property
    def describe(self) -> str:
        """Where the device is, for logs and events (e.g. 'serial:/dev/ttyACM0')."""
        ...

    async def open(self) -> None: ...

    async def read(self) -> list[Chunk]: ...

    async def close(self) -> None: ...
