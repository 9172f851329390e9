"""Where a device is attached: station config, never a profile.

Give a `port` (a path, best a stable one such as /dev/serial/by-id/...), or let discovery
find the device by `usb` VID:PID, optionally narrowed by `serial_number` or `location`
(the USB port path, stable across replugging into the same socket).
"""

from __future__ import annotations

import re
from typing import Protocol

from pydantic import Field, field_validator

from daq.validation import StrictModel

USB_ID = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")


def usb_id(vid: int, pid: int) -> str:
    """'vvvv:pppp', lowercase hex: how dialdaq writes a USB id everywhere (config, listings, messages)."""
    return f"{vid:04x}:{pid:04x}"


def parse_usb_id(text: str | None) -> tuple[int, int] | None:
    """(vid, pid) of 'vvvv:pppp' (as `usb_id` writes it), None for None or ''."""
    if not text:
        return None
    vid, pid = text.split(":")
    return int(vid, 16), int(pid, 16)


class Attachment(StrictModel):
    port: str | None = Field(None, description="device path, e.g. /dev/ttyACM0, /dev/serial/by-id/..., COM3")
    usb: str | None = Field(None, description="USB VID:PID in hex, e.g. '2341:0043'")
    serial_number: str | None = Field(None, description="USB serial number, to tell identical dials apart")
    location: str | None = Field(None, description="USB location (port path), e.g. '1-1.2'")

    @field_validator("usb")
    @classmethod
    def _usb_id(cls, value: str | None) -> str | None:
        if value is not None and not USB_ID.match(value):
            raise ValueError("write the USB id as four hex digits, a colon, four hex digits, e.g. '2341:0043'")
        return value.lower() if value else value

    @property
    def vid_pid(self) -> tuple[int, int] | None:
        return parse_usb_id(self.usb)

    @property
    def is_empty(self) -> bool:
        return not (self.port or self.usb or self.serial_number or self.location)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.model_dump().items() if v]
        return ", ".join(parts) or "(anywhere)"


class Found(Protocol):
    """What discovery tells of a device found (a serial port, a HID device): the keys an attachment matches."""

    @property
    def usb(self) -> str | None: ...
    @property
    def serial_number(self) -> str | None: ...
    @property
    def location(self) -> str | None: ...
    @property
    def product(self) -> str | None: ...


def describe_found(path: str, found: Found) -> str:
    """'PATH usb=vvvv:pppp serial_number=... location=... product='...'', the keys it has."""
    parts = [path]
    if found.usb:
        parts.append(f"usb={found.usb}")
    if found.serial_number:
        parts.append(f"serial_number={found.serial_number}")
    if found.location:
        parts.append(f"location={found.location}")
    if found.product:
        parts.append(f"product={found.product!r}")
    return " ".join(parts)
