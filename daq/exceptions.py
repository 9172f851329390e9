"""The errors dialdaq raises.

`DaqError` is the root. `FatalError` subclasses stop the daemon before it touches anything
(a broken config or profile): they carry the file, the key and what to do. `TransientError`
subclasses are retried (a device or broker that went away).
"""

from __future__ import annotations

from pathlib import Path


class DaqError(Exception):
    """Root of every error dialdaq raises on purpose."""


class FatalError(DaqError):
    """Refuse to start: the user has to change something first."""


class ConfigError(FatalError):
    """A config or profile file is wrong. The message names the file, the key and the fix."""

    def __init__(self, file: str | Path | None, key: str | None, problem: str) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.problem = problem
        where = self.file or "<command line>"
        if key:
            where = f"{where}: {key}"
        super().__init__(f"{where}: {problem}")


class ProfileError(ConfigError):
    """A firmware profile file is wrong."""


class MissingExtraError(FatalError):
    """A profile needs an optional library that is not installed."""

    def __init__(self, library: str, extra: str, needed_by: str) -> None:
        self.library = library
        self.extra = extra
        super().__init__(f"{needed_by} needs the '{library}' library: install it with pip install 'dialdaq[{extra}]'")


class TransientError(DaqError):
    """Something went away and will be retried."""


class DeviceUnavailable(TransientError):
    """A device could not be opened (absent, busy, or not readable yet)."""


class DeviceGone(TransientError):
    """A device that was open stopped answering (unplugged)."""


class BrokerRefused(FatalError):
    """The broker refused us for a reason retrying will not fix (bad password, not authorised)."""
