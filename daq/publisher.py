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
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from daq import mqtt
from daq.config import BrokerConfig, PublishConfig
from daq.mqtt.session import Backoff, SessionStats
from daq.outbox.base import Entry, Outbox

__all__ = ["REPLAY_MARK", "Backoff", "MessageHandler", "Publisher", "PublisherStats", "batches"]

log = logging.getLogger(__name__)

MessageHandler = Callable[[mqtt.Message], Awaitable[None]]
REPLAY_MARK = b',"replay":true}'


@dataclass(slots=True)
class PublisherStats(SessionStats):
    messages: int = 0
    samples: int = 0


class Publisher:
    def __init__(
        self,
        broker: BrokerConfig,
        publish: PublishConfig,
        client_id: str,
        outbox: Outbox,
        will: mqtt.Will,
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
        self.stats = PublisherStats()
        # paho keeps at most 20 QoS 1 messages in flight unless told: let the pipeline be as deep as configured.
        options = mqtt.ConnectOptions(client_id, will=will, clean=True, max_inflight=publish.max_inflight)
        self.session = mqtt.Session(
            broker,
            options,
            name="station",
            subscriptions=subscriptions,
            check_subscriptions=False,  # a subscription the ACL refuses is logged; the samples still go out
            backoff=backoff,
            stats=self.stats,
            drain_on_stop=True,
            on_disconnected=self._disconnected,
        )
        self._retained: OrderedDict[str, bytes] = OrderedDict()
        self._control: deque[tuple[str, bytes, bool]] = deque(maxlen=100_000)
        self._control_unacked: dict[int, tuple[str, bytes, bool]] = {}
        self._control_ids = 0
        # Published last, after the drain at stop (the station's `offline`): a subscriber sees it after every sample.
        self.final: tuple[str, bytes] | None = None
        self._wake = asyncio.Event()

    @property
    def backoff(self) -> Backoff:
        return self.session.backoff

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

        A fatal refusal before the first connect raises BrokerRefused, a connection that cannot be
        set up ConfigError; after that every fault is retried (see `daq.mqtt.session`). The caller
        bounds the drain (the station waits DRAIN_TIMEOUT_S, then cancels)."""
        await self.session.run(stop, functools.partial(self._connected, stop=stop))

    def _disconnected(self, reason: str | None) -> None:
        """After every connection (closed now: no PUBACK can come for what was in flight): requeue it."""
        back = self.outbox.requeue()
        if back:
            log.info("requeued %d unacknowledged messages", back)

    async def _connected(self, client: mqtt.Connection, stop: asyncio.Event) -> None:
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
            if pump not in done:
                raise mqtt.MqttError("connection lost")
        finally:
            for task in (listener, pump):
                task.cancel()
            await asyncio.gather(listener, pump, return_exceptions=True)

    async def _listen(self, client: mqtt.Connection) -> None:
        async for message in client.messages():
            if self.on_message is not None:
                try:
                    await self.on_message(message)
                except Exception:
                    log.exception("handling a message on %s failed", message.topic)

    async def _pump(self, client: mqtt.Connection, stop: asyncio.Event) -> bool:
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
                    raise mqtt.MqttError(f"the broker refused a message: {refused[0]}")
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
                    self.session.draining = True
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
