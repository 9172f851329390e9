"""The transport kinds: one entry per kind, everything dialdaq needs to know about it.

A profile's `transport` names an entry here. The entry says which framings the kind carries
(profile validation), how to open one for a profile (`make_transport`), how `daq devices` lists
what is plugged in, how `daq doctor` checks a configured dial, which device nodes the udev rules
open up (`scripts/gen-udev`), and which optional library it needs (the pip extra and the modules
to import, which `daq doctor` looks for).

Code is named by 'module:attribute' strings (daq.seams), so this module imports no transport and
no optional library: listing the kinds costs nothing, and a kind's library is imported when a
dial of that kind is made. Adding a transport is its module plus one `TransportKind` line in
BUILTIN. `TRANSPORTS` is the table everything reads (`TRANSPORTS.get(name)`, `.names()`, `.kinds()`);
a lab's or a test's kind is added at run time with `TRANSPORTS.register(kind)` (`.unregister(name)`,
or `with TRANSPORTS.registered(kind):`).

Hook signatures (the referenced callables):
    open(profile: Profile, attachment: Attachment) -> Transport
    devices(notes: list[str]) -> list[daq.commands.devices.Device]   (a missing library is a note)
    doctor(report: DialReport, profile: Profile, attachment: Attachment) -> None
"""

from __future__ import annotations

from dataclasses import dataclass

from daq.seams import Extra, Ref, Registry

__all__ = ["BUILTIN", "TRANSPORTS", "Extra", "TransportKind"]


@dataclass(frozen=True)
class TransportKind:
    """One transport kind (a profile's `transport`)."""

    name: str
    framings: tuple[str, ...]  # framing kinds it can carry, daq.profiles.framing_registry
    open: Ref  # (profile, attachment) -> Transport
    title: str  # the `daq devices` section, e.g. "Serial ports"
    devices: Ref | None = None  # (notes) -> list[Device], for `daq devices`
    doctor: Ref | None = None  # (report, profile, attachment) -> None, for `daq doctor`
    udev: tuple[str, ...] = ()  # device node subsystems the udev rules grant: tty, hidraw, usb, input
    udev_bluetooth: bool = False  # also grant the device over Bluetooth (HID bus 0005)
    udev_modemmanager_ignore: bool = False  # tell ModemManager to keep off it (serial ports)
    extra: Extra | None = None  # None: its library comes with dialdaq


BUILTIN: tuple[TransportKind, ...] = (
    TransportKind(
        "serial",
        framings=("line", "binary"),
        open="daq.transports.serial:open_serial",
        title="Serial ports",
        devices="daq.commands.devices:serial_devices",
        doctor="daq.diagnose.doctor:check_serial",
        udev=("tty",),
        udev_modemmanager_ignore=True,
    ),
    TransportKind(
        "hid",
        framings=("report",),
        open="daq.transports.hid:open_hid",
        title="HID devices",
        devices="daq.commands.devices:hid_devices",
        doctor="daq.diagnose.doctor:check_hid",
        udev=("hidraw", "usb", "input"),
        udev_bluetooth=True,
    ),
    TransportKind(
        "evdev",
        framings=("evdev",),
        open="daq.transports.evdev_input:open_evdev",
        title="Input devices",
        devices="daq.commands.devices:input_devices",
        doctor="daq.diagnose.doctor:check_evdev",
        udev=("input",),
        udev_bluetooth=True,
        extra=Extra("evdev", ("evdev",)),
    ),
    TransportKind(
        "midi",
        framings=("midi",),
        open="daq.transports.midi:open_midi",
        title="MIDI ports",
        devices="daq.commands.devices:midi_ports",
        doctor="daq.diagnose.doctor:check_midi",
        extra=Extra("midi", ("mido", "rtmidi")),
    ),
)

TRANSPORTS: Registry[TransportKind] = Registry("transport kind", BUILTIN)
"""The transport kinds: the built-in ones, then any registered at run time."""
