"""Transports: where bytes come from. One factory, lazy imports, so a missing optional
library only matters to the profiles that need it."""

from __future__ import annotations

from daq.exceptions import ConfigError
from daq.profiles.model import Profile
from daq.profiles.serial_settings import SerialSettings
from daq.transports.attachment import Attachment
from daq.transports.base import Transport


def make_transport(profile: Profile, attachment: Attachment) -> Transport:
    """The transport for `profile`, attached where the station config says."""
    kind = profile.transport
    if kind == "serial":
        from daq.transports.serial import SerialTransport

        return SerialTransport(profile.serial or SerialSettings(), attachment)
    raise ConfigError(None, "profile.transport", f"the {kind} transport is not available in this dialdaq yet")
