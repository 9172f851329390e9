"""Why a broker cannot be reached, in words, and how often to say so while retrying.

`explain(exc, host, port)` turns a failed connect into one phrase a user can act on:
"cannot resolve host 'nosuch.invalid'", "nothing listens on 127.0.0.1:1883 (connection refused)",
"no answer from 10.0.0.9:1883 within 10 s". aiomqtt wraps the socket error in an MqttError
holding only its text; the OSError itself is the exception's context, so the errno is read there,
and the text is the fallback.

`RetryReport` is the reconnect loop's voice (`daq.mqtt.session`): one line when the broker cannot
be reached or is lost, one when the reason changes, then a summary every `summary_s` (default 30 s,
env DAQ_RETRY_SUMMARY_S), not a line per retry; one line when it connects again.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from collections.abc import Callable

# getaddrinfo's failures (socket.gaierror numbers): the name does not resolve.
_RESOLVE_ERRNOS = {
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_AGAIN", "EAI_FAIL", "EAI_NODATA", "EAI_ADDRFAMILY")
    if hasattr(socket, name)
}
_RESOLVE_TEXTS = (
    "name or service not known",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "nodename nor servname",
    "getaddrinfo failed",
)
SUMMARY_ENV = "DAQ_RETRY_SUMMARY_S"
DEFAULT_SUMMARY_S = 30.0


def _os_error(exc: BaseException) -> OSError | None:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def explain(exc: BaseException | str, host: str, port: int) -> str:
    """One phrase saying why `host:port` could not be reached; the error's own text when unknown."""
    text = str(exc) or "connection lost"
    lowered = text.lower()
    err = None if isinstance(exc, str) else _os_error(exc)
    code = err.errno if err is not None else None
    if isinstance(err, socket.gaierror) or code in _RESOLVE_ERRNOS or any(t in lowered for t in _RESOLVE_TEXTS):
        return f"cannot resolve host '{host}'"
    if code == errno.ECONNREFUSED or "connection refused" in lowered:
        return f"nothing listens on {host}:{port} (connection refused)"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH) or "unreachable" in lowered or "no route" in lowered:
        return f"no route to {host}:{port} ({err.strerror.lower() if err and err.strerror else text})"
    if "timed out" in lowered:
        return f"no answer from {host}:{port} (timed out)"
    if "not currently connected" in lowered or "disconnected during" in lowered or lowered == "connection lost":
        return "connection lost"
    return text


def summary_interval() -> float:
    """DAQ_RETRY_SUMMARY_S (tests shorten it), else 30 s."""
    raw = os.environ.get(SUMMARY_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_SUMMARY_S
    except ValueError:
        return DEFAULT_SUMMARY_S
    return value if value > 0 else DEFAULT_SUMMARY_S


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 90:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class RetryReport:
    """What a reconnect loop says about its broker: few lines, each one clear.

    `failed(why)` after each failed attempt, `lost(why)` when a connection that was up is gone,
    `connected()` when one is up. `attempts` and `last` describe the current outage.
    """

    def __init__(
        self,
        log: logging.Logger,
        name: str,
        where: str,
        summary_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.clock = clock
        self.name = name
        self.where = where
        self.summary_s = summary_interval() if summary_s is None else summary_s
        self.since: float | None = None  # start of the current outage (monotonic)
        self.attempts = 0  # failed attempts in the current outage
        self.last = ""  # the last reason, in words
        self._said = ""  # the reason last said in a line
        self._summary_at = 0.0
        self._ever_connected = False

    def failed(self, why: str) -> None:
        now = self.clock()
        self.attempts += 1
        self.last = why
        if self.since is None:
            self.since = self._summary_at = now
            self._said = why
            self.log.warning(
                "%s: cannot reach the broker at %s: %s; retrying (a summary every %s)",
                self.name,
                self.where,
                why,
                _span(self.summary_s),
            )
        elif not self._said:  # the first failure after a loss: said by the summaries
            self._said = why
        elif why != self._said:
            self._said = why
            self._summary_at = now
            self.log.warning("%s: still no broker at %s, now: %s", self.name, self.where, why)
        elif now - self._summary_at >= self.summary_s:
            self._summary_at = now
            self.log.warning(
                "%s: still no broker at %s after %s: %d attempts, last error: %s",
                self.name,
                self.where,
                _span(now - self.since),
                self.attempts,
                why,
            )

    def lost(self, why: str) -> None:
        now = self.clock()
        self.since = self._summary_at = now
        self.attempts = 0
        self.last = why
        self._said = ""
        self.log.warning("%s: lost the broker at %s (%s); reconnecting", self.name, self.where, why)

    def connected(self, detail: str) -> None:
        again = ""
        if self.since is not None:
            again = f" after {_span(self.clock() - self.since)} without it ({self.attempts} failed attempts)"
        self.log.info("%s: connected to %s%s%s", self.name, self.where, again, detail)
        self.since = None
        self.attempts = 0
        self._ever_connected = True
