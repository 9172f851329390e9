"""The reader process: polls the ports the daemon hands it (serial ports, and HID dials' hidraw
nodes), reads them, stamps every read, and sends the daemon each poll round's reads in one
message; and the wire format between them.

Why a process (issue 15): a reader thread in the daemon stamps only once it holds the interpreter
lock, which decoding and publishing hold most of the time at 64 dials x 100 Hz (stamps 25-39 ms
late at p99 on a 2-core VM). This process has an interpreter of its own that does nothing else,
so a read's stamp waits for nothing but the kernel's scheduler.

The daemon (daq.transports.reader_host) starts it as `python -I -S <this file> FD`: a script, not
`-m daq...`, so it imports no part of dialdaq (nor pydantic, nor pyserial): the standard library
only, started in ~20 ms. FD is its end of a Unix stream socketpair, both ways:

- daemon -> reader: ADD (port id, the port's file descriptor passed with SCM_RIGHTS: the daemon
  opened and set up the port itself, with pyserial or os.open, non-blocking, and keeps its own
  descriptor open), REMOVE
  (port id; answered with REMOVED once the reader's descriptor is closed, so the daemon can close
  and reopen the port, whose exclusive lock lives as long as either descriptor). End of file: the
  daemon closed its end or died; the reader exits.
- reader -> daemon: CHUNK (port id, stamp, bytes), GONE (port id, why: the read failed or the tty
  hung up; the reader dropped the port), REMOVED (port id). All the items of one poll round go in
  one send: one wake-up of the daemon's event loop per round, however many ports had data.

Every item is a fixed header `<BIqI` (kind, port id, stamp or 0, payload length) and the payload.
Each read is one CHUNK item of its own, never joined to another: a hidraw node's read(2) returns
exactly one input report, so a HID dial's report reaches the daemon as one chunk, byte for byte
(its report-id byte kept); a read error (a hidraw node gives EIO or ENODEV once unplugged) or a
read of 0 bytes (a hung-up tty) is GONE, behind the chunks read before it.

Stamps are time.monotonic_ns() taken right after os.read() returned. CLOCK_MONOTONIC is one
system-wide clock on Linux and macOS, so the daemon compares them with its own monotonic_ns() as
if it had taken them itself. The ports are polled with edge-triggered epoll on Linux (see
_Poller: a level-triggered one made the reader wait for the kernel's tty worker), else poll() or
select(); a ready port is read until it is empty, one stamp per read.

Nothing read is lost when this process dies: what it sent before is in the socket; what it had not
read is still in the kernel's tty buffer (a hidraw node's report queue), behind the daemon's
descriptor, which stays open, for the next reader process to read. Only a read whose round had
not been sent yet is lost with it.

SIGINT and SIGTERM are ignored: a Ctrl-C or a service stop reaches the whole process group, and
this process ends when the daemon closes its end of the socket (or dies), never before it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import sys
import time

# Item kinds. Daemon -> reader:
ADD = 1  # port id; its fd in SCM_RIGHTS with the same send
REMOVE = 2  # port id
# Reader -> daemon:
CHUNK = 10  # port id, stamp, the bytes read
GONE = 11  # port id, payload: why (UTF-8)
REMOVED = 12  # port id

HEADER = struct.Struct("<BIqI")  # kind, port id, stamp (ns) or 0, payload length
READ_SIZE = 4096
MAX_READS = 64  # reads of one port in one round before the others get their turn
_HANGUP = select.POLLHUP | select.POLLERR  # the same bits as EPOLLHUP | EPOLLERR
RECV_SIZE = 65536
MAX_FDS = 64  # per recvmsg: one ADD a send, so one fd a message in practice
SOCKET_BUFFER = 4 * 1024 * 1024  # asked for; the kernel may give less


def item(kind: int, port: int, stamp: int = 0, payload: bytes = b"") -> bytes:
    """One item on the wire."""
    return HEADER.pack(kind, port, stamp, len(payload)) + payload


def parse(buffer: bytearray) -> tuple[list[tuple[int, int, int, bytes]], int]:
    """The whole items at the start of `buffer` as (kind, port, stamp, payload), and how many bytes they took."""
    items = []
    size = HEADER.size
    unpack = HEADER.unpack_from
    view = memoryview(buffer)
    offset, end = 0, len(buffer)
    try:
        while end - offset >= size:
            kind, port, stamp, length = unpack(view, offset)
            stop = offset + size + length
            if stop > end:
                break
            items.append((kind, port, stamp, bytes(view[offset + size : stop])))
            offset = stop
    finally:
        view.release()
    return items, offset


class _Poller:
    """epoll where there is one (Linux), edge-triggered; poll() elsewhere but macOS; select() on
    macOS, whose poll() reports ttys invalid.

    Why epoll: registered once, each wait costs the kernel the ready ports only, where poll() walks
    every port's wait queue on every call (65 of them at 64 dials).

    Why edge-triggered: a level-triggered epoll polls again, at the next wait, every port it
    reported in the last one, and a tty polled with nothing to read waits (uninterruptibly) for the
    kernel's tty worker to finish pushing that port's bytes (n_tty_poll -> tty_buffer_flush_work).
    That worker is what woke this process, and this process, real-time, preempted it mid-push; so
    the reader slept until the worker got a CPU again, behind every normal task (the daemon, the
    broker, the writer of the next ports), and every port's stamp of that round with it: ~0.8 ms
    in 3 ticks in 100 at 64 dials x 100 Hz on the 2-core VM (perf sched trace, 2026-12-02). An
    edge-triggered port is polled only when new bytes or a hang-up woke it, so the reader reads
    it then until it is empty (`Reader._drain`) and never polls an empty tty."""

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._poll = select.poll() if self._epoll is None and sys.platform != "darwin" else None
        self._fds: set[int] = set()

    def add(self, fd: int, *, edge: bool = True) -> None:
        """Watch `fd`; `edge`: edge-triggered where epoll is (the ports), else level (the control socket)."""
        self._fds.add(fd)
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN | select.EPOLLPRI | (select.EPOLLET if edge else 0))
        elif self._poll is not None:
            self._poll.register(fd, select.POLLIN | select.POLLPRI)

    def remove(self, fd: int) -> None:
        self._fds.discard(fd)
        if self._epoll is not None:
            self._epoll.unregister(fd)
        elif self._poll is not None:
            self._poll.unregister(fd)

    @property
    def tells_hangup(self) -> bool:
        """Whether `wait` reports a hang-up (POLLHUP, POLLERR) with a descriptor's events: select() does not."""
        return self._epoll is not None or self._poll is not None

    def wait(self, timeout: float = -1) -> list[tuple[int, int]]:
        """(fd, events) of the ready descriptors, waiting for one up to `timeout` s (-1: no limit)."""
        if self._epoll is not None:
            return self._epoll.poll(timeout, len(self._fds))
        if self._poll is not None:
            return self._poll.poll(None if timeout < 0 else timeout * 1000)
        ready, _, _ = select.select(list(self._fds), [], [], None if timeout < 0 else timeout)
        return [(fd, 0) for fd in ready]


class Reader:
    """The loop: poll the control socket and every port, read, stamp, send the round."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.poller = _Poller()
        self.poller.add(control.fileno(), edge=False)
        self.ports: dict[int, int] = {}  # fd -> port id
        self.fd_of: dict[int, int] = {}  # port id -> fd
        self.ttys: set[int] = set()  # the fds that are ttys (serial ports), not hidraw nodes
        self.unfinished: list[int] = []  # ports _drain left with bytes (MAX_READS reached)
        self.hung: set[int] = set()  # ttys the poller reported hung up (their reads of 0 bytes mean gone)
        self.commands = bytearray()
        self.fds: list[int] = []  # received, not yet claimed by their ADD

    def run(self) -> None:
        control_fd = self.control.fileno()
        wait, ports, drain = self.poller.wait, self.ports, self._drain
        send = self.control.sendall
        out = bytearray()
        while True:
            commanded = False
            unfinished = self.unfinished
            ready = wait(0 if unfinished else -1)
            if unfinished:  # ports left with bytes by the last round's read limit come first, once
                self.unfinished = []
                events = dict(ready)  # a port's events (a hang-up) go with it, first
                ready = [(fd, events.pop(fd, 0)) for fd in unfinished] + list(events.items())
            for fd, ev in ready:
                if fd == control_fd:
                    commanded = True
                elif fd in ports:
                    drain(fd, out, ev)
            if commanded and not self._commands(out):
                if out:
                    send(out)
                return
            if out:
                send(out)
                out.clear()

    def _drain(self, fd: int, out: bytearray, events: int = 0) -> None:
        """Read the ready port `fd` until it is empty, each read a CHUNK stamped as it returned: a tty
        until a read that does not fill READ_SIZE (its n_tty buffer is empty then: another read would
        wait for the kernel's tty worker, as a poll would; see _Poller), a hidraw node (one report a
        read) until EAGAIN. At most MAX_READS reads, then the port goes to `unfinished`, read on first
        in the next round (an edge-triggered port would not be reported again until new bytes came).

        A read of 0 bytes from a tty is its end only when the poller said it hung up (`events`, kept
        in `hung`), or, where it cannot say (select), on the first read: a serial port set up with
        VMIN = 0 (pyserial's) reads 0 bytes, not EAGAIN, when it has nothing, and an edge-triggered
        wake-up can come for bytes an earlier read of the same round took already (a loaded machine:
        ports said unplugged mid-stream). A hidraw node says EAGAIN; its 0 bytes are its end."""
        port, tty = self.ports[fd], fd in self.ttys
        if events & _HANGUP:
            self.hung.add(fd)
        read, monotonic_ns, pack, size = os.read, time.monotonic_ns, HEADER.pack, READ_SIZE
        for attempt in range(MAX_READS):
            try:
                data = read(fd, size)
            except BlockingIOError:
                return
            except OSError as exc:
                out += item(GONE, port, 0, f"read failed: {exc} (unplugged?)".encode())
                self._drop(port)
                return
            stamp = monotonic_ns()
            if not data:  # a hung-up tty (USB unplugged, pty master closed) polls readable and reads 0 bytes
                if tty and fd not in self.hung and (self.poller.tells_hangup or attempt > 0):
                    return  # nothing to read now (VMIN = 0), not a hang-up
                out += item(GONE, port, 0, b"device reports data but gives none: unplugged")
                self._drop(port)
                return
            out += pack(CHUNK, port, stamp, len(data))
            out += data
            if tty and len(data) < size:
                return
        self.unfinished.append(fd)

    def _commands(self, out: bytearray) -> bool:
        """Apply what the daemon sent; False at end of file (the daemon is gone or done)."""
        try:
            data, fds, _, _ = socket.recv_fds(self.control, RECV_SIZE, MAX_FDS)
        except BlockingIOError:
            return True
        except OSError:
            return False
        self.fds += fds
        if not data:
            return False
        self.commands += data
        items, used = parse(self.commands)
        del self.commands[:used]
        for kind, port, _, _ in items:
            if kind == ADD:
                fd = self.fds.pop(0)
                self.ports[fd] = port
                self.fd_of[port] = fd
                if os.isatty(fd):
                    self.ttys.add(fd)
                self.poller.add(fd)
            elif kind == REMOVE:
                self._drop(port)
                out += item(REMOVED, port)
        return True

    def _drop(self, port: int) -> None:
        fd = self.fd_of.pop(port, None)
        if fd is not None:
            del self.ports[fd]
            self.ttys.discard(fd)
            self.hung.discard(fd)
            if fd in self.unfinished:
                self.unfinished.remove(fd)
            self.poller.remove(fd)
            os.close(fd)


# sched_setattr(2) and sched_getattr(2) by machine: Linux's libc has no wrapper for them.
_SCHED_ATTR_CALLS = {
    "x86_64": (314, 315),
    "aarch64": (274, 275),
    "riscv64": (274, 275),
    "armv7l": (380, 381),
    "armv6l": (380, 381),
    "ppc64le": (355, 356),
}
SLICE_NS = 100_000  # the shortest slice the kernel takes (0.1 ms; its default is 0.75-3 ms)
_SCHED_ATTR = struct.Struct("=IIQiIQQQ")  # struct sched_attr, first version (48 bytes): size .. period
_FAIR_POLICIES = (0, 3)  # SCHED_OTHER, SCHED_BATCH


def short_slice() -> bool:
    """Ask the scheduler for the shortest time slice: Linux 6.12+ (EEVDF) takes sched_attr.sched_runtime
    of a SCHED_OTHER task as its slice, without privileges. A waking task with a shorter slice has an
    earlier deadline, so it preempts a busy one (the daemon decoding, the broker) at once instead of
    waiting for that one's slice to end: a poll round's reads, and their stamps, wait less. Its share
    of the CPU is unchanged (nice and policy are kept). Older kernels ignore the field; other systems
    are left alone. True if the kernel took it."""
    calls = _SCHED_ATTR_CALLS.get(os.uname().machine) if sys.platform == "linux" else None
    if calls is None:
        return False
    setattr_call, getattr_call = calls
    try:
        import ctypes

        syscall = ctypes.CDLL(None, use_errno=True).syscall
        attr = ctypes.create_string_buffer(_SCHED_ATTR.size)
        if syscall(getattr_call, 0, attr, _SCHED_ATTR.size, 0) != 0:
            return False
        _, policy, _, nice, priority, _, _, _ = _SCHED_ATTR.unpack(attr.raw)
        if policy not in _FAIR_POLICIES:  # real-time, deadline or idle: whoever set that knows better
            return False
        attr = ctypes.create_string_buffer(
            _SCHED_ATTR.pack(_SCHED_ATTR.size, policy, 0, nice, priority, SLICE_NS, 0, 0), _SCHED_ATTR.size
        )
        return bool(syscall(setattr_call, 0, attr, 0) == 0)
    except (OSError, AttributeError, ImportError):
        return False


RT_PRIORITY = 10  # SCHED_FIFO priority asked for: above every normal task, below audio servers (PipeWire, JACK: 70-88)


def realtime(pid: int = 0) -> int | None:
    """Run process `pid` (0: this one) under SCHED_FIFO, so it preempts every normal task the moment
    a port has data: a read's stamp waits for no other process (the daemon decoding, the broker).
    Linux lets root or CAP_SYS_NICE do this, and anyone up to their RLIMIT_RTPRIO (`ulimit -r`; e.g.
    `@audio - rtprio 20` in /etc/security/limits.conf). It asks RT_PRIORITY, or the limit when that
    is lower. Safe for the machine: the reader blocks in poll between reads and in send when the
    daemon is slow, and Linux keeps 5% of each second for normal tasks whatever runs real-time.
    The priority taken, or None: not permitted, or no SCHED_FIFO here (macOS, Windows)."""
    if not hasattr(os, "sched_setscheduler") or not hasattr(os, "SCHED_FIFO"):
        return None
    wanted = [RT_PRIORITY]
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
        if 0 < limit < RT_PRIORITY:
            wanted.append(int(limit))
    except (ImportError, AttributeError, OSError, ValueError):
        pass
    for priority in wanted:
        try:
            os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(priority))
        except OSError:  # PermissionError without the right, ProcessLookupError once it ended
            continue
        return priority
    return None


def main(argv: list[str]) -> int:
    short_slice()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    control = socket.socket(fileno=int(argv[1]))
    control.setblocking(True)
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):
            control.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the daemon went away mid-send
        Reader(control).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
