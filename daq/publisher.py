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
import random
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt

from daq.config import BrokerConfig, PublishConfig
from daq.exceptions import BrokerRefused, ConfigError
from daq.mqtt_client import DaqClient, connect_failure, make_client
from daq.outbox.base import Entry, Outbox

log = logging.getLogger(__name__)

MessageHandler = Callable[[aiomqtt.Client, aiomqtt.Message], Awaitable[None]]
REPLAY_MARK = b',"replay":true}'
STABLE_CONNECTION_S = 5.0


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
        """Jittered: uniform in [cap/2, cap], cap = min(max, first * factor**attempt)."""
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
        self._control_unacked: dict[int, tuple[str, bytes, bool]] = {}
        self._control_ids = 0
        # Published last, after the drain at stop (the station's `offline`): a subscriber sees it after every sample.
        self.final: tuple[str, bytes] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._connected_once = asyncio.Event()
        self._connected_at = 0.0
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

    # -- the connection loop ----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set and everything read has been acknowledged, then `final`.

        The caller bounds the drain (the station waits DRAIN_TIMEOUT_S, then cancels)."""
        attempt = 0
        while True:
            try:
                await self._connect_once(stop)
                return
            except aiomqtt.MqttError as exc:
                fatal = connect_failure(exc, self.broker)
                if fatal and not self._connected_once.is_set():
                    raise BrokerRefused(fatal) from None
                self.stats.last_error = str(exc)
            except (OSError, ssl.SSLError, ConfigError) as exc:
                # The password file or a certificate cannot be read: fatal at start; later on it is
                # retried (a file being rotated must not stop a station in the middle of a session).
                if not self._connected_once.is_set():
                    raise ConfigError(None, "broker", f"cannot set up the connection: {exc}") from None
                self.stats.last_error = f"connection setup: {exc}"
            finally:
                self._client = None
                if self.stats.connected:
                    self.stats.connected = False
                    self.stats.disconnects += 1
                    attempt = 0 if self._lasted() else attempt
                back = self.outbox.requeue()
                if back:
                    log.info("requeued %d unacknowledged messages", back)
            if stop.is_set() and (self._stopping or not self._connected_once.is_set()):
                return
            delay = self.backoff.delay(attempt)
            attempt += 1
            log.warning(
                "broker %s: %s; retrying in %.1f s",
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

    def _lasted(self) -> bool:
        """A connection that held for a while resets the backoff; one kicked off at once does not
        (a second daemon with the same client id would otherwise make both reconnect in a tight loop)."""
        return time.monotonic() - self._connected_at > STABLE_CONNECTION_S

    async def _connect_once(self, stop: asyncio.Event) -> None:
        # paho keeps at most 20 QoS 1 messages in flight unless told: let the pipeline be as deep as configured.
        client = make_client(
            self.broker,
            self.client_id,
            will=self.will,
            clean=True,
            max_inflight_messages=self.publish_config.max_inflight,
        )
        async with client:
            self._client = client
            self._connected_at = time.monotonic()
            self.stats.connected = True
            self.stats.connects += 1
            self._connected_once.set()
            log.info("connected to %s as %s", self.broker.address.display(), self.client_id)
            if not await self._connected(client, stop):
                raise aiomqtt.MqttError("connection lost")

    async def _connected(self, client: DaqClient, stop: asyncio.Event) -> bool:
        for topic in self.subscriptions:
            await client.subscribe(topic, qos=1)
        # Control messages sent but not acknowledged on the last connection go first again (an event
        # or a reply lost to the outage would be gone for good); then the retained state, which
        # supersedes any queued retained update; then what was queued.
        queued = [(t, p, r) for t, p, r in self._control if not r]
        self._control = deque(
            [*self._control_unacked.values(), *((t, p, True) for t, p in self._retained.items()), *queued],
            maxlen=self._control.maxlen,
        )
        self._control_unacked.clear()
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

        refused: list[str] = []

        def acked(entries: list[Entry] | None, control_id: int | None, failure: str | None) -> None:
            nonlocal inflight
            inflight -= 1
            room.set()
            if failure is not None:  # the broker refused it: keep it (requeued on reconnect), say why
                refused.append(failure)
                return
            stats.messages += 1
            if control_id is not None:
                self._control_unacked.pop(control_id, None)
            if entries is not None:
                outbox.ack(entries)
                stats.samples += len(entries)

        waiter: asyncio.Task[None] | None = None
        woken: asyncio.Task[bool] | None = None
        stopper: asyncio.Task[bool] | None = None
        try:
            while True:
                if refused:
                    raise aiomqtt.MqttError(f"the broker refused a message: {refused[0]}")
                if inflight >= cfg.max_inflight:
                    room.clear()
                    await room.wait()
                    continue
                if self._control:
                    topic, payload, retain = self._control[0]
                    self._control_ids += 1
                    control_id = self._control_ids
                    publish(topic, payload, functools.partial(acked, None, control_id), retain)
                    self._control.popleft()  # only once paho took it
                    if not retain:  # retained state is republished whole on reconnect anyway
                        self._control_unacked[control_id] = (topic, payload, retain)
                    inflight += 1
                    continue
                if outbox.pending:
                    if cfg.batch_linger_ms and outbox.pending < cfg.batch_max:
                        await asyncio.sleep(cfg.batch_linger_ms / 1000)
                    for topic, payload, entries in batches(outbox.take(cfg.batch_max * 16), cfg.batch_max):
                        while inflight >= cfg.max_inflight:
                            room.clear()
                            await room.wait()
                        publish(topic, payload, functools.partial(acked, entries, None))
                        inflight += 1
                    continue
                if stop.is_set():
                    self._stopping = True
                    if inflight:
                        room.clear()
                        await room.wait()
                        continue
                    if self.final is not None:  # drained: now the last word
                        topic, payload = self.final
                        self.final = None
                        self._retained[topic] = payload
                        self._control.append((topic, payload, True))
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
