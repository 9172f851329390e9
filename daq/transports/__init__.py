"""Transports: where bytes come from. One factory, lazy imports, so a missing optional
library only matters to the profiles that need it, and says so when the station starts:
the transports import their library when they are made, before any device is touched."""

from __future__ import annotations

from daq.exceptions import ConfigError
from daq.profiles.model import EvdevFraming, Profile, ReportFraming
from daq.profiles.serial_settings import SerialSettings
from daq.transports.attachment import Attachment
from daq.transports.base import Transport


def make_transport(profile: Profile, attachment: Attachment) -> Transport:
    """The transport for `profile`, attached where the station config says.

    Raises MissingExtraError (a FatalError) when the profile's library is not installed.
    """
    kind = profile.transport
    needed_by = f"profile {profile.id}"
    ids, products = profile.match.usb_ids(), profile.match.product
    if kind == "serial":
        from daq.transports.serial import SerialTransport

        return SerialTransport(profile.serial or SerialSettings(), attachment)
    if kind == "hid":
        from daq.transports.hid import HidTransport

        backend = profile.framing.backend if isinstance(profile.framing, ReportFraming) else "auto"
        return HidTransport(attachment, backend=backend, ids=ids, products=products, needed_by=needed_by)
    if kind == "evdev":
        from daq.transports.evdev_input import EvdevTransport

        assert isinstance(profile.framing, EvdevFraming)  # the model pairs them
        return EvdevTransport(attachment, profile.framing, ids=ids, products=products, needed_by=needed_by)
    if kind == "midi":
        from daq.transports.midi import MidiTransport

        return MidiTransport(attachment, products=products, needed_by=needed_by)
    raise ConfigError(None, "profile.transport", f"the {kind} transport is not available in this dialdaq")
