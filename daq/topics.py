"""The topic tree of one station, as CONTRACT.md fixes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload


class _Leaf:
    """A topic right under the station, named by the attribute: `status = _Leaf()` is '<root>/<station>/status'."""

    name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, topics: None, owner: type | None = None) -> _Leaf: ...
    @overload
    def __get__(self, topics: Topics, owner: type | None = None) -> str: ...
    def __get__(self, topics: Topics | None, owner: type | None = None) -> str | _Leaf:
        return self if topics is None else f"{topics.base}/{self.name}"


@dataclass(frozen=True, slots=True)
class Topics:
    root: str
    station: str

    status = _Leaf()
    session = _Leaf()
    health = _Leaf()
    events = _Leaf()

    @property
    def base(self) -> str:
        return f"{self.root}/{self.station}"

    def meta(self, dial: str) -> str:
        return f"{self.base}/dials/{dial}/meta"

    def samples(self, dial: str) -> str:
        return f"{self.base}/dials/{dial}/samples"

    def cmd(self, verb: str) -> str:
        return f"{self.base}/cmd/{verb}"

    def cmd_reply(self, verb: str) -> str:
        return f"{self.base}/cmd/{verb}/reply"

    @property
    def cmd_filter(self) -> str:
        return f"{self.base}/cmd/+"


def subscriber_filters(root: str, station: str) -> list[str]:
    """What a subscriber of one station (or '+' for all) listens to."""
    base = f"{root}/{station}"
    return [
        f"{base}/status",
        f"{base}/session",
        f"{base}/events",
        f"{base}/dials/+/meta",
        f"{base}/dials/+/samples",
    ]


def parse_topic(root: str, topic: str) -> tuple[str, str, str | None]:
    """'daq/lab-a/dials/p07/samples' -> ('lab-a', 'samples', 'p07'); ('lab-a', 'status', None)."""
    rest = topic[len(root) + 1 :] if topic.startswith(root + "/") else topic
    parts = rest.split("/")
    if len(parts) == 4 and parts[1] == "dials":
        return parts[0], parts[3], parts[2]
    if len(parts) >= 2:
        return parts[0], "/".join(parts[1:]), None
    return parts[0], "", None
