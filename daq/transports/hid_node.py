"""A hidraw node read by the reader process (daq.transports.reader_host): the HID transport's
process path on Linux, so a HID report's stamp never waits for the daemon's interpreter lock.

The daemon opens the node itself (`open_node`: os.open, read-only, close-on-exec, non-blocking,
as the reader process reads after a poll and skips a read that would block) and hands the process
a duplicate of the descriptor, as it does a serial port's. A read(2) of a hidraw node returns
exactly one input report, byte for byte what hidapi's hidraw backend returns (its hid_read is a
read(2) of the same node; a numbered report keeps its report-id byte), and the process sends
every read as one CHUNK item, which the host puts in the port's Inbox as one Chunk: one report,
one chunk, never joined to another. An unplug makes the read fail (EIO, ENODEV) or end (0
bytes) after the reports queued before it: the process sends GONE behind them, which ends the
Inbox with DeviceGone once they were handed over.

One difference from hidapi's thread: the process reads up to reader_process.READ_SIZE (4096)
bytes a read, where the thread asks hidapi for HidTransport's read_size (256); a report longer
than 256 bytes (no dial's is) comes whole here.

`open_node` is the one place the node is opened: tests replace it with a fake node (a
SEQPACKET socket pair: one report per read, end of file when the peer closes).
"""

from __future__ import annotations

import os

from daq.transports.inbox import Inbox
from daq.transports.reader_host import ProcessHost, ProcessPort, ReaderPriority

NODE_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def open_node(path: str) -> int:
    """Open the hidraw node `path` for the reader process. Raises OSError (as os.open does)."""
    return os.open(path, NODE_FLAGS)


class NodeReading:
    """One open hidraw node read by the reader process: the daemon's descriptor, the process's port, its inbox."""

    def __init__(self, fd: int, port: ProcessPort, inbox: Inbox) -> None:
        self.fd = fd
        self.port = port
        self.inbox = inbox

    @classmethod
    async def start(cls, fd: int, describe: str, priority: ReaderPriority) -> NodeReading:
        """Hand `fd` (kept open here, by the caller on failure) to this loop's reader process.
        Raises ReaderUnavailable (no process can start here) or DeviceUnavailable (it died at every start)."""
        inbox = Inbox()
        port = await ProcessHost.attach(fd, describe, inbox, priority)
        return cls(fd, port, inbox)

    async def stop(self) -> None:
        """The process lets go of the node; what it read before is in the inbox then."""
        await self.port.stop()

    @property
    def pid(self) -> int | None:
        return self.port.pid
