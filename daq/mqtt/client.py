"""The client adapter: one broker connection, opened from the broker config, spoken to in daq's types.

- `connect(broker, options)`: an async context manager that opens one connection and yields a
  `Connection`; it raises `BrokerRefused` for a refusal retrying will not fix (see
  `daq.mqtt.refusal`), `ConfigError` when the connection cannot be set up (a password file or
  certificate that cannot be read), `MqttError` for anything transient.
- `Connection`: subscribe (a refused filter raises `BrokerRefused` naming it), publish and wait for
  the PUBACK, `publish_nowait` with an ack callback (for pipelining), `receive` / `messages` as
  `daq.mqtt.Message`, manual `ack`.

The one place that reads a password: it hands it to the client, and to `daq.redact` so that it is
masked should it ever reach a log line. `DaqClient` hooks aiomqtt 2.x internals (its socket
callbacks, `_misc_loop`, `_on_disconnect`, `_connected`, paho's `ack`); aiomqtt is pinned below 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from daq import redact
from daq.cadence import HOUSEKEEPING_S, sleep_to_grid
from daq.config import BrokerConfig
from daq.exceptions import BrokerRefused, ConfigError
from daq.mqtt.message import Message, Will
from daq.mqtt.refusal import connect_failure, refused_subscriptions, subscription_failure
from daq.mqtt.wire import NotConnected, WireIO

MqttError = aiomqtt.MqttError
"""A connection lost, a broker unreachable, an operation timed out: transient (the session retries)."""

PIPELINE_WARN_THRESHOLD = 100_000
CONNECT_TIMEOUT_S = 10
SUBSCRIBE_TIMEOUT_S = 30.0
UNSUBSCRIBE_TIMEOUT_S = 5.0
PUBLISH_TIMEOUT_S = 10.0

# paho's and aiomqtt's log lines; they follow daq's -v flags (paho logs every packet at debug).
PAHO_LOG = logging.getLogger("daq.mqtt.paho")

AckCallback = Callable[[str | None], None]


def misc_every(keepalive_s: float) -> float:
    """How often the keepalive check runs: a sixth of the keepalive, between 1 s and the grid's period."""
    return min(HOUSEKEEPING_S, max(1.0, keepalive_s / 6))


class PublishNowait(Protocol):
    def __call__(self, topic: str, payload: bytes, on_ack: AckCallback, retain: bool = False) -> None: ...


def tls_context(broker: BrokerConfig) -> ssl.SSLContext | None:
    if not broker.use_tls:
        return None
    tls = broker.tls
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    context.check_hostname = tls.check_hostname
    if not tls.check_hostname:
        context.verify_mode = ssl.CERT_REQUIRED  # still verify the chain, only not the name
    return context


def protocol_version(broker: BrokerConfig) -> aiomqtt.ProtocolVersion:
    return aiomqtt.ProtocolVersion.V5 if broker.protocol == "5" else aiomqtt.ProtocolVersion.V311


class WireLog(logging.LoggerAdapter[logging.Logger]):
    """One client's paho and aiomqtt log lines, passed on to PAHO_LOG; keeps the last error line.

    When the broker drops a connection, paho logs why (a TLS alert, say) but hands on only a bare
    "connection lost"; the last error line is how `DaqClient` can tell the user the reason.
    """

    def __init__(self) -> None:
        super().__init__(PAHO_LOG, {})
        self.last_error: str | None = None

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if level >= logging.ERROR:
            try:
                self.last_error = str(msg) % args if args else str(msg)
            except (TypeError, ValueError):
                self.last_error = str(msg)
        super().log(level, msg, *args, **kwargs)


class DaqClient(aiomqtt.Client):
    """An aiomqtt.Client that fails a connect attempt as soon as the broker drops it before CONNACK.

    aiomqtt would wait out its whole timeout and report "Operation timed out", although the broker
    has said why it hung up (with TLS 1.3, a broker that requires a client certificate checks it
    only after the handshake, then closes with an alert). This hooks aiomqtt 2.x internals
    (`_on_disconnect`, `_connected`); aiomqtt is pinned below 3.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.wire_log = WireLog()
        kwargs.setdefault("logger", cast(logging.Logger, self.wire_log))
        self._acks: dict[int, Callable[[str | None], None]] = {}
        self._connecting = False  # someone awaits the CONNACK (in __aenter__)
        self._threaded_writer = False  # registered for writing by aiomqtt's way, from another thread
        super().__init__(*args, **kwargs)
        self._wire = WireIO(self._loop, self._client, self._wire_error, self._acks)
        self._wire.deliver = self._deliver  # plain PUBLISHes skip paho's MQTTMessage (daq.mqtt.wire)
        self._waiters: list[asyncio.Future[None]] = []  # `wait_message` callers, woken together

    def _deliver(self, message: Message) -> None:
        """A message received by daq.mqtt.wire: into aiomqtt's queue, as its `_on_message` puts paho's."""
        try:
            self._queue.put_nowait(message)  # type: ignore[arg-type]  # Connection takes both kinds
        except asyncio.QueueFull:
            self._logger.warning("Message queue is full. Discarding message.")
        if self._waiters:
            self.wake()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        super()._on_message(client, userdata, message)  # what daq.mqtt.wire leaves to paho
        if self._waiters:
            self.wake()

    def wake(self, _done: object = None) -> None:
        """Wake every `wait_message` (a message came, the connection was lost, a caller's stop)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_message(self, within_s: float | None = None) -> None:
        """Return when a message is queued, on `wake()`, or after `within_s`; MqttError once the
        connection is lost and nothing is left to take. One future a wait, no task: aiomqtt's
        message iterator made a task for `queue.get()` and an `asyncio.wait` on every wait."""
        if not self._queue.empty():
            return
        self._check_connected()
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        timer = self._loop.call_later(within_s, self.wake) if within_s is not None else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self._waiters:  # cancelled, or woken by nobody yet
                self._waiters.remove(waiter)
        if self._queue.empty():
            self._check_connected()

    def _check_connected(self) -> None:
        disconnected = self._disconnected
        if disconnected.done():
            cause = None if disconnected.cancelled() else disconnected.exception()
            raise aiomqtt.MqttError("Disconnected during message iteration") from cause

    def ack_nowait(self, mid: int, qos: int) -> None:
        """Acknowledge received message `mid` (manual acks): its PUBACK goes with this turn's flush."""
        if qos == 1:
            self._wire.puback(mid)
        else:
            self._client.ack(mid, qos)

    async def __aenter__(self) -> DaqClient:
        """Connect; on any failure (a broker that never answers CONNECT, a refusal) close the socket.

        aiomqtt leaves a timed-out attempt's socket open and its keepalive loop running: paho then
        reports a disconnect long after, which (unawaited) left "Future exception was never
        retrieved" tracebacks in the log, once per attempt."""
        self._connecting = True
        try:
            await super().__aenter__()
        except BaseException:
            self._abandon()
            raise
        finally:
            self._connecting = False
        self._disconnected.add_done_callback(self.wake)  # a lost connection ends every wait_message
        return self

    def _abandon(self) -> None:
        """Drop a connection attempt for good: paho's socket closed, its reader and keepalive loop gone."""
        paho = self._client
        with contextlib.suppress(Exception):
            paho._reset_sockets()  # closes the socket; aiomqtt's socket callbacks unregister it
        misc = self._misc_task
        if misc is not None and not misc.done():
            misc.cancel()

    async def _misc_loop(self) -> None:
        """paho's keepalive check (a PINGREQ when the link was quiet for `keepalive` s; a dead link
        closed), on the daemon's wake-up grid (`daq.cadence`) instead of aiomqtt's own second: an
        idle station wakes once per grid point for everything. Checked every 5 s at the default
        30 s keepalive, every keepalive/6 s (at least 1 s) below that: a ping leaves at most a
        sixth of the keepalive late, well inside the broker's 1.5 x keepalive."""
        every = misc_every(self._client.keepalive)
        while self._client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await sleep_to_grid(every)

    # -- socket IO: see daq.mqtt.wire -----------------------------------------------------------

    def _wire_error(self, exc: Exception) -> None:
        if not self._disconnected.done():
            self._disconnected.set_exception(exc)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._wire.reset()
        super()._on_socket_open(client, userdata, sock)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._wire.reset()
        super()._on_socket_close(client, userdata, sock)

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if not self._wire.register_write():
            self._threaded_writer = True
            super()._on_socket_register_write(client, userdata, sock)

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._wire.unregister_write()
        if self._threaded_writer:
            self._threaded_writer = False
            super()._on_socket_unregister_write(client, userdata, sock)

    def publish_nowait(
        self, topic: str, payload: bytes, on_ack: Callable[[str | None], None], retain: bool = False
    ) -> None:
        """Publish at QoS 1 without a task, an Event or a future: `on_ack(failure)` runs on PUBACK
        (`failure` is None, or the broker's reason when an MQTT 5 PUBACK refused the message).

        For pipelining many messages: aiomqtt's `publish` costs a coroutine, an asyncio.Event
        and a scan of every pending call (`len(list(self._pending_calls))`) per message; the
        packet is built by `daq.mqtt.wire` (see there). Raises ValueError for a topic or payload
        MQTT cannot carry, MqttCodeError when not connected. A connection lost drops what was in
        flight: the caller sends it again on the next one.
        """
        try:
            mid = self._wire.publish(topic, payload, retain)
        except NotConnected:
            raise aiomqtt.MqttCodeError(mqtt.MQTT_ERR_NO_CONN, "Could not publish message") from None
        self._acks[mid] = on_ack

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not self._connected.done():
            if self._connecting:  # only while __aenter__ waits for it: else no one would retrieve it
                why = self.wire_log.last_error or str(reason_code)
                self._connected.set_exception(
                    aiomqtt.MqttError(f"the broker closed the connection before accepting it: {why}")
                )
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)


def make_client(
    broker: BrokerConfig,
    identifier: str | None,
    will: Will | None = None,
    clean: bool = True,
    **extra: Any,
) -> DaqClient:
    """The aiomqtt client for `broker` (low level: callers use `connect`, which wraps it)."""
    address = broker.address
    password = broker.effective_password()
    redact.register(password)
    kwargs: dict[str, Any] = {
        "hostname": address.host,
        "port": address.port,
        "username": broker.effective_username(),
        "password": password,
        "identifier": identifier,
        "protocol": protocol_version(broker),
        "will": None if will is None else aiomqtt.Will(will.topic, will.payload, will.qos, will.retain),
        "keepalive": broker.keepalive_s,
        "tls_context": tls_context(broker),
        "timeout": CONNECT_TIMEOUT_S,
    }
    if broker.protocol == "5":
        kwargs["clean_start"] = clean
    else:
        kwargs["clean_session"] = clean
    kwargs.update(extra)
    client = DaqClient(**kwargs)
    # aiomqtt warns once per publish beyond 10 unacknowledged; pipelining means hundreds on purpose.
    client.pending_calls_threshold = PIPELINE_WARN_THRESHOLD
    return client


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How to connect, beside the broker config.

    client_id: None lets the broker choose one (a random id). clean: False keeps the broker's
    session across connections (with `session_expiry_s` under MQTT 5). manual_ack: QoS 1 messages
    are acknowledged only by `Connection.ack` (write first, then acknowledge). max_inflight: QoS 1
    messages this client may have out unacknowledged (paho's default is 20; 0: no bound in paho,
    the caller bounds them). receive_maximum
    (MQTT 5): messages the broker may have out to us unacknowledged.
    """

    client_id: str | None = None
    will: Will | None = None
    clean: bool = True
    manual_ack: bool = False
    max_inflight: int | None = None
    receive_maximum: int | None = None
    session_expiry_s: int | None = None


def _client_for(broker: BrokerConfig, options: ConnectOptions) -> DaqClient:
    extra: dict[str, Any] = {}
    if options.max_inflight is not None:
        extra["max_inflight_messages"] = options.max_inflight
    if broker.protocol == "5" and (options.receive_maximum is not None or options.session_expiry_s is not None):
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if options.receive_maximum is not None:
            props.ReceiveMaximum = options.receive_maximum
        if options.session_expiry_s is not None:
            props.SessionExpiryInterval = options.session_expiry_s
        extra["properties"] = props
    client = make_client(broker, options.client_id, will=options.will, clean=options.clean, **extra)
    if options.manual_ack:
        # Acknowledge only what the caller says it holds: paho would acknowledge on receipt.
        client._client.manual_ack_set(True)
    return client


def _message(raw: aiomqtt.Message | Message) -> Message:
    if type(raw) is Message:  # made by daq.mqtt.wire
        return raw
    assert isinstance(raw, aiomqtt.Message)
    payload = raw.payload
    data = payload if isinstance(payload, bytes) else bytes(payload) if isinstance(payload, bytearray) else b""
    if isinstance(payload, str | int | float) and not isinstance(payload, bool):
        data = str(payload).encode()
    props = raw.properties
    response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
    correlation = getattr(props, "CorrelationData", None) if props is not None else None
    return Message(
        raw.topic.value,
        data,
        raw.qos,
        bool(raw.retain),
        response_topic or None,
        bytes(correlation) if correlation else None,
        raw.mid,
    )


class Connection:
    """One open connection (from `connect`); what callers may do with it, in daq's types."""

    def __init__(self, client: DaqClient, broker: BrokerConfig, options: ConnectOptions) -> None:
        self._client = client
        self.broker = broker
        self.options = options
        # publish_nowait(topic, payload, on_ack, retain=False): QoS 1 without a task or a future;
        # `on_ack(failure)` runs on PUBACK (failure: None, or the reason an MQTT 5 PUBACK refused it).
        # MqttError when paho does not take the message (not connected). Bound straight to the
        # client's: the publisher calls it once per message.
        self.publish_nowait: PublishNowait = client.publish_nowait

    @property
    def manual_ack(self) -> bool:
        return self.options.manual_ack

    @property
    def v5(self) -> bool:
        return self.broker.protocol == "5"

    # -- subscriptions ----------------------------------------------------------------

    async def subscribe(self, filters: Sequence[str], qos: int = 1, *, check: bool = True) -> list[tuple[str, str]]:
        """Subscribe to every filter in one SUBSCRIBE (retained messages come after all are in place).

        A filter the broker refuses raises BrokerRefused naming it (with check=False: logged and
        returned as (filter, reason) pairs)."""
        filters = list(filters)
        if not filters:
            return []
        granted = await self._client.subscribe([(topic, qos) for topic in filters], timeout=SUBSCRIBE_TIMEOUT_S)
        refused = refused_subscriptions(filters, list(granted))
        for topic, reason in refused:
            message = subscription_failure(self.broker, topic, reason)
            if check:
                raise BrokerRefused(message)
            logging.getLogger(__name__).warning("%s", message)
        return refused

    async def unsubscribe(self, filters: Sequence[str]) -> None:
        """MqttError when the broker does not confirm within UNSUBSCRIBE_TIMEOUT_S."""
        await self._client.unsubscribe(list(filters), timeout=UNSUBSCRIBE_TIMEOUT_S)

    # -- publishing -------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        *,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> None:
        """Publish one message and wait until the broker has it (PUBACK at QoS 1).

        The MQTT 5 request/response properties are sent only under MQTT 5."""
        properties: Properties | None = None
        if self.v5 and (response_topic is not None or correlation_data is not None):
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic is not None:
                properties.ResponseTopic = response_topic
            if correlation_data is not None:
                properties.CorrelationData = correlation_data
        await self._client.publish(topic, payload, qos, retain, properties=properties, timeout=PUBLISH_TIMEOUT_S)

    # -- receiving --------------------------------------------------------------------

    def receive_nowait(self) -> Message | None:
        """The next message if one is already here (no task, no wait), else None."""
        try:
            return _message(self._client._queue.get_nowait())
        except asyncio.QueueEmpty:
            return None

    async def wait(self, within_s: float | None = None) -> None:
        """Until a message is here to take (`receive_nowait`), `wake()` is called, or `within_s`
        passes; MqttError when the connection is lost and nothing is left. Wakes may be spurious:
        take with `receive_nowait` and wait again."""
        await self._client.wait_message(within_s)

    def wake(self) -> None:
        """End every `wait` now (a caller's stop)."""
        self._client.wake()

    async def receive(self) -> Message:
        """The next message; MqttError when the connection is lost.

        Safe to cancel (wait_for, a stop): a message that arrived meanwhile stays queued for the
        next call."""
        while True:
            ready = self.receive_nowait()
            if ready is not None:
                return ready
            await self.wait()

    async def messages(self) -> AsyncIterator[Message]:
        """Every message until the connection is lost (then MqttError)."""
        while True:
            yield await self.receive()

    @property
    def queued(self) -> int:
        """Messages received and not yet taken by `receive`."""
        return self._client._queue.qsize()

    def ack(self, message: Message) -> None:
        """Acknowledge a QoS 1 message received on this connection (with manual_ack; else a no-op)."""
        if self.options.manual_ack and message.qos > 0:
            self._client.ack_nowait(message.mid, message.qos)

    def close(self) -> None:
        """End every `wait` on this connection (what was not acknowledged, the broker sends again)."""
        self._client.wake()


@contextlib.asynccontextmanager
async def connect(broker: BrokerConfig, options: ConnectOptions | None = None) -> AsyncIterator[Connection]:
    """Open one connection to `broker`; disconnect when the block ends.

    Raises BrokerRefused (a refusal retrying will not fix: the message names the broker, the
    refusal and what to check, never the password), ConfigError (the connection cannot be set up:
    a password file or certificate that cannot be read), MqttError (transient: unreachable,
    restarting, timed out; and a connection lost inside the block)."""
    options = options or ConnectOptions()
    try:
        client = _client_for(broker, options)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(None, "broker", f"cannot set up the connection: {exc}") from None
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttError as exc:
            fatal = connect_failure(exc, broker)
            if fatal is not None:
                raise BrokerRefused(fatal) from None
            raise
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(None, "broker", f"cannot set up the connection: {exc}") from None
        connection = Connection(client, broker, options)
        stack.callback(connection.close)
        yield connection
