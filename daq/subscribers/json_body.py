"""A subscriber's first look at a payload: its JSON body, or nothing (an empty payload, one that is not JSON).

`daq lsl` and `daq watch` read every message the same way: an empty payload (a retained message
cleared) is skipped; one that is not JSON is counted in the subscriber's `invalid`, logged and skipped.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import orjson


class InvalidCount(Protocol):
    """A subscriber's counters: `invalid` counts the messages it could not read."""

    invalid: int


def json_body(
    topic: str, payload: bytes, stats: InvalidCount, log: logging.Logger, name: str, level: int = logging.WARNING
) -> tuple[bool, Any]:
    """`(True, body)`; `(False, None)` for an empty payload, or one that is not JSON (counted, logged at `level`)."""
    if not payload:
        return False, None
    try:
        return True, orjson.loads(payload)
    except orjson.JSONDecodeError:
        stats.invalid += 1
        log.log(level, "%s: %s is not JSON; ignored", name, topic)
        return False, None
