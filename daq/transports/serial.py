"""The serial transport. The daemon opens and sets up each port (pyserial); `[station] readers` says
where it is read and stamped: "process" (default on Linux, macOS) hands its descriptor to the serial
reader process (daq.transports.reader_host), whose stamps never wait for the daemon's GIL (64 x 100 Hz:
thread stamps 25-39 ms late at p99); "thread" (always on Windows) reads it here, on POSIX in one
shared poller thread (`_Hub`, ended with the last port), else a thread per port. A reader process
that dies ends the port with ReaderDied; `close()` then keeps the port open (parked) and the next
`open()` reads on in a new process: not set up again, nothing in the tty's buffer dropped (if no process
starts, DeviceUnavailable: still parked). Both ways put the chunks in the port's Inbox (daq.transports.
inbox), taken with `read()` or `deliver_to(sink)` (the DeviceReader's: each chunk goes to its
decoding from the callback that received it, no task woken per read). Chunks read but not handed
over at `close()`: `read_at_close`, logged.

The thread path: one poller thread reads with os.read(fd, 4096) (not pyserial's read(max(1,
in_waiting)), which reads the first byte of every burst alone) and hands each poll round to the loop
with call_soon_threadsafe; an error is queued behind the chunks read before it, so `read()` hands
those over first and then raises DeviceGone. Off POSIX a thread per port uses pyserial's read with
the profile's read timeout. Why threads and not pyserial-asyncio-fast (it stamps when the loop gets
round to the fd, so every loop stall goes into the reading's time), with the measurements:
benchmarks/README.md, "Serial readers".
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import select
import threading
import time
from typing import TYPE_CHECKING, NoReturn

import serial

from daq.exceptions import DeviceGone, DeviceUnavailable
from daq.profiles.serial_settings import SerialSettings
from daq.reading import Chunk
from daq.transports.attachment import Attachment
from daq.transports.inbox import Inbox, Sink, taking_from
from daq.transports.ports import resolve_port
from daq.transports.reader_host import (
    ProcessHost,
    ProcessPort,
    ReaderDied,
    ReadersMode,
    ReaderUnavailable,
    current_mode,
    current_priority,
    resolve_mode,
)

if TYPE_CHECKING:
    from daq.profiles.model import Profile

log = logging.getLogger(__name__)

READ_SIZE = 4096
WRITE_TIMEOUT_S = 2.0
JOIN_TIMEOUT_S = 5.0
USE_POLL = os.name == "posix"  # else pyserial's read() in the thread (Windows)

PARITY = {
    "none": serial.PARITY_NONE,
    "even": serial.PARITY_EVEN,
    "odd": serial.PARITY_ODD,
    "mark": serial.PARITY_MARK,
    "space": serial.PARITY_SPACE,
}
STOPBITS = {1: serial.STOPBITS_ONE, 1.5: serial.STOPBITS_ONE_POINT_FIVE, 2: serial.STOPBITS_TWO}

NOT_PRESENT = {errno.ENOENT, errno.ENODEV, errno.ENXIO}
NO_PERMISSION = {errno.EACCES, errno.EPERM}
IN_USE = {errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK}  # EAGAIN: our flock() is held elsewhere

_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[nrt0\\])")
_SIMPLE_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"0": b"\0", b"\\": b"\\"}

_Item = Chunk | DeviceGone


def decode_escapes(text: str) -> bytes:
    r"""'start\r\n' -> b'start\r\n': \n \r \t \0 \\ and \xNN become bytes; other text is UTF-8."""

    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code.startswith(b"x"):
            return bytes([int(code[1:], 16)])
        return _SIMPLE_ESCAPES[code]

    return _ESCAPE.sub(one, text.encode("utf-8"))


class SerialTransport:
    """A serial dial: opened exclusively, read in the reader process or a thread, every chunk stamped there.

    Reusable: after `close()` (or DeviceGone) `open()` resolves the port again and reopens.
    Not for concurrent use by several tasks.
    """

    def __init__(self, settings: SerialSettings, attachment: Attachment, readers: ReadersMode | None = None) -> None:
        self.settings = settings
        self.attachment = attachment
        self.readers: ReadersMode = current_mode() if readers is None else resolve_mode(readers)
        """Where the port is read: "process" (daq.transports.reader_host) or "thread" (this module)."""
        self.reader_priority = current_priority()  # how a reader process started for it is scheduled
        self._serial: serial.Serial | None = None
        self._reader: _Reader | ProcessPort | None = None
        self._inbox: Inbox | None = None  # None while closed
        self._last: Inbox | None = None  # the closed one: read() raises the end it raised, if any
        self._parked: serial.Serial | None = None  # kept open across the death of its reader process
        self.read_at_close = 0  # chunks read from the port but not handed over by read() when it was closed

    @property
    def describe(self) -> str:
        """'serial:/dev/ttyACM0' (the port as configured) or 'serial:usb=2341:0043, ...'."""
        return f"serial:{self.attachment.port or self.attachment.describe()}"

    @property
    def device(self) -> str | None:
        """The device path open now (symlinks resolved), None when closed."""
        return None if self._serial is None else str(self._serial.port)

    async def open(self) -> None:
        """Find the port, open it, wait settle_s, drop what arrived, send `init`, start reading.

        Raises DeviceUnavailable: not present, no permission (with the fix), in use.
        """
        if self._serial is not None:
            raise RuntimeError(f"{self.describe} is open already")
        parked, self._parked = self._parked, None
        inbox = Inbox()
        if parked is not None:  # its reader process died: read on, not set up again, nothing dropped
            try:
                self._reader = await self._start_reading(parked, inbox)
            except DeviceUnavailable:  # no reader process this time: parked still, for the next try
                self._parked = parked
                raise
            except BaseException:
                parked.close()
                raise
            self._serial, self._inbox, self._last = parked, inbox, None
            log.info("reading %s at %s again", self.describe, parked.port)
            return
        path = await asyncio.to_thread(resolve_port, self.attachment)
        port = await asyncio.to_thread(self._open_port, path)
        try:
            if self.settings.settle_s > 0:
                await asyncio.sleep(self.settings.settle_s)
            await asyncio.to_thread(self._prepare, port, path)
            self._reader = await self._start_reading(port, inbox)
        except BaseException:
            port.close()
            raise
        self._serial, self._inbox, self._last = port, inbox, None
        log.info("opened %s at %s", self.describe, port.port)

    async def _start_reading(self, port: serial.Serial, inbox: Inbox) -> _Reader | ProcessPort:
        if self.readers == "process" and USE_POLL:
            try:
                return await ProcessHost.attach(port.fileno(), self.describe, inbox, self.reader_priority)
            except ReaderUnavailable as exc:  # no process can be started here: read in the daemon
                log.warning("cannot start the serial reader process (%s): reading in a thread instead", exc)
                self.readers = "thread"
        return _Reader(port, self.describe, self.settings.read_timeout_s, inbox)

    @property
    def bytes_waiting(self) -> int:
        """Bytes read from the port and not handed over yet (0 while closed)."""
        return 0 if self._inbox is None else self._inbox.waiting_bytes

    async def read(self) -> list[Chunk]:
        """The chunks read since the last call (waiting for at least one).

        Raises DeviceGone once every chunk read before the device went away was handed over.
        """
        return await self._open_inbox().read()

    async def deliver_to(self, sink: Sink) -> NoReturn:
        """Hand every chunk to `sink` as it arrives, from the event loop's callback that received it
        (no task woken per read: daq.transports.inbox), until the device is gone: then raise
        DeviceGone, as `read()` would, once every chunk read before was handed over."""
        await self._open_inbox().deliver_to(sink)

    def _open_inbox(self) -> Inbox:
        return taking_from(self._inbox, self._last, self.describe)

    async def close(self) -> None:
        """Stop reading (the thread joined, or the reader process let go of the port) and close the
        port. Idempotent. After ReaderDied the port stays open for the next `open()` (parked)."""
        port, reader, inbox = self._serial, self._reader, self._inbox
        self._serial = self._reader = self._inbox = None
        if port is not None and inbox is not None and isinstance(inbox.raised, ReaderDied):
            self._parked, port = port, None
        try:
            if reader is not None:
                await reader.stop()
        finally:
            if port is not None:
                port.close()
            if inbox is not None:
                self.read_at_close += inbox.end(self.describe)  # counts what is left, wakes a read()
                self._last = inbox

    @property
    def reader_pid(self) -> int | None:
        """The pid of the process reading this port (None: read in a thread, or closed)."""
        return self._reader.pid if isinstance(self._reader, ProcessPort) else None

    def _open_port(self, path: str) -> serial.Serial:
        real = os.path.realpath(path)
        shown = path if real == path else f"{path} (-> {real})"
        if not os.path.exists(real):
            raise DeviceUnavailable(
                f"serial port {shown} not present: is the dial plugged in? `daq devices` lists what is attached"
            )
        s = self.settings
        port = serial.Serial()
        port.port = real
        port.baudrate = s.baud
        port.bytesize = s.bytesize
        port.parity = PARITY[s.parity]
        port.stopbits = STOPBITS[s.stopbits]
        port.timeout = s.read_timeout_s
        port.write_timeout = WRITE_TIMEOUT_S
        if os.name == "posix":
            port.exclusive = True
        # Set before open(): pyserial applies them while opening and ignores a port without
        # modem lines (a pty); set after, they would raise there.
        if s.dtr is not None:
            port.dtr = s.dtr
        if s.rts is not None:
            port.rts = s.rts
        try:
            port.open()
        except (serial.SerialException, OSError) as exc:
            raise _open_error(shown, exc) from exc
        return port

    def _prepare(self, port: serial.Serial, path: str) -> None:
        # Drop what arrived while the board rebooted: a banner, a cut line.
        port.reset_input_buffer()
        if self.settings.init:
            try:
                port.write(decode_escapes(self.settings.init))
                port.flush()
            except (serial.SerialException, OSError) as exc:
                raise DeviceUnavailable(f"{path}: could not send the init string: {exc}") from exc


class _Hub:
    """One thread that polls every open port (POSIX), reads it, stamps the chunk right after the read
    returned, and hands everything one poll round read to the event loop in one call_soon_threadsafe.

    Why not a thread per port: with 16 ports written at the same moment, 16 threads and the loop
    thread contend for the GIL, and a thread stamps only once it holds it (a convoy: the last one
    waits for all the others and for the loop's switch intervals). One thread contends with the loop
    only, and one wake-up of the loop carries all the chunks of a round.

    Lives while a port is open: the first `attach` starts the thread, the `detach` of the last port
    ends it (and the next `attach` starts a new one), so no thread outlives the ports it reads.
    """

    _instance: _Hub | None = None
    _lock = threading.Lock()  # guards _instance and every hub's _attached

    @classmethod
    def attach(cls, reader: _Reader) -> _Hub:
        """The running hub (started if none), now reading `reader`."""
        with cls._lock:
            hub = cls._instance
            if hub is None or not hub._thread.is_alive():
                hub = cls._instance = cls()
            hub._attached += 1
            hub._op("add", reader)
            return hub

    def detach(self, reader: _Reader) -> bool:
        """Stop reading `reader` (its `stopped` is set once done). True if it was the last port:
        the thread then ends after handling this; `join` waits for that."""
        with _Hub._lock:
            self._attached -= 1
            last = self._attached == 0
            if last and _Hub._instance is self:
                _Hub._instance = None
            if self._thread.is_alive():
                self._op("remove", reader, last=last)
            else:  # the thread died (it logged why): nothing reads this port any more
                reader.stopped.set()
        return last

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end; False if it still runs after timeout_s."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def __init__(self) -> None:
        self._poller = select.poll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._poller.register(self._wake_r, select.POLLIN)
        self._ports: dict[int, _Reader] = {}
        self._ops: list[tuple[str, _Reader]] = []
        self._ops_lock = threading.Lock()
        self._attached = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="serial readers", daemon=True)
        self._thread.start()

    def _op(self, op: str, reader: _Reader, *, last: bool = False) -> None:
        # The wake byte is written under the lock: the thread takes the ops under it too, so it cannot
        # take the last port's remove (and close the pipe) before that byte is written.
        with self._ops_lock:
            self._ops.append((op, reader))
            self._closing = self._closing or last
            os.write(self._wake_w, b"x")

    def _apply_ops(self) -> bool:
        """Apply the queued adds and removes; True when the last port is gone and the thread must end."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        with self._ops_lock:
            ops, self._ops = self._ops, []
            closing = self._closing
        for op, reader in ops:
            if op == "add":
                self._ports[reader.fd] = reader
                self._poller.register(reader.fd, select.POLLIN | select.POLLPRI)
            elif self._ports.get(reader.fd) is reader:
                del self._ports[reader.fd]
                self._poller.unregister(reader.fd)
            if op == "remove":
                reader.stopped.set()
        return closing

    def _run(self) -> None:
        self._poll_until_closed()
        # Only once the last port is detached: nobody writes to the wake pipe any more.
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _poll_until_closed(self) -> None:
        poll, ports, wake_r = self._poller.poll, self._ports, self._wake_r
        monotonic_ns = time.monotonic_ns
        while True:
            ready = poll()
            rounds: dict[asyncio.AbstractEventLoop, list[tuple[Inbox, _Item]]] = {}
            for fd, _ in ready:
                if fd == wake_r:
                    continue
                reader = ports.get(fd)
                if reader is None:
                    continue
                item: _Item
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    item = DeviceGone(f"{reader.describe}: read failed: {exc} (unplugged?)")
                else:
                    mono_ns = monotonic_ns()
                    if data:
                        item = Chunk(data, mono_ns)
                    else:
                        # A hung-up tty (USB unplugged, pty master closed) polls readable and reads 0 bytes.
                        item = DeviceGone(f"{reader.describe}: device reports data but gives none: unplugged")
                if isinstance(item, DeviceGone):
                    del ports[fd]
                    self._poller.unregister(fd)
                rounds.setdefault(reader.loop, []).append((reader.inbox, item))
            # Delivered before the ops are applied: a removed port's `stopped` is set only after its last
            # chunks are on their way to the loop, so they reach its inbox before its close() goes on.
            for loop, items in rounds.items():
                with contextlib.suppress(RuntimeError):  # that event loop is closed: nobody is left to read
                    loop.call_soon_threadsafe(_deliver, items)
            closing = any(fd == wake_r for fd, _ in ready) and self._apply_ops()
            if closing:
                return


def _deliver(items: list[tuple[Inbox, _Item]]) -> None:
    for inbox, item in items:
        inbox.put(item)


class _Reader:
    """Reads one open port: on POSIX through the shared _Hub thread, else in a thread of its own."""

    def __init__(self, port: serial.Serial, describe: str, timeout_s: float, inbox: Inbox) -> None:
        self._port = port
        self.describe = describe
        self._timeout_s = timeout_s
        self.loop = asyncio.get_running_loop()
        self.inbox = inbox
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None
        if USE_POLL:
            self.fd = port.fileno()
            self._hub: _Hub | None = _Hub.attach(self)
        else:
            self._hub = None
            self._thread = threading.Thread(target=self._run, name=f"reader {describe}", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        hub, self._hub = self._hub, None
        if hub is not None:
            if hub.detach(self):  # the last port: the poller thread ends, joined here
                if not await asyncio.to_thread(hub.join, JOIN_TIMEOUT_S):
                    log.warning("serial poller thread did not stop within %.0f s", JOIN_TIMEOUT_S)
            else:
                await asyncio.to_thread(self.stopped.wait, JOIN_TIMEOUT_S)
            return
        if self._thread is None:  # stopped already
            return
        self.stopped.set()
        self._port.cancel_read()
        await asyncio.to_thread(self._thread.join, JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("%s: reader thread did not stop within %.0f s", self.describe, JOIN_TIMEOUT_S)

    def _put(self, item: _Item) -> None:
        self.loop.call_soon_threadsafe(self.inbox.put, item)

    def _run(self) -> None:
        try:
            try:
                while not self.stopped.is_set():
                    data = self._port.read(max(1, self._port.in_waiting))
                    mono_ns = time.monotonic_ns()
                    if data:
                        self._put(Chunk(data, mono_ns))
            except (serial.SerialException, OSError) as exc:
                if not self.stopped.is_set():
                    self._put(DeviceGone(f"{self.describe}: read failed: {exc} (unplugged?)"))
        except RuntimeError:  # the event loop is closed: nobody is left to read
            pass


def _open_error(shown: str, exc: BaseException) -> DeviceUnavailable:
    code = getattr(exc, "errno", None)
    if code in NOT_PRESENT:
        return DeviceUnavailable(f"serial port {shown} not present: is the dial plugged in?")
    if code in NO_PERMISSION:
        return DeviceUnavailable(
            f"no permission to open {shown}: add yourself to the dialout group "
            "or install the udev rules: see `daq doctor`"
        )
    if code in IN_USE:
        return DeviceUnavailable(
            f"serial port {shown} is in use by another program (a serial monitor, another daq, "
            "or ModemManager probing it: the udev rules, `daq devices --udev-rules`, tell it to keep away)"
        )
    return DeviceUnavailable(f"cannot open serial port {shown}: {exc}")


def open_serial(profile: Profile, attachment: Attachment) -> SerialTransport:
    """The serial transport of `profile` (its registry entry's `open`, daq.transports.registry), read
    where `daq.transports.reader_host.readers_mode` says (the station's `[station] readers`)."""
    return SerialTransport(profile.serial or SerialSettings(), attachment)
