"""What goes in and out of the MQTT layer, free of aiomqtt and paho: a received `Message`, a `Will`.

Callers (the station, the subscribers, the commands) see only these; `daq.mqtt.client` converts
from and to aiomqtt's types.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """One received PUBLISH.

    `mid` is the packet id the broker sent it with: what `Connection.ack` acknowledges on a
    connection opened with `manual_ack=True` (0 for QoS 0). `response_topic` and
    `correlation_data` are the MQTT 5 request/response properties (None under MQTT 3.1.1).
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    response_topic: str | None = None
    correlation_data: bytes | None = None
    mid: int = 0


@dataclass(frozen=True, slots=True)
class Will:
    """The Last Will the broker publishes when the connection is lost without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
