"""Build aiomqtt clients from the broker config: address, credentials, TLS, protocol.

The one place that reads a password: it hands it to the client, and to `daq.redact` so that
it is masked should it ever reach a log line.

`connect_failure` tells a failed connect that retrying will not fix (a refused login, a broker
certificate that does not verify, a client certificate the broker requires) from one that goes
away by itself (a broker restarting), and says what to check.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any, cast

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from daq import redact
from daq.config import BrokerConfig

PASSWORD_HINT = (
    "Check broker.username and the password (DAQ_BROKER_USERNAME, DAQ_BROKER_PASSWORD or "
    "broker.password_file) against the broker's password file"
)

# CONNACK reason codes that retrying will not fix. paho hands MQTT 3.1.1 return codes over
# converted to these MQTT 5 numbers (3.1.1's 1 -> 132, 2 -> 133, 4 -> 134, 5 -> 135), so one
# table serves both protocols; 4 and 5 stay for a client that passes raw 3.1.1 codes.
REFUSALS: dict[int, str] = {
    4: "bad user name or password",
    5: "not authorised (a wrong user name or password, or a user the broker does not let in)",
    132: "unsupported protocol version",
    133: "client identifier not valid",
    134: "bad user name or password",
    # Mosquitto answers a wrong password with 135, not 134.
    135: "not authorised (a wrong user name or password, or a user the broker does not let in)",
    138: "banned",
    140: "bad authentication method",
}
REFUSAL_HINTS: dict[int, str] = {
    4: PASSWORD_HINT,
    5: PASSWORD_HINT,
    132: 'The broker does not speak MQTT 5: set broker.protocol = "3.1.1" (or --mqtt-protocol 3.1.1)',
    133: "Check broker.client_id (default daq-<station>): the broker refuses it",
    134: PASSWORD_HINT,
    135: PASSWORD_HINT + ", and that the broker's ACL lets this user in",
    138: "The broker has banned this client: ask its administrator",
    140: "The broker wants another authentication method: ask its administrator",
}

TLS_VERIFY_HINT = (
    "Check broker.tls.ca_file (the CA that signed the broker's certificate; default: the system's "
    "CAs) and that the host in broker.url is a name the certificate was made for; "
    "broker.tls.check_hostname = false skips the name check only"
)
# TLS failures, recognised by OpenSSL's reason names in the error text: (marker, reason, hint).
TLS_PROBLEMS: tuple[tuple[str, str, str], ...] = (
    (
        "CERTIFICATE_REQUIRED",
        "the broker requires a client certificate",
        "Set broker.tls.cert_file and broker.tls.key_file to a certificate signed by a CA the "
        "broker trusts (its cafile)",
    ),
    *(
        (
            marker,
            "the broker does not accept the client certificate",
            "Check broker.tls.cert_file and key_file: a current certificate signed by a CA the broker "
            "trusts (its cafile), and the key that belongs to it",
        )
        for marker in ("ALERT_UNKNOWN_CA", "ALERT_BAD_CERTIFICATE", "ALERT_CERTIFICATE_EXPIRED")
    ),
    (
        "WRONG_VERSION_NUMBER",
        "that port does not speak TLS",
        "mqtts:// needs the broker's TLS port (often 8883), mqtt:// its plain port (often 1883): check broker.url",
    ),
)

PIPELINE_WARN_THRESHOLD = 100_000
CONNECT_TIMEOUT_S = 10

# paho's and aiomqtt's log lines; they follow daq's -v flags (paho logs every packet at debug).
PAHO_LOG = logging.getLogger("daq.mqtt.paho")


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
        super().__init__(*args, **kwargs)

    def publish_nowait(
        self, topic: str, payload: bytes, on_ack: Callable[[str | None], None], retain: bool = False
    ) -> None:
        """Publish at QoS 1 without a task, an Event or a future: `on_ack(failure)` runs on PUBACK
        (`failure` is None, or the broker's reason when an MQTT 5 PUBACK refused the message).

        For pipelining many messages: aiomqtt's `publish` costs a coroutine, an asyncio.Event
        and a scan of every pending call (`len(list(self._pending_calls))`) per message.
        Raises MqttCodeError when paho refuses the message (not connected).
        """
        info = self._client.publish(topic, payload, 1, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        self._acks[info.mid] = on_ack

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Properties
    ) -> None:
        on_ack = self._acks.pop(mid, None)
        if on_ack is not None:
            # MQTT 5: a PUBACK may carry a failure (not authorised, quota exceeded): not delivered.
            failed = isinstance(reason_code, ReasonCode) and reason_code.is_failure
            on_ack(str(reason_code) if failed else None)
            return
        super()._on_publish(client, userdata, mid, reason_code, properties)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not self._connected.done():
            why = self.wire_log.last_error or str(reason_code)
            self._connected.set_exception(
                aiomqtt.MqttError(f"the broker closed the connection before accepting it: {why}")
            )
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)


def make_client(
    broker: BrokerConfig,
    identifier: str | None,
    will: aiomqtt.Will | None = None,
    clean: bool = True,
    **extra: Any,
) -> DaqClient:
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
        "will": will,
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


def _refusal_code(exc: BaseException) -> int | None:
    if isinstance(exc, aiomqtt.MqttCodeError):
        rc = exc.rc
        code = rc.value if isinstance(rc, ReasonCode) else rc
        if isinstance(code, int) and code in REFUSALS:
            return code
    return None


def _tls_problem(exc: BaseException) -> tuple[str, str] | None:
    """(reason, hint) when `exc` is a TLS failure that retrying will not fix."""
    # aiomqtt raises MqttError(str(error)) from None: the ssl error is still its __context__.
    cause = exc.__cause__ or exc.__context__
    text = f"{exc} {cause or ''}"
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        detail = (getattr(cause, "verify_message", None) or str(exc)).rstrip(".")
        return f"the broker's TLS certificate does not verify ({detail})", TLS_VERIFY_HINT
    for marker, reason, hint in TLS_PROBLEMS:
        if marker in text:
            return reason, hint
    return None


def refusal(exc: BaseException) -> str | None:
    """The reason when `exc` is a failed connect that retrying will not fix (see connect_failure)."""
    code = _refusal_code(exc)
    if code is not None:
        return REFUSALS[code]
    tls = _tls_problem(exc)
    return tls[0] if tls else None


def connect_failure(exc: BaseException, broker: BrokerConfig) -> str | None:
    """The whole message for a failed connect that retrying will not fix: what happened, what to check.

    None for anything else (broker unreachable, restarting, a timeout): those are retried.
    """
    where = broker.address.display()
    code = _refusal_code(exc)
    if code is not None:
        return f"broker {where} refused the connection: {REFUSALS[code]}. {REFUSAL_HINTS[code]}."
    tls = _tls_problem(exc)
    if tls is not None:
        reason, hint = tls
        return f"cannot connect to broker {where} over TLS: {reason}. {hint}."
    return None
