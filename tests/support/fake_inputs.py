"""Fakes at the call boundary of hidapi, python-evdev and mido: the devices replay exact bytes.

Each fake is a module put into sys.modules (monkeypatch.setitem) in place of the real library,
with the same calls dialdaq makes:

  hidapi (`hid`, `hidraw`): enumerate() -> dicts; device() -> open_path(path), read(size,
      timeout_ms) -> list of ints, [] after timeout_ms, OSError once unplugged; close().
      `FakeHidModule.open_node` stands in for daq.transports.hid_node.open_node (the daemon's
      os.open of a /dev/hidrawN for the reader process): a fake node, one end of a SOCK_SEQPACKET
      socket pair whose other end the dial keeps; it behaves like a hidraw node: each report
      pushed is one message, so one read(2) returns exactly one report, non-blocking (EAGAIN when
      none is queued), pollable, and end of file once the dial is unplugged (its end closed),
      after the reports queued before.
  python-evdev (`evdev`): list_devices(dir), InputDevice(path) with .path .name .info .phys
      .uniq .fd (a real pipe, so poll() works) .capabilities(absinfo=True) .read() .grab()
      .ungrab() .close(); read() raises BlockingIOError when empty, OSError(ENODEV) once unplugged.
      Events carry their time (sec, usec) as the kernel's do: taken when pushed, on the handle's
      clock, CLOCK_REALTIME unless `FakeEvdevModule.ioctl` (patched in as fcntl.ioctl) got
      EVIOCSCLOCKID for that handle's fd.
  mido (`mido`, `rtmidi`): get_input_names(), open_input(name, callback=...) -> a port whose
      messages reach the callback from a thread of the fake's own, as rtmidi's do.

A `Fake*Dial` is the physical device: tests push reports/events/messages into it, unplug it
(the open handle fails from then on) and plug it back (perhaps under another path).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import struct
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from daq.reading import Chunk
from daq.transports.base import Transport
from daq.transports.evdev_input import EVIOCSCLOCKID

# ---------------------------------------------------------------- hidapi


class FakeHidDial:
    """A HID device: reports queued for reading; plugged in or not."""

    def __init__(
        self,
        path: bytes,
        vid: int,
        pid: int,
        serial: str = "",
        product: str = "",
        manufacturer: str = "",
        interface: int = 0,
    ) -> None:
        self.path = path
        self.vid, self.pid = vid, pid
        self.serial, self.product, self.manufacturer, self.interface = serial, product, manufacturer, interface
        self.plugged = True
        self.generation = 0  # bumped by unplug: handles opened before fail
        self.reports: deque[bytes] = deque()
        self.cond = threading.Condition()
        self.pushed_ns: list[int] = []
        self.nodes: list[socket.socket] = []  # the dial's ends of its open fake hidraw nodes

    def push(self, *reports: bytes) -> int:
        """Queue reports (for hidapi handles; sent to open nodes, one message each); returns
        time.monotonic_ns() taken just before."""
        now = time.monotonic_ns()
        with self.cond:
            self.pushed_ns.extend([now] * len(reports))  # before a node's reader can see them
            for node in list(self.nodes):
                try:
                    for data in reports:
                        node.send(data)
                except OSError:  # that node was closed (the transport let go of it)
                    self.nodes.remove(node)
                    node.close()
            if not self.nodes:
                self.reports.extend(reports)
            self.cond.notify_all()
        return now

    def unplug(self) -> None:
        with self.cond:
            self.plugged = False
            self.generation += 1
            self.reports.clear()
            self.close_nodes()
            self.cond.notify_all()

    def close_nodes(self) -> None:
        """Close the dial's ends of its nodes: their readers read what is queued, then end of file."""
        with self.cond:
            for node in self.nodes:
                node.close()
            self.nodes.clear()

    def plug(self, path: bytes | None = None) -> None:
        with self.cond:
            if path is not None:
                self.path = path
            self.plugged = True
            self.cond.notify_all()

    def entry(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "vendor_id": self.vid,
            "product_id": self.pid,
            "serial_number": self.serial,
            "release_number": 0x100,
            "manufacturer_string": self.manufacturer,
            "product_string": self.product,
            "usage_page": 1,
            "usage": 5,
            "interface_number": self.interface,
        }


@dataclass
class HidCall:
    what: str
    thread: int


class FakeHidDevice:
    """What `hid.device()` returns."""

    def __init__(self, module: FakeHidModule) -> None:
        self._module = module
        self._dial: FakeHidDial | None = None
        self._generation = -1
        self.calls: list[HidCall] = []
        self.read_blocked_s = 0.0  # total time spent waiting inside read()
        module.handles.append(self)

    def _call(self, what: str) -> None:
        self.calls.append(HidCall(what, threading.get_ident()))

    def open_path(self, path: bytes) -> None:
        self._call("open_path")
        if self._module.open_error is not None:
            raise self._module.open_error
        for dial in self._module.dials:
            if dial.plugged and dial.path == path:
                self._dial, self._generation = dial, dial.generation
                return
        raise OSError("open failed")

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        self._call("read")
        dial = self._dial
        if dial is None:
            raise ValueError("not open")
        start = time.monotonic()
        deadline = start + timeout_ms / 1000
        with dial.cond:
            try:
                while True:
                    if dial.generation != self._generation:
                        raise OSError("read error")
                    if dial.reports:
                        return list(dial.reports.popleft()[:max_length])
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return []
                    dial.cond.wait(remaining)
            finally:
                self.read_blocked_s += time.monotonic() - start

    def close(self) -> None:
        self._call("close")
        self._dial = None


class FakeHidModule(types.ModuleType):
    """A fake `hid` or `hidraw` module over some FakeHidDials."""

    def __init__(self, name: str, dials: Iterable[FakeHidDial] = ()) -> None:
        super().__init__(name)
        self.dials = list(dials)
        self.handles: list[FakeHidDevice] = []
        self.open_error: Exception | None = None
        self.node_error: OSError | None = None  # what open_node raises
        self.nodes_opened: list[str] = []
        self.enumerate_calls = 0

    def enumerate(self, vendor_id: int = 0, product_id: int = 0) -> list[dict[str, Any]]:
        self.enumerate_calls += 1
        return [d.entry() for d in self.dials if d.plugged]

    def device(self) -> FakeHidDevice:
        return FakeHidDevice(self)

    def open_node(self, path: str) -> int:
        """daq.transports.hid_node.open_node over these dials: a fake hidraw node (see the module's docstring)."""
        if self.node_error is not None:
            raise self.node_error
        for dial in self.dials:
            if dial.plugged and dial.path == path.encode():
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                ours.setblocking(False)  # O_NONBLOCK, as open_node asks; close-on-exec as Python's sockets are
                with dial.cond:
                    dial.nodes.append(theirs)
                self.nodes_opened.append(path)
                return ours.detach()
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)

    def close_nodes(self) -> None:
        for dial in self.dials:
            dial.close_nodes()


# ---------------------------------------------------------------- evdev


class AbsInfo(NamedTuple):
    value: int
    min: int
    max: int
    fuzz: int = 0
    flat: int = 0
    resolution: int = 0


class DeviceInfo(NamedTuple):
    bustype: int
    vendor: int
    product: int
    version: int


@dataclass
class InputEvent:
    type: int
    code: int
    value: int
    sec: int = 0
    usec: int = 0


@dataclass
class Frame:
    """Events the kernel reported together, and when (both clocks, ns)."""

    events: list[tuple[int, int, int]]
    mono_ns: int
    wall_ns: int


@dataclass
class FakeInputDial:
    """An input device node: its identity, what it can send, and events waiting."""

    path: str
    name: str
    vid: int
    pid: int
    capabilities: dict[int, list[Any]]  # type -> codes; EV_ABS -> [(code, AbsInfo)]
    uniq: str = ""
    phys: str = ""
    plugged: bool = True
    grabbed_by: object | None = None
    events: deque[Frame] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    generation: int = 0
    wakers: list[int] = field(default_factory=list)  # write ends of the open handles' pipes
    keys_down: set[int] = field(default_factory=set)  # the key state the kernel keeps (EVIOCGKEY)
    after_read: Callable[[], None] | None = None  # called once, right after the next read took the events

    def push(self, *events: tuple[int, int, int], age_ns: int = 0) -> int:
        """Queue one frame (one time) of (type, code, value); returns monotonic_ns just before, which
        less `age_ns` (how long ago the kernel took the events in) is the events' time."""
        return self._queue(list(events), events, age_ns)

    def overflow(self, *lost: tuple[int, int, int]) -> int:
        """The kernel's buffer for the reader overflowed while `lost` happened: the device's state
        follows them, the reader gets only a SYN_DROPPED (as the kernel queues it)."""
        return self._queue([(0, 3, 0)], lost, 0)

    def _queue(self, frame: list[tuple[int, int, int]], happened: Iterable[tuple[int, int, int]], age_ns: int) -> int:
        now = time.monotonic_ns()
        wall = time.time_ns()
        with self.lock:
            for ev_type, code, value in happened:
                if ev_type == 1 and value in (0, 1):  # EV_KEY: a release or a press (not an autorepeat)
                    (self.keys_down.add if value else self.keys_down.discard)(code)
            self.events.append(Frame(frame, now - age_ns, wall - age_ns))
            wakers = list(self.wakers)
        for fd in wakers:
            os.write(fd, b"e")
        return now

    def unplug(self) -> None:
        with self.lock:
            self.plugged = False
            self.generation += 1
            self.events.clear()
            self.grabbed_by = None
            wakers = list(self.wakers)
        for fd in wakers:
            os.write(fd, b"x")  # poll() wakes; read() then fails with ENODEV

    def plug(self, path: str | None = None) -> None:
        with self.lock:
            if path is not None:
                self.path = path
            self.plugged = True


class FakeInputDevice:
    """What `evdev.InputDevice(path)` returns."""

    def __init__(self, module: FakeEvdevModule, path: str) -> None:
        dial = next((d for d in module.dials if d.plugged and d.path == path), None)
        if dial is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if module.open_error is not None:
            raise module.open_error
        self._dial = dial
        self._generation = dial.generation
        self.path = path
        self.name = dial.name
        self.phys = dial.phys
        self.uniq = dial.uniq
        self.info = DeviceInfo(3, dial.vid, dial.pid, 1)
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        self.fd = self._rfd
        self.closed = False
        self.grabs = 0
        self.read_threads: set[int] = set()
        self.clock_id = time.CLOCK_REALTIME  # the kernel's default for a new handle
        with dial.lock:
            dial.wakers.append(self._wfd)
            pending = len(dial.events)
        if pending:
            os.write(self._wfd, b"e")
        module.handles.append(self)

    def capabilities(self, verbose: bool = False, absinfo: bool = True) -> dict[int, list[Any]]:
        return {t: list(codes) for t, codes in self._dial.capabilities.items()}

    def read(self) -> Iterator[InputEvent]:
        self.read_threads.add(threading.get_ident())
        dial = self._dial
        with contextlib.suppress(BlockingIOError):
            os.read(self._rfd, 4096)
        with dial.lock:
            if dial.generation != self._generation:
                raise OSError(errno.ENODEV, "No such device")
            if not dial.events:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            frames = list(dial.events)
            dial.events.clear()
            after, dial.after_read = dial.after_read, None
        if after is not None:
            after()
        out = []
        for frame in frames:
            at_ns = frame.mono_ns if self.clock_id == time.CLOCK_MONOTONIC else frame.wall_ns
            sec, usec = at_ns // 1_000_000_000, at_ns % 1_000_000_000 // 1000
            out += [InputEvent(t, c, v, sec, usec) for t, c, v in frame.events]
        return iter(out)

    def active_keys(self, verbose: bool = False) -> list[int]:
        """EVIOCGKEY: the keys down now. As the kernel does (evdev_handle_get_val), it drops the
        key events queued for this reader: the state it returns includes them."""
        dial = self._dial
        with dial.lock:
            if dial.generation != self._generation:
                raise OSError(errno.ENODEV, "No such device")
            for frame in dial.events:  # (the kernel removes a frame left empty; this keeps its SYN_REPORT)
                frame.events = [e for e in frame.events if e[0] != 1]  # EV_KEY
            return sorted(dial.keys_down)

    def grab(self) -> None:
        dial = self._dial
        with dial.lock:
            if dial.grabbed_by is not None and dial.grabbed_by is not self:
                raise OSError(errno.EBUSY, "Device or resource busy")
            dial.grabbed_by = self
        self.grabs += 1

    def ungrab(self) -> None:
        dial = self._dial
        with dial.lock:
            if dial.generation != self._generation:
                raise OSError(errno.ENODEV, "No such device")
            if dial.grabbed_by is self:
                dial.grabbed_by = None
        self.grabs -= 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with self._dial.lock:
            if self._wfd in self._dial.wakers:
                self._dial.wakers.remove(self._wfd)
            if self._dial.grabbed_by is self:
                self._dial.grabbed_by = None
        os.close(self._rfd)
        os.close(self._wfd)


class FakeEvdevModule(types.ModuleType):
    """A fake `evdev` module over some FakeInputDials."""

    __version__ = "1.9.fake"

    def __init__(self, dials: Iterable[FakeInputDial] = ()) -> None:
        super().__init__("evdev")
        self.dials = list(dials)
        self.handles: list[FakeInputDevice] = []
        self.open_error: Exception | None = None
        self.clock_error: OSError | None = None  # what EVIOCSCLOCKID raises (an old kernel: EINVAL)
        self.ioctls: list[tuple[int, int, bytes]] = []  # (fd, request, argument) on our handles
        self._real_ioctl = fcntl.ioctl

    def ioctl(self, fd: int, request: int, arg: Any = 0, mutate: bool = True) -> Any:
        """fcntl.ioctl for the handles' fds (EVIOCSCLOCKID); anything else goes to the real one."""
        handle = next((h for h in self.handles if not h.closed and h.fd == fd), None)
        if handle is None:
            return self._real_ioctl(fd, request, arg, mutate)
        self.ioctls.append((fd, request, bytes(arg)))
        if request != EVIOCSCLOCKID:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        if self.clock_error is not None:
            raise self.clock_error
        (handle.clock_id,) = struct.unpack("i", arg)
        return 0

    def list_devices(self, input_device_dir: str = "/dev/input") -> list[str]:
        return [d.path for d in self.dials if d.plugged]

    def InputDevice(self, path: str) -> FakeInputDevice:  # python-evdev's name
        return FakeInputDevice(self, path)


# ---------------------------------------------------------------- mido


class FakeMessage:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def bytes(self) -> list[int]:
        return list(self._data)


class FakeMidiController:
    """A MIDI controller: its input port name (ALSA numbers it) and the messages it sends."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.plugged = True
        self.ports: list[FakeMidiPort] = []

    def send(self, *messages: bytes, interval_s: float = 0.0) -> int:
        """Deliver messages to the open ports' callbacks from a thread of its own; returns
        monotonic_ns just before. Waits until they were delivered."""
        now = time.monotonic_ns()
        ports = [p for p in self.ports if not p.closed]

        def deliver() -> None:
            for i, data in enumerate(messages):
                if i and interval_s:
                    time.sleep(interval_s)
                for port in ports:
                    if not port.closed:
                        port.callback(FakeMessage(data))

        thread = threading.Thread(target=deliver, name="fake rtmidi input")
        thread.start()
        thread.join()
        return now

    def unplug(self) -> None:
        self.plugged = False
        for port in self.ports:
            port.dead = True

    def plug(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.plugged = True


class FakeMidiPort:
    def __init__(self, name: str, callback: Callable[[FakeMessage], None]) -> None:
        self.name = name
        self.callback = callback
        self.closed = False
        self.dead = False

    def close(self) -> None:
        self.closed = True


class FakeMidoModule(types.ModuleType):
    def __init__(self, controllers: Iterable[FakeMidiController] = (), extra_names: Iterable[str] = ()) -> None:
        super().__init__("mido")
        self.controllers = list(controllers)
        self.extra_names = list(extra_names)
        self.opened: list[FakeMidiPort] = []
        self.list_error: Exception | None = None

    def get_input_names(self) -> list[str]:
        if self.list_error is not None:
            raise self.list_error
        return self.extra_names + [c.name for c in self.controllers if c.plugged]

    def open_input(self, name: str, callback: Callable[[FakeMessage], None] | None = None) -> FakeMidiPort:
        assert callback is not None, "dialdaq opens MIDI ports with a callback"
        for controller in self.controllers:
            if controller.plugged and controller.name == name:
                port = FakeMidiPort(name, callback)
                controller.ports.append(port)
                self.opened.append(port)
                return port
        raise OSError(f"unknown port {name!r}")


def fake_rtmidi() -> types.ModuleType:
    return types.ModuleType("rtmidi")


# ---------------------------------------------------------------- sysfs


@dataclass
class SysUsb:
    """A USB device in a fake /sys: its interface 0 held by `driver`, with hidraw / input nodes under it."""

    name: str  # '1-3'
    vid: int
    pid: int
    driver: str | None = "usbhid"
    busnum: int = 1
    devnum: int = 5
    hidraw: str | None = None  # 'hidraw0'
    events: list[tuple[str, str]] = field(default_factory=list)  # ('event5', device name)


def make_sysfs(root: Any, devices: Iterable[SysUsb]) -> None:
    """Build the parts of /sys that daq.transports.hid_enum and daq.diagnose.doctor read, under `root`."""
    from pathlib import Path

    root = Path(root)
    for dev in devices:
        usb = root / "devices" / "pci0000:00" / "0000:00:14.0" / "usb1" / dev.name
        usb.mkdir(parents=True, exist_ok=True)
        (usb / "idVendor").write_text(f"{dev.vid:04x}\n")
        (usb / "idProduct").write_text(f"{dev.pid:04x}\n")
        (usb / "busnum").write_text(f"{dev.busnum}\n")
        (usb / "devnum").write_text(f"{dev.devnum}\n")
        iface = usb / f"{dev.name}:1.0"
        iface.mkdir(exist_ok=True)
        if dev.driver:
            driver = root / "bus" / "usb" / "drivers" / dev.driver
            driver.mkdir(parents=True, exist_ok=True)
            (iface / "driver").symlink_to(driver)
        links = root / "bus" / "usb" / "devices"
        links.mkdir(parents=True, exist_ok=True)
        (links / dev.name).symlink_to(usb)
        (links / iface.name).symlink_to(iface)
        hid = iface / f"0003:{dev.vid:04X}:{dev.pid:04X}.0001"
        if dev.hidraw:
            node = hid / "hidraw" / dev.hidraw
            node.mkdir(parents=True)
            cls = root / "class" / "hidraw" / dev.hidraw
            cls.mkdir(parents=True)
            (cls / "device").symlink_to(hid)
        for event, name in dev.events:
            parent = (hid if dev.driver == "usbhid" else iface) / "input" / f"input{event[5:]}"
            parent.mkdir(parents=True)
            (parent / "name").write_text(name + "\n")
            (parent / "id").mkdir()
            (parent / "id" / "vendor").write_text(f"{dev.vid:04x}\n")
            (parent / "id" / "product").write_text(f"{dev.pid:04x}\n")
            cls = root / "class" / "input" / event
            cls.mkdir(parents=True)
            (cls / "device").symlink_to(parent)


async def read_n(t: Transport, n: int, within_s: float = 3.0) -> list[Chunk]:
    """At least `n` chunks from a transport, or TimeoutError after `within_s`."""
    chunks: list[Chunk] = []
    async with asyncio.timeout(within_s):
        while len(chunks) < n:
            chunks += await t.read()
    return chunks
