"""The HID transport: on Linux's hidraw backend, the node read and stamped in the reader process;
else hidapi's blocking read(size, timeout_ms) in one thread per device.

Which way (`readers`, from `[station] readers` through daq.transports.reader_host.current_mode()
when the transport is made, as for serial ports): "process" (the default where a reader process
can run) with the hidraw backend has the daemon open the device's /dev/hidrawN itself and hand
its descriptor to the reader process (daq.transports.hid_node), which reads one report per read,
stamps it right after the read and sends it to the daemon: the stamp never waits for the daemon's
interpreter lock. A reader process that dies ends the port with ReaderDied; `close()` then keeps
the node open (parked) and the next `open()` reads on in a new process, so the reports waiting in
the kernel's queue for that node are not lost. A process that cannot be started at all
(ReaderUnavailable) makes the transport read in the hidapi thread from then on.

The thread (the libusb backend, macOS, Windows, `readers = "thread"`): hidapi has no file
descriptor to hand to the event loop on every platform, and it is not thread-safe, so every call
for one device (open, read, close) is made from that device's own thread, and enumerate and open
run under one module lock (daq.transports.hid_enum.HIDAPI_LOCK). The thread stamps
time.monotonic_ns() as soon as read() returns a report (once it holds the interpreter lock again)
and hands the chunk (one report) to the loop with call_soon_threadsafe. read() returning [] is
its timeout: the thread checks whether it was asked to stop and reads again, so stopping takes
at most one timeout.

Either way each report reaches the device's Inbox (daq.transports.inbox) as one Chunk, taken
with `read()` or `deliver_to(sink)`; reports read but not handed over at `close()` are counted in
`read_at_close` and logged. An unplug (a read error, or a node's end of file) is DeviceGone, after
the reports read before it; the next open() enumerates again (through hidapi,
daq.transports.hid_enum) and finds the device wherever it came back.

Which device: the station's `port` (a hidapi path: /dev/hidrawN, or libusb's '1-1.2:1.0',
optionally prefixed 'hidraw:' or 'libusb:' to choose the backend), else the `usb` id (or,
without one, the profile's [match] ids and product strings) narrowed by `serial_number` and
`location`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

from daq.exceptions import DeviceGone, DeviceUnavailable, FatalError
from daq.profiles.model_framings import ReportFraming
from daq.reading import Chunk
from daq.transports import hid_enum, hid_node
from daq.transports.attachment import Attachment, usb_id
from daq.transports.hid_enum import (
    HIDAPI_LOCK,
    HidInfo,
    Requested,
    find_hid,
    load_backend,
    resolve_backend,
    usb_devices,
)
from daq.transports.hid_node import NodeReading
from daq.transports.inbox import Inbox, Sink, taking_from
from daq.transports.reader_host import (
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

READ_SIZE = 256  # longer than any dial's input report; hidapi returns the report's own length
READ_TIMEOUT_MS = 100  # how long stop() may wait for the thread
JOIN_TIMEOUT_S = 5.0


class HidTransport:
    """A HID dial read through hidapi, or its hidraw node read by the reader process. Reusable:
    after close() (or DeviceGone) open() finds it again."""

    def __init__(
        self,
        attachment: Attachment,
        *,
        backend: Requested = "auto",
        ids: Collection[tuple[int, int]] = (),
        products: Collection[str] = (),
        needed_by: str = "a HID profile",
        read_size: int = READ_SIZE,
        timeout_ms: int = READ_TIMEOUT_MS,
        readers: ReadersMode | None = None,
    ) -> None:
        self.attachment = attachment
        self.backend, self._port = resolve_backend(backend, attachment.port)
        self._ids = frozenset(ids)
        self._products = tuple(products)
        if self._port is None and attachment.vid_pid is None and not self._ids:
            raise FatalError(
                f"{needed_by} has no [match] usb ids, so the dial needs `port` (e.g. /dev/hidraw0) or "
                "`usb` = 'VID:PID' in the station config: `daq devices` shows them"
            )
        try:
            self._module: ModuleType = load_backend(self.backend)
        except (ImportError, OSError) as exc:
            raise FatalError(
                f"{needed_by} needs the hidapi library ({self.backend} backend) and it is not usable: {exc}. "
                "Install it with pip install hidapi"
            ) from exc
        self._read_size = read_size
        self._timeout_ms = timeout_ms
        mode = current_mode() if readers is None else resolve_mode(readers)
        self.readers: ReadersMode = mode if self.backend == "hidraw" else "thread"
        """Where reports are read: "process" (the hidraw node in the reader process) or "thread" (hidapi)."""
        self.reader_priority = current_priority()  # how a reader process started for it is scheduled
        self._reader: _HidReader | None = None  # the thread path, while open
        self._node: NodeReading | None = None  # the process path, while open
        self._inbox: Inbox | None = None  # where either path puts the reports, while open
        self._last: Inbox | None = None  # the closed one: read() raises the end it raised, if any
        self._parked: tuple[int, HidInfo] | None = None  # a node kept open across the death of its reader process
        self.read_at_close = 0  # reports read but not handed over by read() when it was closed
        self.device: HidInfo | None = None

    @property
    def describe(self) -> str:
        """'hid:/dev/hidraw3' (the port as configured) or 'hid:usb=0b33:0020, ...'."""
        if self.attachment.port:
            return f"hid:{self.attachment.port}"
        if self.attachment.is_empty:
            return "hid:usb=" + ",".join(usb_id(v, p) for v, p in sorted(self._ids))
        return f"hid:{self.attachment.describe()}"

    @property
    def reader_pid(self) -> int | None:
        """The pid of the process reading the device (None: read in a thread, or closed)."""
        return self._node.pid if self._node is not None else None

    async def open(self) -> None:
        """Find the device, open it (its node for the reader process, or in its reader thread), start
        reading. Raises DeviceUnavailable."""
        if self._reader is not None or self._node is not None:
            raise RuntimeError(f"{self.describe} is open already")
        parked, self._parked = self._parked, None
        if parked is not None:  # its reader process died: read on, nothing in the node's queue dropped
            fd, info = parked
            try:
                if await self._read_node(fd, info):
                    log.info("reading %s at %s again", self.describe, info.path_text)
                    return
            except DeviceUnavailable:  # no reader process this time: parked still, for the next try
                self._parked = parked
                raise
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # no process can start here: hidapi's thread from now on
        info = await asyncio.to_thread(find_hid, self.backend, self.attachment, self._port, self._ids, self._products)
        if self.readers == "process":
            try:
                fd = hid_node.open_node(info.path_text)
            except OSError as exc:
                raise DeviceUnavailable(_open_problem(info, str(exc))) from None
            try:
                started = await self._read_node(fd, info)
            except BaseException:
                os.close(fd)
                raise
            if started:
                log.info("opened %s at %s (%s, reader process)", self.describe, info.path_text, self.backend)
                return
            os.close(fd)
        inbox = Inbox()
        reader = _HidReader(self._module, info, self.describe, self._read_size, self._timeout_ms, inbox)
        try:
            await reader.opened
        except DeviceUnavailable as exc:
            await reader.stop()
            raise DeviceUnavailable(_open_problem(info, str(exc))) from None
        except BaseException:
            await reader.stop()
            raise
        self._reader, self._inbox, self.device, self._last = reader, inbox, info, None
        log.info("opened %s at %s (%s)", self.describe, info.path_text, self.backend)

    async def _read_node(self, fd: int, info: HidInfo) -> bool:
        """Hand the open node to the reader process; False where none can be started (the thread reads then)."""
        try:
            self._node = node = await NodeReading.start(fd, self.describe, self.reader_priority)
        except ReaderUnavailable as exc:
            log.warning("cannot start the reader process (%s): reading %s in a thread instead", exc, self.describe)
            self.readers = "thread"
            return False
        self._inbox, self.device, self._last = node.inbox, info, None
        return True

    async def read(self) -> list[Chunk]:
        """The reports read since the last call (waiting for at least one); DeviceGone after the last."""
        return await self._open_inbox().read()

    async def deliver_to(self, sink: Sink) -> NoReturn:
        """Hand every report (one Chunk each) to `sink` as it arrives until the device is gone, then raise
        DeviceGone as `read()` would: from the event loop's callback that received it (the reader
        process's round, or the thread's call_soon_threadsafe; daq.transports.inbox)."""
        await self._open_inbox().deliver_to(sink)

    def _open_inbox(self) -> Inbox:
        return taking_from(self._inbox, self._last, self.describe)

    async def close(self) -> None:
        """Stop reading (the reader thread closes the device, or the reader process lets go of the node,
        which is closed then) and wait for it. Idempotent. After ReaderDied the node stays open (parked)."""
        reader, node, inbox, info = self._reader, self._node, self._inbox, self.device
        self._reader = self._node = self._inbox = None
        self.device = None
        try:
            if node is not None:
                fd: int | None = node.fd
                if isinstance(node.inbox.raised, ReaderDied) and info is not None:
                    self._parked, fd = (node.fd, info), None
                try:
                    await node.stop()
                finally:
                    if fd is not None:
                        os.close(fd)
            if reader is not None:
                await reader.stop()
        finally:
            if inbox is not None:
                self.read_at_close += inbox.end(self.describe, "reports")  # counts what is left, wakes a read()
                self._last = inbox


@dataclass(eq=False)
class _HidReader:
    """The thread that owns one open hidapi device: opens it, reads it, closes it (started when made)."""

    module: ModuleType
    info: HidInfo
    describe: str
    size: int
    timeout_ms: int
    inbox: Inbox
    opened: asyncio.Future[None] = field(init=False)
    _loop: asyncio.AbstractEventLoop = field(init=False)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.opened = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name=f"reader {self.describe}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("%s: reader thread did not stop within %.0f s", self.describe, JOIN_TIMEOUT_S)

    def _settle(self, problem: str | None) -> None:
        def settle() -> None:
            if self.opened.done():
                return
            if problem is None:
                self.opened.set_result(None)
            else:
                self.opened.set_exception(DeviceUnavailable(problem))

        self._loop.call_soon_threadsafe(settle)

    def _run(self) -> None:
        try:
            device = self.module.device()
            try:
                with HIDAPI_LOCK:
                    device.open_path(self.info.path)
            except Exception as exc:
                self._settle(str(exc) or type(exc).__name__)
                return
            try:
                self._settle(None)
                self._read_loop(device)
            finally:
                with contextlib.suppress(Exception):  # closing a device that is gone may fail too
                    device.close()
        except RuntimeError:  # the event loop is closed: nobody is left to read
            pass

    def _read_loop(self, device: Any) -> None:
        read, inbox, to_loop = device.read, self.inbox, self._loop.call_soon_threadsafe

        def put(item: Chunk | DeviceGone) -> None:
            to_loop(inbox.put, item)  # RuntimeError once the loop is closed: _run ends quietly

        size, timeout_ms, stop = self.size, self.timeout_ms, self._stop
        while not stop.is_set():
            try:
                data = read(size, timeout_ms)
            except Exception as exc:  # hidapi raises OSError (or ValueError once closed) on an unplug
                if not stop.is_set():
                    put(DeviceGone(f"{self.describe}: read failed: {exc} (unplugged?)"))
                return
            mono_ns = time.monotonic_ns()
            if data:
                put(Chunk(bytes(data), mono_ns))


def _open_problem(info: HidInfo, error: str) -> str:
    """Why hidapi could not open a device it listed, in words a user can act on."""
    node = info.path_text if info.backend == "hidraw" else None
    if info.backend == "libusb":
        node = next((d.node for d in usb_devices({(info.vid, info.pid)}) if d.name == info.location), None)
    shown = f"{info.path_text} ({info.usb}, {info.backend})"
    if node and os.path.exists(node) and not hid_enum.can_open(node):
        return (
            f"no permission to open {shown}: {node} is not readable and writable by you. Install the udev rules "
            "(`daq devices --udev-rules uaccess`); `daq doctor` says how"
        )
    return (
        f"cannot open {shown}: {error}. Another program may hold it (a second daq, a vendor app), or it was "
        "unplugged; `daq doctor` checks permissions and kernel drivers"
    )


def open_hid(profile: Profile, attachment: Attachment) -> HidTransport:
    """The HID transport of `profile` (its registry entry's `open`, daq.transports.registry)."""
    backend = profile.framing.backend if isinstance(profile.framing, ReportFraming) else "auto"
    return HidTransport(
        attachment,
        backend=backend,
        ids=profile.match.usb_ids(),
        products=profile.match.product,
        needed_by=f"profile {profile.id}",
    )
