"""The MQTT side of a station: connect, keep retained state, publish the outbox, reconnect.

- On every connect: the retained state (status online, session, every dial's meta) is
  published again, then control messages (events), then samples.
- Samples are pipelined: up to `max_inflight` messages are out at once, each acked in the
  outbox on PUBACK. Consecutive entries of one dial are batched into a JSON array (up to
  `batch_max`) when more than one is waiting.
- A lost connection requeues everything in flight (order kept) and reconnects with
  jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt

from daq.config import BrokerConfig, PublishConfig
from daq.exceptions import BrokerRefused
from daq.mqtt_client import DaqClient, connect_failure, make_client
from daq.outbox.base import Entry, Outbox

log = logging.getLogger(__name__)

MessageHandler = Callable[[aiomqtt.Client, aiomqtt.Message], Awaitable[None]]
REPLAY_MARK = b',"replay":true}'


@dataclass(slots=True)
class PublisherStats:
    connected: bool = False
    connects: int = 0
    disconnects: int = 0
    messages: int = 0
    samples: int = 0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class Backoff:
    first_s: float = 0.2
    max_s: float = 10.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, first * factor**attempt)]."""
        cap = min(self.max_s, self.first_s * self.factor**attempt)
        return random.uniform(cap / 2, cap)


class Publisher:
    def __init__(
        self,
        broker: BrokerConfig,
        publish: PublishConfig,
        client_id: str,
        outbox: Outbox,
        will: aiomqtt.Will,
        subscriptions: tuple[str, ...] = (),
        on_message: MessageHandler | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.broker = broker
        self.publish_config = publish
        self.client_id = client_id
        self.outbox = outbox
        self.will = will
        self.subscriptions = subscriptions
        self.on_message = on_message
        self.backoff = backoff or Backoff()
        self.stats = PublisherStats()
        self._retained: OrderedDict[str, bytes] = OrderedDict()
        self._control: deque[tuple[str, bytes, bool]] = deque(maxlen=100_000)
        self._wake = asyncio.Event()
        self._stopping = False
        self._connected_once = asyncio.Event()
        self._client: aiomqtt.Client | None = None

    # -- what the station hands over ------------------------------------------------

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Latest retained state of a topic: published now if connected, and again after every reconnect."""
        self._retained[topic] = payload
        self._control.append((topic, payload, True))
        self._wake.set()

    def send(self, topic: str, payload: bytes) -> None:
        """A non-retained control message (an event, a reply), QoS 1."""
        self._control.append((topic, payload, False))
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # -- the connection loop ----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set and everything read has been acknowledged (or `drain_s` ran out)."""
        attempt = 0
        while True:
            # paho keeps at most 20 QoS 1 messages in flight unless told: let the pipeline be as deep as configured.
            client = make_client(
                self.broker,
                self.client_id,
                will=self.will,
                clean=True,
                max_inflight_messages=self.publish_config.max_inflight,
            )
            try:
                async with client:
                    self._client = client
                    attempt = 0
                    self.stats.connected = True
                    self.stats.connects += 1
                    self._connected_once.set()
                    log.info("connected to %s as %s", self.broker.address.display(), self.client_id)
                    done = await self._connected(client, stop)
                    if done:
                        return
            except aiomqtt.MqttError as exc:
                fatal = connect_failure(exc, self.broker)
                if fatal and not self._connected_once.is_set():
                    raise BrokerRefused(fatal) from None
                self.stats.last_error = str(exc)
            finally:
                self._client = None
                if self.stats.connected:
                    self.stats.connected = False
                    self.stats.disconnects += 1
                back = self.outbox.requeue()
                if back:
                    log.info("requeued %d unacknowledged messages", back)
            if stop.is_set() and (self._stopping or not self._connected_once.is_set()):
                return
            delay = self.backoff.delay(attempt)
            attempt += 1
            log.warning(
                "broker %s unreachable (%s); retrying in %.1f s",
                self.broker.address.display(),
                self.stats.last_error or "connection lost",
                delay,
            )
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                continue
            # Stopping while disconnected: one more try to hand over what we hold, then give up.
            if self._stopping:
                return
            self._stopping = True

    async def _connected(self, client: DaqClient, stop: asyncio.Event) -> bool:
        for topic in self.subscriptions:
            await client.subscribe(topic, qos=1)
        # Republish the retained state first; it supersedes queued retained updates.
        self._control = deque(((t, p, r) for t, p, r in self._control if not r), maxlen=self._control.maxlen)
        for topic, payload in list(self._retained.items()):
            await client.publish(topic, payload, qos=1, retain=True, timeout=math.inf)
        listener = asyncio.create_task(self._listen(client))
        pump = asyncio.create_task(self._pump(client, stop))
        try:
            done, _ = await asyncio.wait({listener, pump}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises the MqttError that ended the connection
            return pump in done
        finally:
            for task in (listener, pump):
                task.cancel()
            await asyncio.gather(listener, pump, return_exceptions=True)

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if self.on_message is not None:
                try:
                    await self.on_message(client, message)
                except Exception:
                    log.exception("handling a message on %s failed", message.topic)

    async def _pump(self, client: DaqClient, stop: asyncio.Event) -> bool:
        """Send control messages and samples until stopped and drained."""
        cfg = self.publish_config
        stats = self.stats
        outbox = self.outbox
        inflight = 0
        room = asyncio.Event()  # set when a message in flight was acknowledged
        publish = client.publish_nowait

        def acked(entries: list[Entry] | None) -> None:
            nonlocal inflight
            inflight -= 1
            stats.messages += 1
            if entries is not None:
                outbox.ack(entries)
                stats.samples += len(entries)
            room.set()

        waiter: asyncio.Task[None] | None = None
        woken: asyncio.Task[bool] | None = None
        stopper: asyncio.Task[bool] | None = None
        try:
            while True:
                if inflight >= cfg.max_inflight:
                    room.clear()
                    await room.wait()
                    continue
                if self._control:
                    topic, payload, retain = self._control.popleft()
                    publish(topic, payload, functools.partial(acked, None), retain)
                    inflight += 1
                    continue
                if outbox.pending:
                    if cfg.batch_linger_ms and outbox.pending < cfg.batch_max:
                        await asyncio.sleep(cfg.batch_linger_ms / 1000)
                    for topic, payload, entries in batches(outbox.take(cfg.batch_max * 16), cfg.batch_max):
                        while inflight >= cfg.max_inflight:
                            room.clear()
                            await room.wait()
                        publish(topic, payload, functools.partial(acked, entries))
                        inflight += 1
                    continue
                if stop.is_set():
                    self._stopping = True
                    if inflight:
                        room.clear()
                        await room.wait()
                        continue
                    return True
                # Idle: wait for an entry, a control message or stop. The waiting tasks are kept
                # across idle spells; only the one that fired is made again.
                self._wake.clear()
                if waiter is None or waiter.done():
                    waiter = asyncio.create_task(outbox.wait())
                if woken is None or woken.done():
                    woken = asyncio.create_task(self._wake.wait())
                if stopper is None:
                    stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({waiter, woken, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, woken, stopper):
                if task is not None:
                    task.cancel()


def batches(entries: list[Entry], batch_max: int) -> list[tuple[str, bytes, list[Entry]]]:
    """Group entries by topic, order kept within a topic, at most `batch_max` per message."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.topic, []).append(entry)
    out: list[tuple[str, bytes, list[Entry]]] = []
    for topic, group in groups.items():
        for i in range(0, len(group), batch_max):
            part = group[i : i + batch_max]
            payloads = [e.payload[:-1] + REPLAY_MARK if e.replay else e.payload for e in part]
            body = payloads[0] if len(payloads) == 1 else b"[" + b",".join(payloads) + b"]"
            out.append((topic, body, part))
    return out
