"""A dial's firmware on a real pseudo-terminal, for testing serial code at the OS boundary.

    from tests.ptydial import PtyDial

    with PtyDial(tmp_path) as dial:             # dial.path: tmp_path/"dial" -> /dev/pts/N
        transport = SerialTransport(settings, Attachment(port=str(dial.path)))
        await transport.open()
        sent_ns = dial.write(b"512\\r\\n")        # time.monotonic_ns() just before the write
        times = await dial.play([b"1\\n", b"2\\n"], rate_hz=100)
        dial.unplug()                            # the program's reads fail: device gone
        dial.replug()                            # a new pty behind the same dial.path

The program under test opens `path`, the "device side"; the dial writes on the pty master.
`path` is a symlink that stays put while the /dev/pts node behind it changes on replug, as
/dev/serial/by-id/... does for a real dial. The dial keeps the device side open too, so
nothing depends on whether the program has it open. Both ends are raw (no echo, no newline
translation). Stdlib only; Linux (and other POSIX systems with ptys).

What unplug() looks like to the program (measured on Linux 6.18): the device side hangs up,
poll() reports it readable (POLLIN|POLLERR|POLLHUP) and read() returns 0 bytes; bytes not yet
read are dropped, as on a real unplug. (A read failing with EIO is the other way a device
says it is gone; tests/test_serial_transport.py fakes that one.) Call `wait_consumed()`
before `unplug()` to assert on what was written before it.

The API (path, device, plugged, write, play, read, wait_consumed, unplug, replug, close, and
use as a context manager) is shared by other tests: extend it, do not change it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import termios
import time
import tty
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

__all__ = ["PtyDial"]


class PtyDial:
    """A pseudo-terminal pair playing a serial dial; `path` is where the program opens it."""

    def __init__(self, directory: str | os.PathLike[str], name: str = "dial") -> None:
        self.path = Path(directory) / name
        """Stable symlink to the current device side (/dev/pts/N)."""
        self._master = -1
        self._slave = -1
        self.device = ""
        """The current /dev/pts/N (changes on replug)."""
        self.replug()

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def write(self, data: bytes) -> int:
        """Send bytes as the dial; returns time.monotonic_ns() taken just before the write."""
        self._check_plugged()
        sent_ns = time.monotonic_ns()
        view = memoryview(data)
        while view:
            view = view[os.write(self._master, view) :]
        return sent_ns

    async def play(self, frames: Iterable[bytes], rate_hz: float) -> list[int]:
        """Write each frame in one write, frame k at start + k / rate_hz (an absolute schedule,
        so lateness does not add up). Runs in a worker thread: the event loop keeps running.
        Returns the write times (as `write`)."""
        return await asyncio.to_thread(self._play, list(frames), rate_hz)

    def read(self, timeout: float = 1.0) -> bytes:
        """What the program sent to the dial (e.g. an init string): waits up to `timeout` for
        the first byte, then returns everything that has arrived (b'' if nothing came)."""
        self._check_plugged()
        out = b""
        deadline = time.monotonic() + timeout
        while True:
            wait = 0.02 if out else deadline - time.monotonic()
            ready, _, _ = select.select([self._master], [], [], max(0.0, wait))
            if not ready:
                return out
            out += os.read(self._master, 4096)

    def wait_consumed(self, timeout: float = 1.0) -> bool:
        """Wait until the program has read everything written so far; False on timeout.

        Watches the device side's input queue (TIOCINQ) until it is seen empty twice in a row:
        the kernel moves written bytes into that queue from a worker, a moment after the write. On
        a loaded machine that worker can run later than both looks, so before an `unplug()` (which
        drops what the worker had not moved) wait for what the program received, not for this.
        """
        self._check_plugged()
        deadline = time.monotonic() + timeout
        empty_seen = 0
        while empty_seen < 2:
            time.sleep(0.002)
            queued = fcntl.ioctl(self._slave, termios.TIOCINQ, b"\0\0\0\0")
            empty_seen = empty_seen + 1 if int.from_bytes(queued, "little") == 0 else 0
            if empty_seen < 2 and time.monotonic() >= deadline:
                return False
        return True

    def unplug(self) -> None:
        """Pull the cable: close both ends and remove the symlink. Idempotent."""
        self._close_pair()
        self.path.unlink(missing_ok=True)

    def replug(self) -> None:
        """Plug in again: a new pty pair, `path` pointing at it.

        Called while plugged, the new pair opens before the old one closes, so `device`
        changes (/dev/pts/3 -> /dev/pts/4, like ttyACM0 -> ttyACM1 when the old node was
        still held); after `unplug()` the kernel may hand out the old number again.
        """
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self._close_pair()
        self._master, self._slave = master, slave
        self.device = os.ttyname(slave)
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.device)
        tmp.replace(self.path)

    def close(self) -> None:
        self.unplug()

    def __enter__(self) -> PtyDial:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PtyDial({str(self.path)!r} -> {self.device or 'unplugged'})"

    def _play(self, frames: list[bytes], rate_hz: float) -> list[int]:
        period_ns = round(1e9 / rate_hz)
        start = time.monotonic_ns()
        times: list[int] = []
        for k, frame in enumerate(frames):
            delay = start + k * period_ns - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            times.append(self.write(frame))
        return times

    def _close_pair(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        self.device = ""

    def _check_plugged(self) -> None:
        if not self.plugged:
            raise OSError(f"{self!r} is unplugged")
