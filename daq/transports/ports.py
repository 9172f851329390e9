"""Serial port discovery: which port an `Attachment` means, right now.

Resolved at every open, so a dial that was replugged and came back under another /dev name
(ttyACM0 -> ttyACM1) is found again by its USB id, serial number or location. A `port`
given in the config wins and is returned as written (a /dev/serial/by-id/... symlink stays a
symlink: the transport resolves it when it opens).

`serial.tools.list_ports.comports` is looked up at call time, so tests can monkeypatch it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import serial.tools.list_ports

from daq.exceptions import ConfigError, DeviceUnavailable
from daq.transports.attachment import Attachment, describe_found, usb_id

BY_ID_DIR = Path("/dev/serial/by-id")


class PortInfo(Protocol):
    """What discovery reads from `serial.tools.list_ports.ListPortInfo`."""

    device: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    location: str | None
    product: str | None


@dataclass(frozen=True, slots=True)
class SerialPort:
    """One serial port as discovery sees it (plain data: `daq devices` prints it as JSON)."""

    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    location: str | None = None
    product: str | None = None
    by_id: str | None = None  # /dev/serial/by-id/... link to `device`, when udev made one

    @property
    def usb(self) -> str | None:
        """'vvvv:pppp' (lowercase hex), or None for a port that is not on USB."""
        if self.vid is None or self.pid is None:
            return None
        return usb_id(self.vid, self.pid)

    def describe(self) -> str:
        return describe_found(self.device, self)


def by_id_links(folder: Path | None = None) -> dict[str, str]:
    """Real device path -> its /dev/serial/by-id link (empty when udev made none)."""
    links: dict[str, str] = {}
    try:
        entries = sorted((folder or BY_ID_DIR).iterdir())
    except OSError:
        return links
    for entry in entries:
        links.setdefault(os.path.realpath(entry), str(entry))
    return links


def list_ports(infos: Iterable[PortInfo] | None = None) -> list[SerialPort]:
    """The serial ports present now, sorted by device path."""
    found = serial.tools.list_ports.comports() if infos is None else infos
    links = by_id_links()
    ports = [
        SerialPort(
            device=info.device,
            vid=info.vid,
            pid=info.pid,
            serial_number=info.serial_number or None,
            location=info.location or None,
            product=getattr(info, "product", None) or None,
            by_id=links.get(os.path.realpath(info.device)),
        )
        for info in found
    ]
    return sorted(ports, key=lambda p: p.device)


def matches(port: SerialPort, attachment: Attachment) -> bool:
    """Whether `port` fits every discovery key the attachment gives (usb, serial_number, location)."""
    if attachment.vid_pid is not None and (port.vid, port.pid) != attachment.vid_pid:
        return False
    if attachment.serial_number is not None and (
        port.serial_number is None or port.serial_number.casefold() != attachment.serial_number.casefold()
    ):
        return False
    # pyserial gives '1-1.2' for a one-interface device but '1-1.2:1.0' (the interface) for a
    # CDC-ACM board, which has two: accept the USB port path alone for either.
    return attachment.location is None or (
        port.location is not None and attachment.location in (port.location, port.location.split(":")[0])
    )


def resolve_port(attachment: Attachment, ports: Sequence[SerialPort] | None = None) -> str:
    """The port path to open for `attachment`.

    `port` given -> that path, as written. Otherwise the one present port matching the usb
    id, serial number and location given. None -> DeviceUnavailable saying what was looked
    for and what is present; several -> DeviceUnavailable listing them (add serial_number or
    location). An attachment with nothing to look for is a ConfigError.
    """
    if attachment.port:
        return attachment.port
    if attachment.is_empty:
        raise ConfigError(None, "port", "a serial dial needs `port` (a path) or `usb` (VID:PID) to find it: add one")
    present = list_ports() if ports is None else list(ports)
    wanted = attachment.describe()
    hits = [p for p in present if matches(p, attachment)]
    if len(hits) == 1:
        return hits[0].device
    if not hits:
        listed = "; ".join(p.describe() for p in present) if present else "none"
        raise DeviceUnavailable(
            f"no serial port matches {wanted} (is the dial plugged in?); present: {listed}. "
            "`daq devices` lists them with the config to use"
        )
    listed = "; ".join(p.describe() for p in hits)
    raise DeviceUnavailable(
        f"{len(hits)} ports match {wanted}: add serial_number or location to tell them apart ({listed})"
    )
