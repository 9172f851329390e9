"""The HID transport: hidapi's blocking read(size, timeout_ms) in one thread per device.

Why a thread that blocks in read() with a timeout: hidapi has no file descriptor to hand to
the event loop on every platform (libusb, macOS, Windows), and it is not thread-safe, so every
call for one device (open, read, close) is made from that device's own thread, and enumerate
and open run under one module lock (daq.transports.hid_enum.HIDAPI_LOCK). The thread stamps
time.monotonic_ns() as soon as read() returns a report and hands the chunk (one report) to the
loop with call_soon_threadsafe, the way the serial transport does. read() returning [] is
its timeout: the thread checks whether it was asked to stop and reads again, so stopping
takes at most one timeout. read() raising is an unplug: DeviceGone, after the reports read
before it; the next open() enumerates again and finds the device wherever it came back.

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
from typing import TYPE_CHECKING, Any

from daq.exceptions import DeviceGone, DeviceUnavailable, FatalError
from daq.profiles.model_framings import ReportFraming
from daq.reading import Chunk
from daq.transports import hid_enum
from daq.transports.attachment import Attachment, usb_id
from daq.transports.handoff import Handoff, close_handoff, take_from
from daq.transports.hid_enum import (
    HIDAPI_LOCK,
    HidInfo,
    Requested,
    find_hid,
    load_backend,
    resolve_backend,
    usb_devices,
)

if TYPE_CHECKING:
    from daq.profiles.model import Profile

log = logging.getLogger(__name__)

READ_SIZE = 256  # longer than any dial's input report; hidapi returns the report's own length
READ_TIMEOUT_MS = 100  # how long stop() may wait for the thread
JOIN_TIMEOUT_S = 5.0


class HidTransport:
    """A HID dial read through hidapi. Reusable: after close() (or DeviceGone) open() finds it again."""

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
        self._reader: _HidReader | None = None
        self._handoff: Handoff | None = None
        self.device: HidInfo | None = None

    @property
    def describe(self) -> str:
        """'hid:/dev/hidraw3' (the port as configured) or 'hid:usb=0b33:0020, ...'."""
        if self.attachment.port:
            return f"hid:{self.attachment.port}"
        if self.attachment.is_empty:
            return "hid:usb=" + ",".join(usb_id(v, p) for v, p in sorted(self._ids))
        return f"hid:{self.attachment.describe()}"

    async def open(self) -> None:
        """Find the device, open it in its reader thread, start reading. Raises DeviceUnavailable."""
        if self._reader is not None:
            raise RuntimeError(f"{self.describe} is open already")
        info = await asyncio.to_thread(find_hid, self.backend, self.attachment, self._port, self._ids, self._products)
        handoff = Handoff()
        reader = _HidReader(self._module, info, self.describe, self._read_size, self._timeout_ms, handoff)
        try:
            await reader.opened
        except DeviceUnavailable as exc:
            await reader.stop()
            raise DeviceUnavailable(_open_problem(info, str(exc))) from None
        except BaseException:
            await reader.stop()
            raise
        self._reader, self._handoff, self.device = reader, handoff, info
        log.info("opened %s at %s (%s)", self.describe, info.path_text, self.backend)

    async def read(self) -> list[Chunk]:
        """The reports read since the last call (waiting for at least one); DeviceGone after the last."""
        return await take_from(self._handoff, self.describe)

    async def close(self) -> None:
        """Stop the reader thread (it closes the device) and wait for it. Idempotent."""
        reader, handoff = self._reader, self._handoff
        self._reader = self._handoff = None
        self.device = None
        if reader is not None:
            await reader.stop()
        close_handoff(handoff, self.describe)


@dataclass(eq=False)
class _HidReader:
    """The thread that owns one open hidapi device: opens it, reads it, closes it (started when made)."""

    module: ModuleType
    info: HidInfo
    describe: str
    size: int
    timeout_ms: int
    handoff: Handoff
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
        read, put = device.read, self.handoff.put
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
            "(config/udev/README.md); `daq doctor` says which"
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
