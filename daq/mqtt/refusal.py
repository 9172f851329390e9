"""The one policy for a failed connect that retrying will not fix, and what to tell the user.

A refused login (bad user name or password, not authorised, banned), a protocol the broker does
not speak, a broker certificate that does not verify, a client certificate the broker requires or
rejects, a TLS port spoken to in plain MQTT: `connect_failure` turns each into one message that
names the broker, the refusal and what to check. Anything else (a broker unreachable or restarting,
a timeout) is transient: None, and the caller retries. The message never holds the password.
"""

from __future__ import annotations

import ssl

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

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


def refused_subscriptions(filters: list[str], granted: list[ReasonCode | int]) -> list[tuple[str, str]]:
    """(filter, reason) for each filter a SUBACK refused (MQTT 5 reason >= 0x80, MQTT 3.1.1 0x80)."""
    refused: list[tuple[str, str]] = []
    for topic, code in zip(filters, granted, strict=False):
        failed = code.is_failure if isinstance(code, ReasonCode) else code >= 0x80
        if failed:
            refused.append((topic, code.getName() if isinstance(code, ReasonCode) else str(code)))
    return refused


def subscription_failure(broker: BrokerConfig, topic: str, reason: str) -> str:
    """The message for a subscription the broker refused (most often its ACL)."""
    return (
        f"broker {broker.address.display()} refused the subscription to {topic}: {reason}. "
        "Check the broker's ACL for this user"
    )
