"""Ids that become MQTT topic levels: station, dial, topic root."""

from __future__ import annotations

import re
import socket
from typing import Annotated

from pydantic import AfterValidator

ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
_ID = re.compile(ID_PATTERN)
_NOT_ID_CHAR = re.compile(r"[^A-Za-z0-9_.-]+")

ID_RULE = "letters, digits, '_', '.', '-' only (no spaces, '/', '+', '#')"


def check_id(value: str) -> str:
    """Raise ValueError unless `value` is a valid id (for pydantic validators)."""
    if not _ID.match(value):
        raise ValueError(f"{value!r} is not a valid id: use {ID_RULE}")
    return value


def check_root(value: str) -> str:
    """A topic root is one or more id levels joined by '/'."""
    if not value or any(not _ID.match(level) for level in value.split("/")):
        raise ValueError(f"{value!r} is not a valid topic root: levels of {ID_RULE}, joined by '/'")
    return value


def sanitize_id(text: str, fallback: str = "station") -> str:
    """Make an id out of arbitrary text (a host name, a port path)."""
    cleaned = _NOT_ID_CHAR.sub("-", text).strip("-.")
    return cleaned or fallback


def default_station_id() -> str:
    return sanitize_id(socket.gethostname().split(".")[0])


# For pydantic models: a str field that must be a valid id / topic root.
IdStr = Annotated[str, AfterValidator(check_id)]
RootStr = Annotated[str, AfterValidator(check_root)]
