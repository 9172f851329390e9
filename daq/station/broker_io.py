"""Where the station meets the MQTT client's types: the Last Will it leaves, the messages it hears.

Everything else in `daq.station` works on plain `Inbound` values (topic, payload, response topic,
retained) and bytes, so a change of MQTT client touches this module only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message the station received."""

    topic: str
    payload: bytes
    response_topic: str | None  # MQTT 5 request/response: where the reply goes
    retained: bool  # handed over at subscribe (an earlier state), not published just now


def inbound(message: aiomqtt.Message) -> Inbound:
    """The parts of a received message the station uses."""
    payload = message.payload
    return Inbound(
        str(message.topic),
        bytes(payload) if isinstance(payload, bytes | bytearray) else b"",
        getattr(message.properties, "ResponseTopic", None) or None,
        bool(message.retain),
    )


def message_handler(
    route: Callable[[Inbound], Awaitable[None]],
) -> Callable[[aiomqtt.Client, aiomqtt.Message], Awaitable[None]]:
    """The publisher's `on_message` callback: each message, as `Inbound`, to `route`."""

    async def on_message(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        await route(inbound(message))

    return on_message


def last_will(topic: str, payload: bytes) -> aiomqtt.Will:
    """The station's Last Will: retained, QoS 1."""
    return aiomqtt.Will(topic, payload, qos=1, retain=True)
