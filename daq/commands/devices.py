"""`daq devices`: what is plugged in, which firmware profile fits it, and the config to use it.

    daq devices [--json] [--dir DIR ...]

Serial ports come from pyserial's comports(), HID devices from hidapi (imported here, lazily:
without it the serial ports are still listed). For each USB device the profiles whose [match]
fits its VID:PID (and product string) are named, the most specific first, with a [[dials]]
snippet for the station config: `port` = the /dev/serial/by-id link when udev made one (it
survives replugging), else `usb` + `serial_number`, else the device path.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daq.exceptions import ProfileError
from daq.profiles.loader import ProfileRegistry
from daq.transports.ports import SerialPort, list_ports

HELP = "list serial ports and HID devices, with the firmware profile that fits each and the config snippet to use it"

WHAT_TO_CHECK = """\
Check:
  - the dial is plugged in, with a data cable (some USB cables only charge);
  - the kernel saw it: `dmesg | tail` right after plugging it in (cdc_acm, ch341, ftdi_sio, usbhid);
  - permissions and ModemManager: install the udev rules in config/udev
    (`daq doctor` will check this for you)."""


@dataclass
class Device:
    """One row of the listing (and of --json)."""

    kind: str  # "serial" or "hid"
    path: str
    usb: str | None = None
    serial_number: str | None = None
    location: str | None = None
    product: str | None = None
    manufacturer: str | None = None
    by_id: str | None = None
    interface: int | None = None
    profiles: list[dict[str, str | None]] = field(default_factory=list)
    config: str | None = None

    @property
    def vid_pid(self) -> tuple[int, int] | None:
        if self.usb is None:
            return None
        vid, pid = self.usb.split(":")
        return int(vid, 16), int(pid, 16)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("devices", help=HELP, description=HELP + ".")
    parser.add_argument("--json", action="store_true", help="print a machine-readable list")
    parser.add_argument(
        "--dir",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="also match profiles from this folder of .toml files (repeatable)",
    )
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    notes: list[str] = []
    devices = [serial_device(p) for p in list_ports()]
    devices += hid_devices(notes)

    code = 0
    try:
        registry: ProfileRegistry | None = ProfileRegistry.load(args.dir)
    except ProfileError as exc:
        notes.append(f"profiles not loaded, so none is suggested: {exc}")
        registry, code = None, 1
    if registry is not None:
        suggest(devices, registry)

    if args.json:
        print(json.dumps([asdict(d) for d in devices], indent=2))
        for note in notes:
            print(f"daq devices: {note}", file=sys.stderr)
        return code
    print(render(devices, notes))
    return code


def serial_device(port: SerialPort) -> Device:
    return Device(
        kind="serial",
        path=port.device,
        usb=port.usb,
        serial_number=port.serial_number,
        location=port.location,
        product=port.product,
        by_id=port.by_id,
    )


def hid_devices(notes: list[str]) -> list[Device]:
    """HID devices from hidapi; a missing library or a failing enumerate becomes a note."""
    try:
        import hid
    except (ImportError, OSError) as exc:  # not installed, or no libusb/hidraw backend
        notes.append(f"HID devices not listed: hidapi is not usable ({exc}); pip install hidapi")
        return []
    try:
        entries: list[dict[str, Any]] = list(hid.enumerate())
    except Exception as exc:  # hidapi raises plain OSError/IOError, or worse, per backend
        notes.append(f"HID devices not listed: hid.enumerate() failed: {exc}")
        return []
    devices: dict[str, Device] = {}
    for entry in entries:
        raw_path = entry.get("path", b"")
        path = raw_path.decode(errors="replace") if isinstance(raw_path, bytes) else str(raw_path)
        vid, pid = int(entry.get("vendor_id") or 0), int(entry.get("product_id") or 0)
        interface = entry.get("interface_number")
        devices.setdefault(  # one entry per path: hidapi lists a path once per usage
            path,
            Device(
                kind="hid",
                path=path,
                usb=f"{vid:04x}:{pid:04x}",
                serial_number=entry.get("serial_number") or None,
                product=entry.get("product_string") or None,
                manufacturer=entry.get("manufacturer_string") or None,
                interface=interface if isinstance(interface, int) and interface >= 0 else None,
            ),
        )
    return sorted(devices.values(), key=lambda d: (d.usb or "", d.path))


def suggest(devices: list[Device], registry: ProfileRegistry) -> None:
    """Fill in `profiles` (those of the device's transport) and a config snippet for the first."""
    number = 0
    for device in devices:
        ids = device.vid_pid
        if ids is None:
            continue
        fitting = [p for p in registry.match_usb(*ids, device.product) if p.profile.transport == device.kind]
        device.profiles = [
            {"id": p.id, "transport": p.profile.transport, "file": str(p.path) if p.path else None} for p in fitting
        ]
        if fitting:
            number += 1
            device.config = snippet(device, f"dial{number}", [p.id for p in fitting])


def snippet(device: Device, dial_id: str, profile_ids: list[str]) -> str:
    """The [[dials]] table that uses `device` with the first of `profile_ids`."""
    lines = ["[[dials]]", f"id = {_toml(dial_id)}", f"profile = {_toml(profile_ids[0])}"]
    lines += [f"# or profile = {_toml(other)}" for other in profile_ids[1:]]
    if device.kind == "serial" and device.by_id:
        lines.append(f"port = {_toml(device.by_id)}")
    elif device.serial_number or device.kind == "hid":
        lines.append(f"usb = {_toml(device.usb or '')}")
        if device.serial_number:
            lines.append(f"serial_number = {_toml(device.serial_number)}")
    else:  # a serial port without by-id link nor serial number: only its path tells it apart
        lines.append(f"port = {_toml(device.path)}")
    return "\n".join(lines)


def render(devices: list[Device], notes: list[str]) -> str:
    usb = [d for d in devices if d.usb]
    other = [d for d in devices if not d.usb]
    out: list[str] = []
    if not devices:
        out += ["No serial ports or HID devices found.", WHAT_TO_CHECK]
    elif not usb:
        out += ["No USB serial ports or HID devices found.", WHAT_TO_CHECK]
    for kind, title in (("serial", "Serial ports"), ("hid", "HID devices")):
        shown = [d for d in usb if d.kind == kind]
        if not shown:
            continue
        out.append(f"\n{title}:")
        for device in shown:
            out += _describe(device)
    if other:
        listed = ", ".join(d.path for d in other)
        out.append(
            f"\nOther serial ports (built in, not USB): {listed}. A dial wired to one is used with "
            'port = "<that path>".'
        )
    out += [f"\nNote: {note}" for note in notes]
    return "\n".join(out).lstrip("\n")


def _describe(device: Device) -> list[str]:
    facts = [f"usb {device.usb}"]
    if device.serial_number:
        facts.append(f"serial number {device.serial_number}")
    if device.location:
        facts.append(f"location {device.location}")
    if device.interface is not None:
        facts.append(f"interface {device.interface}")
    name = " ".join(x for x in (device.manufacturer, device.product) if x)
    if name:
        facts.append(repr(name))
    lines = [f"  {device.path}  " + ", ".join(facts)]
    if device.by_id:
        lines.append(f"    stable path: {device.by_id}")
    if not device.profiles:
        lines.append(
            "    no profile fits: write one for its firmware (see firmware_profiles/, "
            "`daq profiles decode` to try it), then use --dir"
        )
        return lines
    several = " (several fit: pick the one whose firmware runs on it)" if len(device.profiles) > 1 else ""
    lines.append("    profiles: " + ", ".join(str(p["id"]) for p in device.profiles) + several)
    lines.append("    config:")
    lines += [f"      {line}" for line in (device.config or "").splitlines()]
    return lines


def _toml(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string
