"""Where the station meets the MQTT layer's types: the Last Will it leaves, the messages it hears.

Everything else in `daq.station` but the publisher (daq.station.publisher, the station's MQTT side)
works on plain `Inbound` values (topic, payload, response topic, retained) and bytes. The client
itself (aiomqtt, paho) is behind `daq.mqtt`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from daq import mqtt


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message the station received."""

    topic: str
    payload: bytes
    response_topic: str | None  # MQTT 5 request/response: where the reply goes
    retained: bool  # handed over at subscribe (an earlier state), not published just now


def inbound(message: mqtt.Message) -> Inbound:
    """The parts of a received message the station uses."""
    return Inbound(message.topic, message.payload, message.response_topic, message.retain)


def message_handler(route: Callable[[Inbound], Awaitable[None]]) -> Callable[[mqtt.Message], Awaitable[None]]:
    """The publisher's `on_message` callback: each message, as `Inbound`, to `route`."""

    async def on_message(message: mqtt.Message) -> None:
        await route(inbound(message))

    return on_message


def last_will(topic: str, payload: bytes) -> mqtt.Will:
    """The station's Last Will: retained, QoS 1."""
    return mqtt.Will(topic, payload, qos=1, retain=True)
