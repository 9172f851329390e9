"""Transports: where bytes come from. `make_transport` opens the kind a profile names, through
its entry in daq.transports.registry; a kind's module (and its optional library) is imported
only then, so a missing library only matters to the profiles that need it, and says so when the
station starts, before any device is touched."""

from __future__ import annotations

from typing import Protocol

from daq.exceptions import ConfigError
from daq.seams import resolve
from daq.transports.attachment import Attachment
from daq.transports.base import Transport
from daq.transports.registry import TRANSPORTS

__all__ = ["Attachment", "NamesTransport", "Transport", "make_transport"]


class NamesTransport(Protocol):
    """What make_transport reads of a profile (a daq.profiles.model.Profile) itself: its kind.
    Typed so, this package imports nothing of daq.profiles, which imports its registry."""

    @property
    def transport(self) -> str: ...


def make_transport(profile: NamesTransport, attachment: Attachment) -> Transport:
    """The transport for `profile` (a Profile), attached where the station config says.

    Raises MissingExtraError (a FatalError) when the profile's library is not installed.
    """
    kind = TRANSPORTS.get(profile.transport)
    if kind is None:
        raise ConfigError(
            None, "profile.transport", f"the {profile.transport} transport is not available in this dialdaq"
        )
    opened: Transport = resolve(kind.open)(profile, attachment)
    return opened
