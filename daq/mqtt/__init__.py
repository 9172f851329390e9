"""The MQTT layer: the only package under daq/ that imports aiomqtt or paho.

- `daq.mqtt.client`: `connect(broker, ConnectOptions(...))` opens one connection and yields a
  `Connection` (subscribe with a refusal check, publish, `publish_nowait` with ack callbacks on
  paho's mid for pipelining, `receive` / `messages`, manual `ack`).
- `daq.mqtt.session`: `Session`, which keeps a client connected: jittered exponential `Backoff`,
  a fatal refusal before the first connect raises BrokerRefused (exit 2), later faults are retried.
- `daq.mqtt.consume`: `consume` (take, write, then acknowledge, until stop) for subscribers.
- `daq.mqtt.refusal`: the one policy for failed connects that retrying will not fix.
- `daq.mqtt.message`: `Message` (a received PUBLISH) and `Will`, so callers need no aiomqtt types.

A subscriber, whole (write-then-ack; `daq record`, `daq lsl` and `daq watch` are this shape):

    from daq import mqtt

    session = mqtt.Session(
        broker,
        mqtt.ConnectOptions(client_id=None, clean=True, manual_ack=True),
        name="lsl",
        subscriptions=["daq/+/dials/+/samples"],
    )

    def handle(message: mqtt.Message) -> None:
        write(message.topic, message.payload)

    async def on_connected(connection: mqtt.Connection) -> None:
        await mqtt.consume(connection, stop, handle, commit=flush_files)

    await session.run(stop, on_connected)  # BrokerRefused / ConfigError at start: exit 2

A one-shot command (`daq status`, `daq session`):

    async with mqtt.connect(broker) as connection:
        await connection.subscribe(["daq/+/status"])
        message = await connection.receive()
"""

from __future__ import annotations

from daq.exceptions import BrokerRefused
from daq.mqtt.client import Connection, ConnectOptions, MqttError, connect
from daq.mqtt.consume import ACK_BATCH, consume, consume_until_quiet
from daq.mqtt.message import Message, Will
from daq.mqtt.refusal import connect_failure, refusal
from daq.mqtt.session import Backoff, Session, SessionStats

__all__ = [
    "ACK_BATCH",
    "Backoff",
    "BrokerRefused",
    "ConnectOptions",
    "Connection",
    "Message",
    "MqttError",
    "Session",
    "SessionStats",
    "Will",
    "connect",
    "connect_failure",
    "consume",
    "consume_until_quiet",
    "refusal",
]
