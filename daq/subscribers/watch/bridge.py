"""The watch bridge: the IO of `daq watch`: one MQTT subscriber feeding the state, and the fan-out to pages.

It reads only the topics in CONTRACT.md, as any subscriber may, and hands every message to a
`WatchState` (`daq.subscribers.watch.state`, which needs no network). Every `PUSH_EVERY_S` it
takes what changed and gives it to every listener (the server's WebSockets, one per open page);
when nothing changed for `HEARTBEAT_S` a `tick` goes out, so a page can tell a quiet station
from a lost connection. Once a second the state drops what is older than its window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiomqtt
import orjson

from daq.config import BrokerConfig
from daq.mqtt_client import make_client, refusal
from daq.publisher import Backoff
from daq.subscribers.watch.state import WINDOW_S, WatchState
from daq.subscribers.watch.trace import BIN_S, Json
from daq.topics import subscriber_filters

log = logging.getLogger(__name__)

PUSH_EVERY_S = 0.1
HEARTBEAT_S = 1.0

Listener = Callable[[bytes], None]


class WatchBridge:
    """The MQTT side: subscribe, feed `state`, push updates to listeners every `PUSH_EVERY_S`."""

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
        self.state = WatchState(root, station, bin_s, window_s, page=dict(extra_meta or {}))
        self.state.broker["address"] = broker.address.display()
        self.listeners: set[Listener] = set()
        self.connected = asyncio.Event()
        self.fatal: str | None = None

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
        attempt = 0
        backoff = Backoff()
        while not stop.is_set():
            try:
                async with make_client(self.broker_config, self.client_id, clean=True) as client:
                    attempt = 0
                    for topic in subscriber_filters(self.state.root, self.state.station_filter):
                        await client.subscribe(topic, qos=1)
                    self.state.set_broker(True)
                    self.connected.set()
                    await self._consume(client, stop)
                    return
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                why = refusal(exc)
                self.state.set_broker(False, why or str(exc))
                if why is not None:
                    self.fatal = f"broker {self.broker_config.address.display()} refused the connection: {why}"
                    log.error("watch: %s", self.fatal)
                    return
                delay = backoff.delay(attempt)
                attempt += 1
                log.warning("watch: broker unreachable (%s); retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _consume(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        messages = aiter(client.messages)
        try:
            while True:
                getter = asyncio.ensure_future(anext(messages))
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    message = getter.result()
                    payload = message.payload
                    data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                    self.state.handle(str(message.topic), data)
                else:
                    getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
                if stopper in done:
                    return
        finally:
            stopper.cancel()
