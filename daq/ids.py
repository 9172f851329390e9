"""Ids that become MQTT topic levels: station, dial, topic root."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator

ID_MAX_LENGTH = 64
"""Longest id: an id is a topic level and a recorder's file name, which file systems bound."""

ID_PATTERN = rf"^[A-Za-z0-9_.-]{{1,{ID_MAX_LENGTH}}}$"
_ID = re.compile(ID_PATTERN)
_NOT_ID_CHAR = re.compile(r"[^A-Za-z0-9_.-]+")

ID_RULE = f"letters, digits, '_', '.', '-' only (no spaces, '/', '+', '#'), at most {ID_MAX_LENGTH} of them"


def is_id(text: str) -> bool:
    """`text` is a valid id."""
    return _ID.fullmatch(text) is not None


def check_id(value: str, what: str = "id") -> str:
    """Raise ValueError unless `value` is a valid id (for pydantic validators; `what` names it in the error)."""
    if len(value) > ID_MAX_LENGTH:
        raise ValueError(f"{value[:20]!r}... is {len(value)} characters long: an id has at most {ID_MAX_LENGTH}")
    if not _ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid {what}: use {ID_RULE}")
    return value


def parse_stations(values: str | Iterable[str]) -> list[str]:
    """Station ids from `"lab-a"`, `"lab-a,lab-b"` or several of those; `+` means all (and wins)."""
    items = [values] if isinstance(values, str) else list(values)
    stations: list[str] = []
    for item in items:
        for part in (p.strip() for p in item.split(",")):
            if not part:
                continue
            if part != "+" and not is_id(part):
                raise ValueError(f"{part!r} is not a station id: use {ID_RULE}, or '+' for every station")
            if part not in stations:
                stations.append(part)
    if not stations or "+" in stations:
        return ["+"]
    return stations


def check_root(value: str) -> str:
    """A topic root is one or more id levels joined by '/'."""
    if not value or any(not _ID.fullmatch(level) for level in value.split("/")):
        raise ValueError(f"{value!r} is not a valid topic root: levels of {ID_RULE}, joined by '/'")
    return value


def sanitize_id(text: str, fallback: str = "station") -> str:
    """Make an id out of arbitrary text (a host name, a port path)."""
    cleaned = _NOT_ID_CHAR.sub("-", text).strip("-.")
    if len(cleaned) > ID_MAX_LENGTH:
        cleaned = cleaned[-ID_MAX_LENGTH:].strip("-.")  # the end of a port path is what tells ports apart
    return cleaned or fallback


def default_station_id() -> str:
    return sanitize_id(socket.gethostname().split(".")[0])


# For pydantic models: a str field that must be a valid id / topic root.
IdStr = Annotated[str, AfterValidator(check_id)]
RootStr = Annotated[str, AfterValidator(check_root)]
