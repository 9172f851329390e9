"""HID discovery, the one place that asks hidapi what is attached, and the USB facts sysfs
gives on Linux (which interface a node belongs to, which kernel driver claims it).

hidapi (cython-hidapi, PyPI `hidapi`) has two backends on Linux: `import hidraw` (the
hidraw backend: USB and Bluetooth, only devices with a /dev/hidraw node) and `import hid`
(libusb: USB only, detaches the kernel driver when it opens). On macOS and Windows `import
hid` is the one, native, backend. hidapi keeps global state (hid_init, the libusb context)
and is not thread-safe: every enumerate and open here runs under `HIDAPI_LOCK`; reads of a
device hidapi opened happen in that device's own thread only (daq.transports.hid; a hidraw node
read by the reader process is opened by the daemon itself, daq.transports.hid_node).

The modules are imported at call time (`importlib`), so tests put a fake in sys.modules.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from daq.exceptions import DeviceUnavailable
from daq.transports.attachment import Attachment, describe_found, usb_id

HIDAPI_LOCK = threading.Lock()
SYS = Path("/sys")  # tests point it at a fake tree
LINUX = sys.platform.startswith("linux")

Backend = Literal["hidraw", "libusb", "native"]
Requested = Literal["auto", "hidraw", "libusb"]
MODULES: dict[str, str] = {"hidraw": "hidraw", "libusb": "hid", "native": "hid"}
BACKEND_PREFIXES = ("hidraw:", "libusb:")

_USB_INTERFACE = re.compile(r"^\d+-[\d.]+:\d+\.\d+$")  # sysfs name of a USB interface, e.g. 1-1.2:1.0


def can_open(path: str) -> bool:
    """Whether this user may open a device node for reading and writing (tests replace it: they run as root)."""
    return os.access(path, os.R_OK | os.W_OK)


class HidUnavailable(Exception):
    """hidapi cannot be used (not installed, no backend) or its enumerate failed."""


def load_backend(backend: Backend, *, to_open: bool = True) -> ModuleType:
    """The hidapi module of `backend`. Raises ImportError (or OSError: a backend library missing)."""
    module = importlib.import_module(MODULES[backend])
    if not hasattr(module, "enumerate") or (to_open and not hasattr(module, "device")):
        raise ImportError(
            f"the '{MODULES[backend]}' module is not cython-hidapi (another package named hid?): "
            "pip uninstall hid; pip install hidapi"
        )
    return module


def resolve_backend(requested: Requested, port: str | None = None) -> tuple[Backend, str | None]:
    """Which backend reads the device, and the port without its 'hidraw:'/'libusb:' prefix.

    A prefix in the station's `port` wins over the profile's `backend`. Linux 'auto' is hidraw
    when the hidraw module imports, else libusb. Off Linux there is one backend.
    """
    if port is not None:
        for prefix in BACKEND_PREFIXES:
            if port.startswith(prefix):
                requested = prefix[:-1]  # type: ignore[assignment]
                port = port[len(prefix) :] or None
                break
        else:
            if port.startswith("/dev/hidraw"):
                requested = "hidraw"
    if not LINUX:
        return "native", port
    if requested == "auto":
        try:
            load_backend("hidraw")
        except (ImportError, OSError):
            return "libusb", port
        return "hidraw", port
    return requested, port


@dataclass(frozen=True, slots=True)
class HidInfo:
    """One HID device (one interface or top-level collection) as hidapi lists it."""

    path: bytes
    backend: str
    vid: int
    pid: int
    serial_number: str | None = None
    product: str | None = None
    manufacturer: str | None = None
    interface: int | None = None
    usb_interface: str | None = None  # sysfs name of its USB interface, '1-1.2:1.0'; None off USB

    @property
    def usb(self) -> str:
        return usb_id(self.vid, self.pid)

    @property
    def path_text(self) -> str:
        return self.path.decode(errors="replace")

    @property
    def location(self) -> str | None:
        """The USB port path, e.g. '1-1.2': stable while the dial stays in the same socket."""
        return self.usb_interface.split(":")[0] if self.usb_interface else None

    def describe(self) -> str:
        return describe_found(self.path_text, self)


def enumerate_hid(backend: Backend) -> list[HidInfo]:
    """The HID devices `backend` sees now, one per path, sorted. Raises HidUnavailable."""
    try:
        module = load_backend(backend, to_open=False)
    except (ImportError, OSError) as exc:
        raise HidUnavailable(f"hidapi is not usable ({exc}); pip install hidapi") from exc
    try:
        with HIDAPI_LOCK:
            entries: list[dict[str, Any]] = list(module.enumerate())
    except Exception as exc:  # hidapi raises plain OSError/IOError, or worse, per backend
        raise HidUnavailable(f"{MODULES[backend]}.enumerate() failed: {exc}") from exc
    found: dict[bytes, HidInfo] = {}
    for entry in entries:
        raw = entry.get("path", b"")
        path = raw if isinstance(raw, bytes) else str(raw).encode()
        if path in found:  # listed once per usage page on some backends
            continue
        interface = entry.get("interface_number")
        found[path] = HidInfo(
            path=path,
            backend=backend,
            vid=int(entry.get("vendor_id") or 0),
            pid=int(entry.get("product_id") or 0),
            serial_number=entry.get("serial_number") or None,
            product=entry.get("product_string") or None,
            manufacturer=entry.get("manufacturer_string") or None,
            interface=interface if isinstance(interface, int) and interface >= 0 else None,
            usb_interface=_usb_interface_of_path(path.decode(errors="replace"), backend),
        )
    return sorted(found.values(), key=lambda d: (d.usb, d.path))


def _usb_interface_of_path(path: str, backend: str) -> str | None:
    if backend == "libusb":  # hidapi's libusb paths are the interface's sysfs name: '1-1.2:1.0'
        return path if _USB_INTERFACE.match(path) else None
    if backend == "hidraw" and path.startswith("/"):
        return usb_interface_of(SYS / "class" / "hidraw" / os.path.basename(path) / "device")
    return None


def usb_interface_of(sys_path: Path) -> str | None:
    """The USB interface ('1-1.2:1.0') a sysfs device sits under; None when not on USB (Bluetooth)."""
    try:
        real = Path(os.path.realpath(sys_path))
    except OSError:
        return None
    names = [part for part in real.parts if _USB_INTERFACE.match(part)]
    return names[-1] if names else None


def matches(info: HidInfo, attachment: Attachment, ids: Collection[tuple[int, int]], products: Iterable[str]) -> bool:
    """Whether `info` is the device `attachment` (or, without a usb id there, the profile) names."""
    if attachment.vid_pid is not None:
        if (info.vid, info.pid) != attachment.vid_pid:
            return False
    else:
        if ids and (info.vid, info.pid) not in ids:
            return False
        wanted = [p.casefold() for p in products]
        if wanted and not any(w in (info.product or "").casefold() for w in wanted):
            return False
    if attachment.serial_number is not None and (info.serial_number or "").casefold() != (
        attachment.serial_number.casefold()
    ):
        return False
    return attachment.location is None or attachment.location in (info.location, info.usb_interface)


def find_hid(
    backend: Backend,
    attachment: Attachment,
    port: str | None,
    ids: Collection[tuple[int, int]],
    products: Iterable[str] = (),
) -> HidInfo:
    """The one device to open. Raises DeviceUnavailable saying what was looked for and what is there."""
    try:
        present = enumerate_hid(backend)
    except HidUnavailable as exc:
        raise DeviceUnavailable(f"cannot list HID devices: {exc}") from exc
    if port is not None:
        real = os.path.realpath(port) if port.startswith("/") else port
        hits = [d for d in present if d.path_text in (port, real)]
        if hits:
            return hits[0]
        if backend == "hidraw" and os.path.exists(real):  # not listed (no usage page?): open it anyway
            return HidInfo(path=real.encode(), backend=backend, vid=0, pid=0)
        raise DeviceUnavailable(
            f"HID device {port} not present ({backend}): is the dial plugged in?" + _listing(present)
        )
    hits = [d for d in present if matches(d, attachment, ids, products)]
    if len(hits) == 1:
        return hits[0]
    wanted = attachment.describe() if attachment.vid_pid else ", ".join(usb_id(v, p) for v, p in sorted(ids))
    if not hits:
        hint = _claimed_hint(backend, {attachment.vid_pid} if attachment.vid_pid else set(ids))
        raise DeviceUnavailable(
            f"no HID device matches {wanted} ({backend} backend): is the dial plugged in?{hint}" + _listing(present)
        )
    listed = "; ".join(d.describe() for d in hits)
    raise DeviceUnavailable(
        f"{len(hits)} HID devices match {wanted}: add serial_number or location (or port) to tell them apart ({listed})"
    )


def _listing(present: list[HidInfo]) -> str:
    shown = "; ".join(d.describe() for d in present[:8]) or "none"
    return f" Present: {shown}. `daq devices` lists them with the config to use"


def _claimed_hint(backend: str, ids: Collection[tuple[int, int]]) -> str:
    """Why a plugged-in USB device has no hidraw node: another kernel driver claims it."""
    if backend != "hidraw":
        return ""
    for dev in usb_devices(ids):
        others = sorted({d for d in dev.drivers.values() if d and d != "usbhid"})
        if others:
            return (
                f" {dev.usb} is plugged in ({dev.name}) but has no hidraw node: the kernel driver "
                f"'{others[0]}' claims it. Read it as an input device (an evdev profile), or with "
                "backend libusb (port = 'libusb:'), which detaches that driver."
            )
        return f" {dev.usb} is plugged in ({dev.name}) but has no hidraw node (`daq doctor` tells more)."
    return ""


# ---------------------------------------------------------------- USB devices in sysfs


@dataclass(frozen=True)
class UsbDevice:
    """A USB device as /sys/bus/usb/devices shows it."""

    name: str  # '1-1.2'
    vid: int
    pid: int
    busnum: int | None = None
    devnum: int | None = None
    product: str | None = None
    serial_number: str | None = None
    drivers: dict[str, str | None] = field(default_factory=dict)  # interface '1-1.2:1.0' -> driver or None

    @property
    def usb(self) -> str:
        return usb_id(self.vid, self.pid)

    @property
    def node(self) -> str | None:
        """/dev/bus/usb/BBB/DDD, the node libusb opens."""
        if self.busnum is None or self.devnum is None:
            return None
        return f"/dev/bus/usb/{self.busnum:03d}/{self.devnum:03d}"


def usb_devices(ids: Collection[tuple[int, int]] | None = None) -> list[UsbDevice]:
    """USB devices present (with these VID:PIDs, when given); empty off Linux or without sysfs."""
    root = SYS / "bus" / "usb" / "devices"
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        if ":" in entry.name:
            continue
        vid, pid = read_hex(entry / "idVendor"), read_hex(entry / "idProduct")
        if vid is None or pid is None or (ids is not None and (vid, pid) not in ids):
            continue
        drivers: dict[str, str | None] = {}
        for iface in sorted(root.glob(f"{entry.name}:*")):
            link = iface / "driver"
            drivers[iface.name] = os.path.basename(os.path.realpath(link)) if link.exists() else None
        found.append(
            UsbDevice(
                name=entry.name,
                vid=vid,
                pid=pid,
                busnum=read_int(entry / "busnum"),
                devnum=read_int(entry / "devnum"),
                product=read_text(entry / "product"),
                serial_number=read_text(entry / "serial"),
                drivers=drivers,
            )
        )
    return found


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip() or None
    except OSError:
        return None


def read_hex(path: Path) -> int | None:
    text = read_text(path)
    try:
        return int(text, 16) if text else None
    except ValueError:
        return None


def read_int(path: Path) -> int | None:
    text = read_text(path)
    try:
        return int(text) if text else None
    except ValueError:
        return None
