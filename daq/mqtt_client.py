"""Moved to `daq.mqtt` (issue 12). What the recorder and watch still import, until they are ported.

No aiomqtt import here: delete this module once nothing imports it.
"""

from __future__ import annotations

from daq.mqtt.client import DaqClient, WireLog, make_client, tls_context
from daq.mqtt.refusal import REFUSAL_HINTS, REFUSALS, connect_failure, refusal

__all__ = [
    "REFUSALS",
    "REFUSAL_HINTS",
    "DaqClient",
    "WireLog",
    "connect_failure",
    "make_client",
    "refusal",
    "tls_context",
]
