"""How discovery recognises a device: a profile's [match] table (USB ids, product strings)."""

from __future__ import annotations

from pydantic import Field

from daq.profiles.model_types import UsbId
from daq.validation import StrictModel


class Match(StrictModel):
    """How discovery recognises the device (`daq devices`).

    A profile matches a USB device when the VID:PID is in `usb` (or `usb` is empty) and,
    when `product` is given, the device's product string contains one of its entries
    (case-insensitive). Several profiles may match one device (many firmwares run on an
    Arduino Uno): the station config then names the profile.
    """

    usb: tuple[UsbId, ...] = Field(default=(), description="USB VID:PID pairs in hex, e.g. ['2341:0043', '1a86:7523']")
    product: tuple[str, ...] = Field(
        default=(),
        description="substrings of the USB product string (case-insensitive), e.g. ['ShuttleXpress']",
    )

    def usb_ids(self) -> frozenset[tuple[int, int]]:
        return frozenset((int(v, 16), int(p, 16)) for v, p in (u.split(":") for u in self.usb))
