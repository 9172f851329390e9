"""`daq devices`: what is plugged in, which firmware profile fits it, and the config to use it.

    daq devices [--json] [--dir DIR ...]

Serial ports come from pyserial's comports(), HID devices from hidapi through
daq.transports.hid_enum (on Linux both backends: hidraw nodes, and USB HID interfaces only
libusb sees, such as a PowerMate its kernel driver holds), input devices from python-evdev and
MIDI input ports from mido when those extras are installed. Each library is imported lazily:
without it the rest is still listed, with a note. For each device the profiles whose [match]
fits its VID:PID (and product string or name) are named, the most specific first, with a
[[dials]] snippet for the station config: `port` = the /dev/serial/by-id (or /dev/input/by-id)
link when udev made one (it survives replugging), else `usb` + `serial_number`, else the
device path; a MIDI port by its name. Which lists are made, and under which title, is the
transport kinds' `devices` and `title` in daq.transports.registry (the built-in kinds' lists are
the *_devices functions here).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from daq.commands.args import add_profile_dirs
from daq.diagnose import udev
from daq.exceptions import ProfileError
from daq.profiles.input_codes import CODES, EV_KEY, event_name, parse_event
from daq.profiles.loader import LoadedProfile, ProfileRegistry
from daq.profiles.model import EvdevFraming
from daq.seams import resolve
from daq.transports import hid_enum
from daq.transports.attachment import Found, parse_usb_id
from daq.transports.ports import SerialPort, list_ports
from daq.transports.registry import TRANSPORTS

HELP = (
    "list serial ports, HID devices, input devices and MIDI ports (the last two with their extras), "
    "with the firmware profile that fits each and the config snippet to use it"
)

_NAMED = frozenset(CODES.values())
_ALSA_NUMBERS = re.compile(r"\s+\d+:\d+$")  # 'nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0': the numbers change

WHAT_TO_CHECK = """\
Check:
  - the dial is plugged in, with a data cable (some USB cables only charge);
  - the kernel saw it: `dmesg | tail` right after plugging it in (cdc_acm, ch341, ftdi_sio, usbhid);
  - permissions and ModemManager: install the udev rules (`daq devices --udev-rules uaccess`;
    `daq doctor` checks this and says how)."""


@dataclass
class Device:
    """One row of the listing (and of --json)."""

    kind: str  # "serial", "hid", "evdev" (an input device) or "midi" (a MIDI input port)
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
    backend: str | None = None  # HID: the hidapi backend that lists it
    events: list[str] = field(default_factory=list)  # input devices: the named events it can send
    note: str | None = None

    @property
    def vid_pid(self) -> tuple[int, int] | None:
        return parse_usb_id(self.usb)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("devices", help=HELP, description=HELP + ".")
    parser.add_argument("--json", action="store_true", help="print a machine-readable list")
    add_profile_dirs(parser, "also match profiles from this folder of .toml files (repeatable)")
    parser.add_argument(
        "--udev-rules",
        choices=sorted(udev.FILES),
        metavar="VARIANT",
        help="print the Linux udev rules that let dialdaq open the dials of the bundled profiles and --dir's: "
        "uaccess (the desktop user) or group (the group dialdaq, for a service account); "
        f"install: {udev.install_command()}",
    )
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if args.udev_rules is not None:
        print(udev.rules(args.udev_rules, udev.collect(args.dir)), end="")
        return 0
    notes: list[str] = []
    devices = list_devices(notes)

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


Lister = Callable[[list[str]], list[Device]]
"""A transport kind's `devices` hook: what is plugged in; what cannot be listed is a note."""


def list_devices(notes: list[str]) -> list[Device]:
    """Every transport kind's devices, in the registry's order."""
    devices: list[Device] = []
    for kind in TRANSPORTS.kinds():
        if kind.devices is not None:
            lister: Lister = resolve(kind.devices)
            devices += lister(notes)
    return devices


def serial_devices(notes: list[str]) -> list[Device]:
    """Serial ports from pyserial (installed with dialdaq)."""
    return [serial_device(p) for p in list_ports()]


def found_device(kind: str, path: str, found: Found) -> Device:
    """A row for a device discovery found (a serial port, a HID device), with the keys it was found by."""
    return Device(kind, path, found.usb, found.serial_number, found.location, found.product)


def serial_device(port: SerialPort) -> Device:
    device = found_device("serial", port.device, port)
    device.by_id = port.by_id
    return device


def hid_devices(notes: list[str]) -> list[Device]:
    """HID devices from hidapi (daq.transports.hid_enum); a missing library or a failing enumerate is a note.

    On Linux the hidraw backend lists what the HID transport opens by default; the libusb
    backend adds the USB HID interfaces without a hidraw node (another kernel driver holds them).
    """
    backends: list[hid_enum.Backend] = ["hidraw", "libusb"] if hid_enum.LINUX else ["native"]
    devices: list[Device] = []
    seen: set[str] = set()
    for backend in backends:
        try:
            entries = hid_enum.enumerate_hid(backend)
        except hid_enum.HidUnavailable as exc:
            label = f" through {backend}" if len(backends) > 1 else ""
            notes.append(f"HID devices not listed{label}: {exc}")
            continue
        for entry in entries:
            if entry.usb_interface is not None and entry.usb_interface in seen:
                continue  # hidraw lists it already
            if entry.usb_interface is not None:
                seen.add(entry.usb_interface)
            device = found_device("hid", entry.path_text, entry)
            device.manufacturer, device.interface, device.backend = entry.manufacturer, entry.interface, backend
            if backend == "libusb" and "hidraw" in backends:
                device.note = (
                    "no hidraw node (a kernel driver other than usbhid holds it): read it with backend libusb "
                    "(port = 'libusb:') or, if the kernel makes an input device of it, with an evdev profile"
                )
            devices.append(device)
    return sorted(devices, key=lambda d: (d.usb or "", d.path))


def input_devices(notes: list[str]) -> list[Device]:
    """Linux input devices, when the evdev extra is installed."""
    if not hid_enum.LINUX:
        return []
    try:
        evdev = importlib.import_module("evdev")
    except ImportError:
        notes.append("input devices not listed: the evdev extra is not installed (pip install 'dialdaq[evdev]')")
        return []
    from daq.transports import evdev_input

    links = evdev_input.by_id_links()
    devices = []
    try:
        paths = sorted(evdev.list_devices(evdev_input.INPUT_DIR))
    except OSError as exc:
        notes.append(f"input devices not listed: {exc}")
        return []
    for path in paths:
        try:
            handle = evdev.InputDevice(path)
        except OSError:
            continue
        try:
            info = evdev_input.info_of(handle)
            codes, _ = evdev_input.capability_codes(handle)
        finally:
            handle.close()
        devices.append(
            Device(
                kind="evdev",
                path=info.path,
                usb=info.usb if info.vid or info.pid else None,
                serial_number=info.uniq,
                location=info.location,
                product=info.name,
                by_id=links.get(info.path),
                events=sorted(event_name(*c) for c in codes & _NAMED if c[0] != EV_KEY or c[1] >= 0x100),
            )
        )
    hidden = evdev_input.unreadable_nodes()
    if hidden:
        notes.append(
            f"{len(hidden)} input devices are not readable by you and not listed: install the udev rules "
            "(`daq devices --udev-rules uaccess`; `daq doctor` tells more)"
        )
    return devices


def midi_ports(notes: list[str]) -> list[Device]:
    """MIDI input ports, when the midi extra is installed."""
    try:
        from daq.transports import midi

        mido = midi.import_mido("daq devices")
    except ProfileError:  # pragma: no cover - not raised here
        return []
    except Exception:  # MissingExtraError: the extra is not installed
        notes.append("MIDI ports not listed: the midi extra is not installed (pip install 'dialdaq[midi]')")
        return []
    try:
        names = midi.input_names(mido)
    except Exception as exc:
        notes.append(f"MIDI ports not listed: {exc}")
        return []
    return [Device(kind="midi", path=name, product=name) for name in names]


def suggest(devices: list[Device], registry: ProfileRegistry) -> None:
    """Fill in `profiles` (those of the device's transport) and a config snippet for the first."""
    number = 0
    for device in devices:
        ids = device.vid_pid
        if device.kind == "midi":
            ids = (0, 0)  # MIDI profiles match by port name
        if ids is None:
            continue
        fitting = [
            p
            for p in registry.match_usb(*ids, device.product)
            if p.profile.transport == device.kind and _sends(device, p)
        ]
        device.profiles = [
            {"id": p.id, "transport": p.profile.transport, "file": str(p.path) if p.path else None} for p in fitting
        ]
        if fitting:
            number += 1
            device.config = snippet(device, f"dial{number}", [p.id for p in fitting])


def _sends(device: Device, loaded: LoadedProfile) -> bool:
    """An input device fits an evdev profile only if it sends the profile's events."""
    framing = loaded.profile.framing
    if device.kind != "evdev" or not isinstance(framing, EvdevFraming):
        return True
    sent = {parse_event(e) for e in device.events}
    return all(parse_event(e) in sent for e in framing.events.values())


def snippet(device: Device, dial_id: str, profile_ids: list[str]) -> str:
    """The [[dials]] table that uses `device` with the first of `profile_ids`."""
    lines = ["[[dials]]", f"id = {_toml(dial_id)}", f"profile = {_toml(profile_ids[0])}"]
    lines += [f"# or profile = {_toml(other)}" for other in profile_ids[1:]]
    if device.kind == "midi":
        lines.append(f"port = {_toml(_ALSA_NUMBERS.sub('', device.path))}")
    elif device.kind in ("serial", "evdev") and device.by_id:
        lines.append(f"port = {_toml(device.by_id)}")
    elif device.serial_number or device.kind in ("hid", "evdev"):
        if device.kind == "hid" and device.backend == "libusb" and hid_enum.LINUX:
            lines.append(f"port = {_toml('libusb:')}  # no hidraw node: read through libusb")
        lines.append(f"usb = {_toml(device.usb or '')}")
        if device.serial_number:
            lines.append(f"serial_number = {_toml(device.serial_number)}")
    else:  # a serial port without by-id link nor serial number: only its path tells it apart
        lines.append(f"port = {_toml(device.path)}")
    return "\n".join(lines)


def render(devices: list[Device], notes: list[str]) -> str:
    listed = [d for d in devices if d.usb or d.kind != "serial"]
    other = [d for d in devices if d.kind == "serial" and not d.usb]
    out: list[str] = []
    if not devices:
        out += ["No serial ports or HID devices found.", WHAT_TO_CHECK]
    elif not listed:
        out += ["No USB serial ports or HID devices found.", WHAT_TO_CHECK]
    for kind, title in ((k.name, k.title) for k in TRANSPORTS.kinds()):
        shown = [d for d in listed if d.kind == kind]
        if not shown:
            continue
        out.append(f"\n{title}:")
        for device in shown:
            out += _describe(device)
    if other:
        paths = ", ".join(d.path for d in other)
        out.append(
            f'\nOther serial ports (built in, not USB): {paths}. A dial wired to one is used with port = "<that path>".'
        )
    out += [f"\nNote: {note}" for note in notes]
    return "\n".join(out).lstrip("\n")


def _describe(device: Device) -> list[str]:
    facts = [f"usb {device.usb}"] if device.usb else []
    if device.serial_number:
        facts.append(f"serial number {device.serial_number}")
    if device.location:
        facts.append(f"location {device.location}")
    if device.interface is not None:
        facts.append(f"interface {device.interface}")
    name = " ".join(x for x in (device.manufacturer, device.product) if x)
    if name and device.kind != "midi":
        facts.append(repr(name))
    if device.backend == "libusb":
        facts.append("libusb only")
    lines = [f"  {device.path}  " + ", ".join(facts)]
    if device.by_id:
        lines.append(f"    stable path: {device.by_id}")
    if device.events:
        lines.append("    sends: " + ", ".join(device.events[:12]) + (" ..." if len(device.events) > 12 else ""))
    if device.note:
        lines.append(f"    note: {device.note}")
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
