"""The watch bridge: the IO of `daq watch`: one MQTT subscriber feeding the state, and the fan-out to pages.

It reads only the topics in CONTRACT.md, as any subscriber may, and hands every message to a
`WatchState` (`daq.subscribers.watch.state`, which needs no network). Every `PUSH_EVERY_S` it
takes what changed and gives it to every listener (the server's WebSockets, one per open page);
when nothing changed for `HEARTBEAT_S` a `tick` goes out, so a page can tell a quiet station
from a lost connection. Once a second the state drops what is older than its window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson

from daq import mqtt
from daq.config import BrokerConfig
from daq.subscribers.watch.state import WINDOW_S, WatchState
from daq.subscribers.watch.trace import BIN_S, Json
from daq.topics import subscriber_filters

PUSH_EVERY_S = 0.1
HEARTBEAT_S = 1.0

Listener = Callable[[bytes], None]


class WatchBridge:
    """The IO: subscribe, feed `state`, push updates to listeners every `PUSH_EVERY_S`.

    `run` raises BrokerRefused (exit 2) when the broker refuses it at the start; once connected,
    a lost connection is shown on the page (`broker.connected`, `broker.error`) and retried."""

    def __init__(
        self,
        broker: BrokerConfig,
        root: str = "daq",
        station: str = "+",
        client_id: str | None = None,
        bin_s: float = BIN_S,
        window_s: float = WINDOW_S,
        extra_meta: Json | None = None,
    ) -> None:
        self.broker_config = broker
        self.client_id = client_id
        self.mqtt_session = mqtt.Session(
            broker,
            mqtt.ConnectOptions(client_id=client_id, clean=True),
            name="watch",
            subscriptions=subscriber_filters(root, station),
            on_disconnected=self._disconnected,
        )
        self.state = WatchState(root, station, bin_s, window_s, page=dict(extra_meta or {}))
        self.state.broker["address"] = broker.address.display()
        self.listeners: set[Listener] = set()
        self.connected = self.mqtt_session.connected  # set while connected and subscribed

    def snapshot_bytes(self) -> bytes:
        return orjson.dumps(self.state.snapshot())

    def add_listener(self, listener: Listener) -> None:
        self.listeners.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def push(self) -> None:
        """Take what changed and hand it to every listener (a heartbeat goes out anyway, now and then)."""
        update = self.state.take_update()
        if update is None:
            return
        self._send(orjson.dumps(update))

    def _send(self, data: bytes) -> None:
        self.state.stats.pushes += 1
        for listener in list(self.listeners):
            listener(data)

    async def run(self, stop: asyncio.Event) -> None:
        pusher = asyncio.create_task(self._push_loop(stop), name="watch-push")
        try:
            await self._mqtt_loop(stop)
        finally:
            pusher.cancel()
            await asyncio.gather(pusher, return_exceptions=True)

    async def _push_loop(self, stop: asyncio.Event) -> None:
        last_beat = last_prune = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(PUSH_EVERY_S)
            now = time.monotonic()
            if now - last_prune >= 1.0:
                last_prune = now
                self.state.prune(time.time_ns())
            before = self.state.stats.pushes
            self.push()
            if self.state.stats.pushes != before:
                last_beat = now
            elif now - last_beat >= HEARTBEAT_S:
                last_beat = now
                self._send(orjson.dumps({"type": "tick", "t_ns": time.time_ns()}))

    async def _mqtt_loop(self, stop: asyncio.Event) -> None:
        async def on_connected(connection: mqtt.Connection) -> None:
            self.state.set_broker(True)
            await mqtt.consume(connection, stop, self._take)

        await self.mqtt_session.run(stop, on_connected)

    def _disconnected(self, reason: str | None) -> None:
        self.state.set_broker(False, reason or "")

    def _take(self, message: mqtt.Message) -> None:
        self.state.handle(message.topic, message.payload)
