"""The MQTT side of a station: connect, keep retained state, publish the outbox, reconnect.

- On every connect: the retained state (status online, session, every dial's meta) is
  published again, then control messages (events), then samples.
- Samples are pipelined: up to `max_inflight` messages are out at once, each acked in the
  outbox on PUBACK. Consecutive entries of one dial are batched into a JSON array (up to
  `batch_max`) when more than one is waiting.
- A dial's samples that come within `gather_ms` of its last message wait until then and go in one
  array (`daq.station.gather`): about 5 per message at 1 kHz, no wait at 100 Hz.
- A lost connection requeues everything in flight (order kept) and reconnects with
  jittered exponential backoff.
- A message the broker refuses (an MQTT 5 PUBACK with a failure reason: its ACL forbids the topic,
  a quota) costs that message only, never the connection or what is queued behind it:
  - a control message (an event, a reply) or a retained update is dropped: counted (`refused`),
    logged and handed to `on_refused` (the station reports it on `events`, rate-limited). Retrying
    would not help (an ACL does not change by asking again) and would hold up everything behind it;
    retained state is republished whole on the next connect anyway.
  - samples are kept: they stay unacknowledged in the outbox (counted in `samples_refused`), the
    rest keep flowing, and the refused ones are sent again after REFUSED_RETRY_S (doubling up to
    REFUSED_RETRY_MAX_S) and after every reconnect. A sample is what the station exists to deliver;
    a refusal may pass (a quota) or be fixed by the broker's admin, and the outbox is bounded and
    says what it drops. They may then arrive after later samples of their dial (marked replay).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import InitVar, dataclass, field

from daq import mqtt
from daq.config import BrokerConfig, PublishConfig
from daq.mqtt.session import Backoff, SessionStats
from daq.outbox.base import Entry, Outbox
from daq.station.gather import Gathering

__all__ = ["REPLAY_MARK", "Backoff", "MessageHandler", "Publisher", "PublisherStats", "bodies"]

log = logging.getLogger(__name__)

MessageHandler = Callable[[mqtt.Message], Awaitable[None]]
# topic, the broker's reason, how many messages were refused so far: a control message was dropped
OnRefused = Callable[[str, str, int], None]
REPLAY_MARK = b',"replay":true}'
REFUSED_RETRY_S = 5.0
REFUSED_RETRY_MAX_S = 60.0
REFUSED_LOG_EVERY_S = 10.0


@dataclass(slots=True)
class PublisherStats(SessionStats):
    messages: int = 0
    samples: int = 0
    refused: int = 0  # control messages (events, replies, retained updates) the broker refused: dropped
    samples_refused: int = 0  # sample refusals (each sample counted once per refusal): kept, sent again
    control_dropped: int = 0  # events and replies dropped unsent: the queue was full in a long outage


def _control_queue() -> deque[tuple[str, bytes, bool]]:
    return deque(maxlen=100_000)


@dataclass(slots=True, eq=False)
class Publisher:
    broker: BrokerConfig
    publish: PublishConfig
    client_id: str
    outbox: Outbox
    will: mqtt.Will
    subscriptions: tuple[str, ...] = ()
    on_message: MessageHandler | None = None
    backoff: InitVar[Backoff | None] = None  # the session's (`session.backoff`)
    stats: PublisherStats = field(default_factory=PublisherStats, init=False)
    session: mqtt.Session = field(init=False)
    _retained: OrderedDict[str, bytes] = field(default_factory=OrderedDict, init=False)
    _control: deque[tuple[str, bytes, bool]] = field(default_factory=_control_queue, init=False)
    _control_unacked: dict[int, tuple[str, bytes, bool]] = field(default_factory=dict, init=False)
    _control_ids: int = field(default=0, init=False)
    # Published last, after the drain at stop (the station's `offline`): a subscriber sees it after every sample.
    final: tuple[str, bytes] | None = field(default=None, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    on_refused: OnRefused | None = field(default=None, init=False)  # told of every control message refused
    _refused_held: int = field(default=0, init=False)  # refused samples in flight in the outbox, for their retry
    _refused_retry_at: float = field(default=0.0, init=False)
    _refused_delay: float = field(init=False)  # REFUSED_RETRY_S, read at construction
    _refused_logged: float = field(default=0.0, init=False)
    _acks_due: list[Entry] = field(default_factory=list, init=False)  # PUBACKed, not yet acked in the outbox

    def __post_init__(self, backoff: Backoff | None) -> None:
        self._refused_delay = REFUSED_RETRY_S
        # The pump bounds what is in flight (`max_inflight`); paho is told no bound of its own (0):
        # its default of 20 would queue the rest, and any bound makes it scan every message in
        # flight on each PUBACK (`_update_inflight`).
        options = mqtt.ConnectOptions(self.client_id, will=self.will, clean=True, max_inflight=0)
        self.session = mqtt.Session(
            self.broker,
            options,
            name="station",
            subscriptions=self.subscriptions,
            check_subscriptions=False,  # a subscription the ACL refuses is logged; the samples still go out
            backoff=backoff,
            stats=self.stats,
            drain_on_stop=True,
            on_disconnected=self._disconnected,
        )

    # -- what the station hands over ------------------------------------------------

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Latest retained state of a topic: published now if connected, and again after every reconnect."""
        self._retained[topic] = payload
        self._queue_control(topic, payload, True)

    def send(self, topic: str, payload: bytes) -> None:
        """A non-retained control message (an event, a reply), QoS 1."""
        self._queue_control(topic, payload, False)

    def _queue_control(self, topic: str, payload: bytes, retain: bool) -> None:
        """Queue a control message; when a long outage has filled the queue the oldest one goes, counted
        (health `broker.control_dropped`) and logged at the first drop and every 10,000th."""
        if len(self._control) == self._control.maxlen:
            self.stats.control_dropped += 1
            if self.stats.control_dropped % 10_000 == 1:
                log.warning(
                    "the broker is away and %d control messages wait: the oldest events and replies are "
                    "dropped (%d so far; samples are kept in the outbox)",
                    len(self._control),
                    self.stats.control_dropped,
                )
        self._control.append((topic, payload, retain))
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
        self._flush_acks()  # what was acknowledged stays so
        back = self.outbox.requeue()
        self._refused_held = 0  # requeued with the rest
        self._refused_delay = REFUSED_RETRY_S
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
        cfg = self.publish
        stats = self.stats
        outbox = self.outbox
        inflight = 0
        gathering = Gathering(cfg.gather_ms / 1000)
        room = asyncio.Event()  # set when a message in flight was acknowledged
        publish = client.publish_nowait

        loop = asyncio.get_running_loop()

        def acked(entries: list[Entry] | None, control_id: int | None, topic: str, failure: str | None) -> None:
            nonlocal inflight
            inflight -= 1
            room.set()
            if control_id is not None:
                self._control_unacked.pop(control_id, None)
            if failure is not None:  # the broker refused it: it costs this message only (see the module doc)
                self._refused(topic, failure, entries)
                return
            stats.messages += 1
            if entries is not None:
                # The PUBACKs read in one go are written to the outbox's ack file in one go, at the
                # end of this loop turn (and before any requeue: see `_flush_acks`).
                if not self._acks_due:
                    loop.call_soon(self._flush_acks)
                self._acks_due.extend(entries)

        # Woken by the outbox (an entry pending), a control message, or stop: one Event, no task per wake.
        wake = self._wake
        outbox.notify(wake)
        stopper = asyncio.create_task(self._wake_at(stop))
        try:
            while True:
                if self._refused_held and time.monotonic() >= self._refused_retry_at:
                    # Send refused samples again: once nothing is on the wire, everything in flight in the
                    # outbox is a refused sample, and requeue puts exactly those back at the front.
                    if inflight:
                        room.clear()
                        await room.wait()
                        continue
                    log.info("sending %d refused samples again", self._refused_held)
                    self._refused_held = 0
                    self._flush_acks()  # only the refused ones and the held ones are in flight then
                    gathering.clear()
                    outbox.requeue()
                if inflight >= cfg.max_inflight:
                    room.clear()
                    await room.wait()
                    continue
                if self._control:
                    topic, payload, retain = self._control[0]
                    self._control_ids += 1
                    control_id = self._control_ids
                    try:
                        publish(topic, payload, functools.partial(acked, None, control_id, topic), retain)
                    except ValueError as exc:  # not a topic paho will publish to: this message only
                        self._control.popleft()
                        self._refused(topic, f"not publishable: {exc}", None)
                        continue
                    self._control.popleft()  # only once paho took it
                    if not retain:  # retained state is republished whole on reconnect anyway
                        self._control_unacked[control_id] = (topic, payload, retain)
                    inflight += 1
                    continue
                # Stopping, nothing waits to gather (the drain sends what is held now).
                now = math.inf if stop.is_set() else loop.time()
                if outbox.pending or gathering.ready(now):
                    if cfg.batch_linger_ms and outbox.pending < cfg.batch_max:
                        await asyncio.sleep(cfg.batch_linger_ms / 1000)
                    taken = outbox.take(cfg.batch_max * 16) if outbox.pending else []
                    for topic, payload, entries in bodies(gathering.route(taken, now), cfg.batch_max):
                        while inflight >= cfg.max_inflight:
                            room.clear()
                            await room.wait()
                        publish(topic, payload, functools.partial(acked, entries, None, topic))
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
                # Idle: wait for an entry, a control message or stop (each sets `wake`).
                wake.clear()
                if not (outbox.pending or self._control or stop.is_set()):
                    due = gathering.deadline()  # held samples go at their deadline at the latest
                    timer = loop.call_at(due, wake.set) if due is not None else None
                    try:
                        await wake.wait()
                    finally:
                        if timer is not None:
                            timer.cancel()
        finally:
            stopper.cancel()
            self._flush_acks()

    async def _wake_at(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    def _flush_acks(self) -> None:
        """Acknowledge in the outbox the samples whose PUBACKs came (see `acked` in `_pump`)."""
        if self._acks_due:
            entries, self._acks_due = self._acks_due, []
            self.outbox.ack(entries)
            self.stats.samples += len(entries)

    def _refused(self, topic: str, reason: str, entries: list[Entry] | None) -> None:
        """The broker refused a message on `topic`: samples are kept for a retry, anything else is dropped."""
        stats = self.stats
        now = time.monotonic()
        if entries is not None:
            stats.samples_refused += len(entries)
            if not self._refused_held:
                self._refused_retry_at = now + self._refused_delay
                self._refused_delay = min(self._refused_delay * 2, REFUSED_RETRY_MAX_S)
            self._refused_held += len(entries)
            what = f"{len(entries)} samples kept, sent again later; {stats.samples_refused} refused so far"
        else:
            stats.refused += 1
            what = f"dropped; {stats.refused} messages refused so far"
        if now - self._refused_logged >= REFUSED_LOG_EVERY_S:
            self._refused_logged = now
            log.warning("the broker refused a message: %s (on %s: %s)", reason, topic, what)
        if entries is None and self.on_refused is not None:
            try:
                self.on_refused(topic, reason, stats.refused)
            except Exception:
                log.exception("reporting a refused message failed")


def bodies(groups: dict[str, list[Entry]], batch_max: int) -> list[tuple[str, bytes, list[Entry]]]:
    """The messages for entries grouped by topic: at most `batch_max` per message, order kept."""
    out: list[tuple[str, bytes, list[Entry]]] = []
    for topic, group in groups.items():
        for i in range(0, len(group), batch_max):
            part = group[i : i + batch_max]
            payloads = [e.payload[:-1] + REPLAY_MARK if e.replay else e.payload for e in part]
            body = payloads[0] if len(payloads) == 1 else b"[" + b",".join(payloads) + b"]"
            out.append((topic, body, part))
    return out
