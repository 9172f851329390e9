"""Where serial ports and hidraw nodes are read: in a reader process of their own (Linux, macOS;
hidraw: Linux) or in a thread of the daemon (`[station] readers = "thread"`, and always on
Windows); the daemon's side of the process.

The choice: `readers_mode(mode)` (a context manager the station assembly wraps around building
its transports) sets what a SerialTransport or HidTransport made inside it uses; `current_mode()`
reads it ("process" where `process_supported()`, else "thread"; asking for "process" where it is
not supported gives "thread"). A HID dial uses the process only through hidapi's hidraw backend
(daq.transports.hid, hid_node); libusb and the native backends keep hidapi's thread.

The process (daq.transports.reader_process holds it and the wire format): one per event loop,
started by the first port attached and ended when the last one is detached (joined then, like
the reader thread), so `daq run` stays one command. The daemon opens and sets up each port itself
(pyserial: settings, exclusive lock, settle, init; a hidraw node: os.open) and hands the process a
duplicate of its descriptor, which it polls, reads and stamps (a hidraw read is one report, one
chunk); the process sends every poll round's reads in one
message, read here by a callback of the event loop (`loop.add_reader`): one wake-up a round. That
callback puts each chunk in its port's Inbox (daq.transports.inbox), which hands it on to the
port's decoding at once (`deliver_to`, how the station's DeviceReader takes them): no task is woken
per port and round.

How the process is scheduled (`[station] reader_priority`): "realtime" (the default) has the daemon
put it under SCHED_FIFO right after starting it (`reader_process.realtime`), where Linux permits:
root, CAP_SYS_NICE, or an rtprio limit (`ulimit -r`). Then a port's data preempts every normal task,
the daemon and the broker included, and its stamp waits for none of them (ts error p99 x 0.5-0.8 on
the 2-core VM, README "Performance"). Where it is not permitted, or with "normal", it runs at normal
priority with the shortest time slice it can ask for itself; the first start logs which it got.

A reader process that dies (killed, crashed) ends every port it read with `ReaderDied`, a
DeviceGone: the station's DeviceReader says the device was lost, closes the transport and opens it
again, which starts a new process. The transport keeps its port open across that
(daq.transports.serial and hid park it), so the device is not set up again and nothing waiting in
the kernel's tty buffer (or a hidraw node's report queue) is dropped: the new process reads on where
the old one stopped (the DeviceReader discards the line the death may have cut, counted). A
process that dies within QUICK_DEATH_S of starting makes the next start wait (RESTART_BACKOFF_S),
so a process that cannot run does not spin; one that lived longer, or a clean shutdown, clears
that count. A process that dies at every start makes the port's open() raise
DeviceUnavailable (the DeviceReader retries, the port stays parked), never a fall back to threads
for good: only a process that cannot be started at all (ReaderUnavailable) does that. What a dying
process had read but not sent (its last poll round) is lost and cannot be counted: the ReaderDied
message and the log say so, with the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import ClassVar, Literal

from daq.exceptions import DeviceGone, DeviceUnavailable
from daq.reading import Chunk
from daq.transports import reader_process as wire
from daq.transports.inbox import Inbox

log = logging.getLogger(__name__)

ReadersMode = Literal["process", "thread"]
MODES: tuple[ReadersMode, ...] = ("process", "thread")
ReaderPriority = Literal["realtime", "normal"]

JOIN_TIMEOUT_S = 5.0
QUICK_DEATH_S = 2.0
RESTART_BACKOFF_S = (0.25, 5.0)  # first wait, longest wait
RECV_SIZE = 256 * 1024

_mode: ContextVar[ReadersMode | None] = ContextVar("serial_readers", default=None)
_priority: ContextVar[ReaderPriority] = ContextVar("serial_reader_priority", default="realtime")


class ReaderDied(DeviceGone):
    """The reader process ended while it read this port: the port itself may be fine."""


class ReaderUnavailable(Exception):
    """No reader process can be started here: the port is read in a thread instead."""


def process_supported() -> bool:
    """A reader process needs fork+exec, Unix sockets that pass descriptors, and a Python to run."""
    return os.name == "posix" and hasattr(socket, "send_fds") and bool(sys.executable)


def current_mode() -> ReadersMode:
    """What a serial or HID transport made now is read by (the innermost `readers_mode`, else the default)."""
    return resolve_mode(_mode.get())


def resolve_mode(mode: ReadersMode | None) -> ReadersMode:
    """`mode` where it can be had: None means a process where supported; off it, always a thread."""
    if mode == "thread" or not process_supported():
        return "thread"
    return "process"


def current_priority() -> ReaderPriority:
    """What a reader process started for a transport made now asks for (the innermost `readers_mode`)."""
    return _priority.get()


@contextlib.contextmanager
def readers_mode(mode: ReadersMode | None, priority: ReaderPriority = "realtime") -> Iterator[None]:
    """Transports made inside use `mode` (None: the default, a process where supported), and a reader
    process started for them asks for `priority` (see `ProcessHost`)."""
    token, priority_token = _mode.set(mode), _priority.set(priority)
    try:
        yield
    finally:
        _mode.reset(token)
        _priority.reset(priority_token)


def realtime_permitted() -> int | None:
    """The SCHED_FIFO priority a reader process started now would get (`reader_process.realtime`),
    found by asking it for a throwaway child process; None where it would run at normal priority."""
    child = subprocess.Popen([sys.executable, "-I", "-S", "-c", "import time; time.sleep(30)"])
    try:
        return wire.realtime(child.pid)
    finally:
        child.kill()
        child.wait()


class ProcessPort:
    """One port read by the reader process: its items go to `inbox`; `stop()` takes it back."""

    def __init__(self, host: ProcessHost, port_id: int, describe: str, inbox: Inbox) -> None:
        self.host = host
        self.id = port_id
        self.describe = describe
        self.inbox = inbox
        self.reading = True  # the process holds the descriptor (False after GONE or its death)

    async def stop(self) -> None:
        """The process lets go of the port (its descriptor closed there); the last port ends the process."""
        await self.host.remove(self)

    @property
    def pid(self) -> int | None:
        """The reader process's pid (None once it ended)."""
        return self.host.pid


class ProcessHost:
    """The daemon's end of one reader process."""

    _hosts: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ProcessHost]] = weakref.WeakKeyDictionary()
    _quick_deaths: ClassVar[int] = 0  # deaths in a row within QUICK_DEATH_S of the start
    _priority_told: ClassVar[bool] = False  # the first start's priority is logged at info, later ones at debug

    @classmethod
    async def attach(cls, fd: int, describe: str, inbox: Inbox, priority: ReaderPriority = "realtime") -> ProcessPort:
        """Read the open port `fd` in this loop's reader process (started if none runs, asking for
        `priority`: see the module's docstring).

        Raises ReaderUnavailable where no process can be started at all (the port is then read in a
        thread), DeviceUnavailable when the process died at every start (this time: the caller
        retries later, each start after a quick death waiting longer, RESTART_BACKOFF_S)."""
        loop = asyncio.get_running_loop()
        for _ in range(2):
            host = cls._hosts.get(loop)
            if host is None:
                if cls._quick_deaths:
                    first, longest = RESTART_BACKOFF_S
                    await asyncio.sleep(min(longest, first * 2 ** (cls._quick_deaths - 1)))
                host = cls._hosts.get(loop)
                if host is None:
                    host = cls._hosts[loop] = cls(loop, priority)
            try:
                return host.add(fd, describe, inbox)
            except (BrokenPipeError, ConnectionResetError):  # it died a moment ago: its end of file is not read yet
                host._died()
            except Exception:
                if not host._ports and not host._ended:  # started for nothing: do not leave it running
                    await host._shutdown(clean=False)
                raise
        raise DeviceUnavailable(f"{describe}: the {reader_name(describe)} died at every start (trying again)")

    def __init__(self, loop: asyncio.AbstractEventLoop, priority: ReaderPriority = "realtime") -> None:
        self._loop = loop
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as exc:
            raise ReaderUnavailable(f"no socket pair: {exc}") from exc
        try:
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                with contextlib.suppress(OSError):
                    ours.setsockopt(socket.SOL_SOCKET, option, wire.SOCKET_BUFFER)
            script = Path(wire.__file__)
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(script), str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                )
            except OSError as exc:
                raise ReaderUnavailable(f"cannot run {sys.executable}: {exc}") from exc
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        self._started = time.monotonic()
        self._ports: dict[int, ProcessPort] = {}
        self._removing: dict[int, asyncio.Future[None]] = {}
        self._next_id = 1
        self._pending = b""  # the start of an item cut at the end of the last recv
        self._ended = False
        self.orphaned = self.orphaned_bytes = 0  # chunks of ports already let go (`_orphan`)
        loop.add_reader(ours.fileno(), self._readable)
        self.realtime = wire.realtime(self._proc.pid) if priority == "realtime" else None
        log.debug("reader process %d started (%s)", self._proc.pid, self.priority_text)
        if not ProcessHost._priority_told:
            ProcessHost._priority_told = True
            if self.realtime is None and priority == "realtime":
                log.info(
                    "reader process (serial and hidraw dials) at normal priority: real-time (SCHED_FIFO) is "
                    "not permitted (Linux: CAP_SYS_NICE or an rtprio limit, `ulimit -r`; `daq doctor` says "
                    "how); its stamps may wait up to a few ms for other processes on a busy machine"
                )
            else:
                log.info("reader process (serial and hidraw dials) at %s", self.priority_text)

    @property
    def priority_text(self) -> str:
        """How the process is scheduled, in words."""
        return "normal priority" if self.realtime is None else f"real-time priority (SCHED_FIFO {self.realtime})"

    @property
    def pid(self) -> int | None:
        return None if self._ended else self._proc.pid

    def add(self, fd: int, describe: str, inbox: Inbox) -> ProcessPort:
        port = ProcessPort(self, self._next_id, describe, inbox)
        self._next_id += 1
        socket.send_fds(self._sock, [wire.item(wire.ADD, port.id)], [fd])
        self._ports[port.id] = port
        return port

    async def remove(self, port: ProcessPort) -> None:
        """Take `port` back. It stays in `_ports` until its REMOVED arrives, so the chunks the process
        read before it let go still reach its inbox (SerialTransport.close and HidTransport.close count
        what is left there)."""
        if self._ports.get(port.id) is not port or port.id in self._removing:
            return
        try:
            if not self._ended and port.reading:
                done = self._removing[port.id] = self._loop.create_future()
                try:
                    self._sock.sendall(wire.item(wire.REMOVE, port.id))
                except OSError:  # the process died: what it sent goes to the ports, each then told
                    self._died()
                else:
                    try:
                        await asyncio.wait_for(asyncio.shield(done), JOIN_TIMEOUT_S)
                    except TimeoutError:
                        log.warning(
                            "serial reader process did not let go of %s within %.0f s", port.describe, JOIN_TIMEOUT_S
                        )
                finally:
                    self._removing.pop(port.id, None)
        finally:
            self._ports.pop(port.id, None)
        if not self._ports and not self._ended:
            await self._shutdown()

    async def _shutdown(self, *, clean: bool = True) -> None:
        """The last port is gone: close our end (the process exits at its end of file) and join it.
        A port still waiting for its REMOVED is let go only then: the process held its descriptor.
        A clean shutdown (not a failed start) clears the count of quick deaths: the next start waits not."""
        self._end(let_go=False)
        if clean:
            ProcessHost._quick_deaths = 0
        try:
            await asyncio.to_thread(self._proc.wait, JOIN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("serial reader process %d did not stop within %.0f s: killed", self._proc.pid, JOIN_TIMEOUT_S)
            self._proc.kill()
            await asyncio.to_thread(self._proc.wait)
        finally:
            self._let_go()

    def _end(self, *, let_go: bool = True) -> None:
        if self._ended:
            return
        self._ended = True
        if ProcessHost._hosts.get(self._loop) is self:
            del ProcessHost._hosts[self._loop]
        with contextlib.suppress(Exception):  # the loop may be closing
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        if let_go:
            self._let_go()

    def _let_go(self) -> None:
        for done in self._removing.values():
            if not done.done():
                done.set_result(None)

    def _readable(self) -> None:
        try:
            data = self._sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._died()
            return
        self._take(data)

    def _take_the_rest(self) -> None:
        """The process is gone or going: hand over every round it sent that waits in our socket (up to
        its end of file), before the socket is closed. A send that failed (a port attached or removed
        a moment after the death) comes before the loop has read the end of file, and a busy loop may
        have left many rounds there: closing then would lose them all, uncounted."""
        while not self._ended:
            try:
                data = self._sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not data:
                return
            self._take(data)

    def _take(self, data: bytes) -> None:
        """Hand the items of `data` (after what was cut at the end of the last one) to their ports."""
        buffer = self._pending + data if self._pending else data  # bytes: one copy per payload slice
        size, unpack, ports = wire.HEADER.size, wire.HEADER.unpack_from, self._ports
        offset, end = 0, len(buffer)
        while end - offset >= size:
            kind, port_id, stamp, length = unpack(buffer, offset)
            start = offset + size
            stop = start + length
            if stop > end:
                break
            offset = stop
            port = ports.get(port_id)
            if kind == wire.CHUNK:
                if port is not None:
                    port.inbox.put(Chunk(buffer[start:stop], stamp))
                else:
                    self._orphan(port_id, length)
            elif kind == wire.GONE:
                if port is not None:
                    port.reading = False
                    why = buffer[start:stop].decode("utf-8", "replace")
                    port.inbox.put(DeviceGone(f"{port.describe}: {why}"))
            elif kind == wire.REMOVED:
                done = self._removing.get(port_id)
                if done is not None and not done.done():
                    done.set_result(None)
        self._pending = buffer[offset:] if offset < end else b""  # a cut item waits for its end

    def _orphan(self, port_id: int, size: int) -> None:
        """A chunk of a port already let go (its REMOVED did not come within JOIN_TIMEOUT_S): counted
        and said, the first time and every 1000th (health cannot carry it: the port's dial moved on)."""
        self.orphaned += 1
        self.orphaned_bytes += size
        if self.orphaned % 1000 == 1:
            log.warning(
                "%d chunks (%d bytes) read by the reader process for a port already let go (id %d) were "
                "dropped: it did not let go of the port in time",
                self.orphaned,
                self.orphaned_bytes,
                port_id,
            )

    def _died(self) -> None:
        """End of file while ports are attached, or a send that failed: the process died. What it sent
        is handed over first (`_take_the_rest`); then every port it read ends with ReaderDied."""
        if self._ended:
            return
        self._take_the_rest()
        self._end()
        lived = time.monotonic() - self._started
        ProcessHost._quick_deaths = ProcessHost._quick_deaths + 1 if lived < QUICK_DEATH_S else 0
        code = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = self._proc.wait(0.2)  # its end of file came as it exited: a zombie in a moment
        how = _exit_text(code)
        log.warning(
            "serial reader process %d %s after %.1f s: starting another; what it had read and not sent yet "
            "(its last round, if any) is lost and cannot be counted, for %s",
            self._proc.pid,
            how,
            lived,
            ", ".join(p.describe for p in self._ports.values()) or "no port",
        )
        for port in self._ports.values():
            port.reading = False
            port.inbox.put(
                ReaderDied(
                    f"{port.describe}: the {reader_name(port.describe)} {how}; reading on in a new one (what it had"
                    " read and not sent yet, its last round, if any, is lost and cannot be counted)"
                )
            )
        if code is None:  # still not reaped: do it off the loop
            self._loop.run_in_executor(None, self._proc.wait)


def reader_name(describe: str) -> str:
    """How a port's messages name the process: 'serial reader process' for a serial port (as the logs
    always did), 'reader process' for the others (a HID dial's hidraw node)."""
    return "serial reader process" if describe.startswith("serial:") else "reader process"


def _exit_text(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"
