"""Build aiomqtt clients from the broker config: address, credentials, TLS, protocol.

The one place that reads a password, and it hands it to the client only.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from daq.config import BrokerConfig

# CONNACK codes that retrying will not fix: 3.1.1 (4, 5) and MQTT 5 (134, 135, 138, 140).
REFUSALS = {
    4: "bad user name or password",
    5: "not authorised",
    134: "bad user name or password",
    135: "not authorised",
    138: "banned",
    140: "bad authentication method",
}


PIPELINE_WARN_THRESHOLD = 100_000


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


def make_client(
    broker: BrokerConfig,
    identifier: str | None,
    will: aiomqtt.Will | None = None,
    clean: bool = True,
    **extra: Any,
) -> aiomqtt.Client:
    address = broker.address
    kwargs: dict[str, Any] = {
        "hostname": address.host,
        "port": address.port,
        "username": broker.effective_username(),
        "password": broker.effective_password(),
        "identifier": identifier,
        "protocol": protocol_version(broker),
        "will": will,
        "keepalive": broker.keepalive_s,
        "tls_context": tls_context(broker),
        "timeout": 10,
    }
    if broker.protocol == "5":
        kwargs["clean_start"] = clean
    else:
        kwargs["clean_session"] = clean
    kwargs.update(extra)
    client = aiomqtt.Client(**kwargs)
    # aiomqtt warns once per publish beyond 10 unacknowledged; pipelining means hundreds on purpose.
    client.pending_calls_threshold = PIPELINE_WARN_THRESHOLD
    return client


def refusal(exc: BaseException) -> str | None:
    """The reason when `exc` is a CONNACK refusal that retrying will not fix."""
    if isinstance(exc, aiomqtt.MqttCodeError):
        rc = exc.rc
        code = rc.value if isinstance(rc, ReasonCode) else rc
        if isinstance(code, int) and code in REFUSALS:
            return REFUSALS[code]
    return None
