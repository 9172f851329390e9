"""A reconnecting session: connect, subscribe, hand the connection over, and on a loss back off and retry.

One policy for every client of the broker (the station's publisher, `daq record`, `daq lsl`,
`daq watch`):

- Before the first successful connect, a refusal retrying will not fix (bad credentials, a
  certificate that does not verify, a protocol the broker does not speak, a refused subscription)
  raises BrokerRefused, and a connection that cannot be set up (a password file or certificate
  that cannot be read) raises ConfigError: the command prints the message and exits 2.
- Once it has connected, every fault is retried (a broker restarted with a new password file,
  a certificate being rotated must not stop a station in the middle of a session), with jittered
  exponential backoff; a connection that held for STABLE_CONNECTION_S resets the backoff.
- What it says (`daq.mqtt.unreachable.RetryReport`): one line when the broker cannot be reached
  (why, in words: a host that does not resolve, a port nothing listens on) or is lost, a summary
  every 30 s while it retries (each retry only at debug), one line when it connects.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from daq.config import BrokerConfig
from daq.exceptions import BrokerRefused, ConfigError
from daq.mqtt.client import Connection, ConnectOptions, MqttError, connect
from daq.mqtt.unreachable import RetryReport, explain

log = logging.getLogger(__name__)

STABLE_CONNECTION_S = 5.0

OnConnected = Callable[[Connection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backoff:
    first_s: float = 0.2
    max_s: float = 10.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """Jittered: uniform in [cap/2, cap], cap = min(max, first * factor**attempt)."""
        cap = min(self.max_s, self.first_s * self.factor**attempt)
        return random.uniform(cap / 2, cap)


@dataclass(slots=True)
class SessionStats:
    connected: bool = False
    connects: int = 0
    disconnects: int = 0
    last_error: str = ""


class Session:
    """Keeps one client connected until its work is done or `stop` is set.

    `run(stop, on_connected)` connects, subscribes to `subscriptions` (one SUBSCRIBE; with
    `check_subscriptions` a refused filter is a BrokerRefused), sets `connected`, then awaits
    `on_connected(connection)`. When that returns, `run` returns; when it raises MqttError (the
    connection was lost), the session backs off and connects again. `on_disconnected(reason)`
    runs after every attempt, once the connection is closed (reason None when it ended normally).

    Stopping: a subscriber's `on_connected` returns when `stop` is set (see `daq.mqtt.consume`);
    set while disconnected, `run` returns at once. With `drain_on_stop` (the publisher: it has
    samples to hand over), a stop during the backoff gets one more attempt, unless `draining`
    was set (the last connection had begun to drain) or it never connected.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        options: ConnectOptions | None = None,
        *,
        name: str = "mqtt",
        subscriptions: Sequence[str] | Callable[[], Sequence[str]] = (),
        check_subscriptions: bool = True,
        backoff: Backoff | None = None,
        stats: SessionStats | None = None,
        drain_on_stop: bool = False,
        on_disconnected: Callable[[str | None], None] | None = None,
    ) -> None:
        self.broker = broker
        self.options = options or ConnectOptions()
        self.name = name
        self.subscriptions = subscriptions
        self.check_subscriptions = check_subscriptions
        self.backoff = backoff or Backoff()
        self.stats = stats if stats is not None else SessionStats()
        self.drain_on_stop = drain_on_stop
        self.on_disconnected = on_disconnected
        self.connected = asyncio.Event()  # set while connected and subscribed
        self.connected_once = False
        self.draining = False
        self._connected_at = 0.0
        address = broker.address
        self.report = RetryReport(log, name, address.display())
        self._host_port = (address.host, address.port)

    def filters(self) -> list[str]:
        subs = self.subscriptions
        return list(subs() if callable(subs) else subs)

    async def run(self, stop: asyncio.Event, on_connected: OnConnected) -> None:
        attempt = 0
        while True:
            if stop.is_set() and not self.drain_on_stop:
                return
            reason: str | None = None
            was_up = False
            try:
                await self._connect_once(on_connected)
                return
            except (BrokerRefused, ConfigError) as exc:
                reason = str(exc)
                if not self.connected_once:
                    raise
            except MqttError as exc:
                reason = explain(exc, *self._host_port)
            except (OSError, ssl.SSLError) as exc:
                # e.g. a certificate being rotated: fatal at start, retried later on
                if not self.connected_once:
                    raise ConfigError(None, "broker", f"cannot set up the connection: {exc}") from None
                reason = f"connection setup: {exc}"
            finally:
                self.connected.clear()
                was_up = self.stats.connected
                if self.stats.connected:
                    self.stats.connected = False
                    self.stats.disconnects += 1
                    attempt = 0 if self._lasted() else attempt
                if reason is not None:
                    self.stats.last_error = reason
                if self.on_disconnected is not None:
                    self.on_disconnected(reason)
            if stop.is_set() and (not self.drain_on_stop or self.draining or not self.connected_once):
                return
            if was_up:
                self.report.lost(reason or "connection closed")
            else:
                self.report.failed(reason or "connection closed")
            delay = self.backoff.delay(attempt)
            attempt += 1
            log.debug("%s: retrying in %.1f s (%s)", self.name, delay, reason)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                continue
            # Stopped while disconnected: a publisher gets one more try to hand over what it holds.
            if not self.drain_on_stop or self.draining:
                return
            self.draining = True

    async def _connect_once(self, on_connected: OnConnected) -> None:
        async with connect(self.broker, self.options) as connection:
            self._connected_at = time.monotonic()
            self.stats.connected = True
            self.stats.connects += 1
            filters = self.filters()
            await connection.subscribe(filters, check=self.check_subscriptions)
            self.connected_once = True
            self.connected.set()
            self.report.connected(
                f", as {self.options.client_id or '(random id)'}"
                + (f"; subscribed to {', '.join(filters)}" if filters else "")
            )
            await on_connected(connection)

    def _lasted(self) -> bool:
        """A connection that held for a while resets the backoff; one kicked off at once does not
        (a second daemon with the same client id would otherwise make both reconnect in a tight loop)."""
        return time.monotonic() - self._connected_at > STABLE_CONNECTION_S
