"""The watch page's door: who may read the live ratings, and how much any one page may cost the server.

- On loopback (`--host` 127.0.0.1, localhost or ::1, the default) no token is needed, but the
  request's `Host` must be a loopback name, so a web page elsewhere cannot reach the server
  through a DNS name that points at 127.0.0.1 (DNS rebinding).
- On any other address every request needs the token: the `token` query parameter (the URL
  `daq watch` prints, as Jupyter does) or the cookie set at the first visit with it. The token is
  `DAQ_WATCH_TOKEN` when set (then it is needed on loopback too), else a new random one per run.
- The WebSocket takes only a browser `Origin` of the page itself (same host and port), else 403.
- Per page: messages from it at most `MAX_MESSAGE_BYTES` bytes and `MAX_MESSAGES_PER_S` per
  second (else it is closed); what waits to be sent to it at most `MAX_QUEUED_BYTES` (a page that
  does not read is dropped, not buffered for); at most `MAX_CLIENTS` pages at a time.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TOKEN_ENV = "DAQ_WATCH_TOKEN"
TOKEN_PARAM = "token"
TOKEN_COOKIE = "daq_watch_token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_MESSAGE_BYTES = 4096
MAX_MESSAGES_PER_S = 20
MAX_QUEUED_BYTES = 8 << 20
MAX_CLIENTS = 64


def is_loopback(host: str) -> bool:
    """Only these three names count as loopback; any other address (127.0.0.2 too) needs the token."""
    return host.strip("[]").lower() in LOOPBACK_HOSTS


def host_name(host_header: str) -> str:
    """'127.0.0.1:8787' -> '127.0.0.1'; '[::1]:8787' -> '::1'."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0].lower()
    return host_header.rpartition(":")[0].lower() if host_header.count(":") == 1 else host_header.lower()


@dataclass(frozen=True)
class Door:
    """The rules of one `daq watch`: its token (None: none needed) and whether it serves loopback only."""

    token: str | None = None
    loopback_only: bool = True

    @classmethod
    def for_host(cls, host: str, environ: dict[str, str] | None = None) -> Door:
        env = os.environ if environ is None else environ
        token = env.get(TOKEN_ENV) or None
        loopback = is_loopback(host)
        if token is None and not loopback:
            token = secrets.token_urlsafe(24)
        return cls(token, loopback)

    def token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def host_ok(self, host_header: str) -> bool:
        """On loopback, the Host a browser sent must be a loopback name (no DNS rebinding)."""
        return not self.loopback_only or is_loopback(host_name(host_header))


def origin_ok(origin: str | None, host_header: str) -> bool:
    """A WebSocket's Origin: absent (not a browser) or the page's own `http(s)://host:port`."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()


@dataclass
class RateLimit:
    """At most `per_s` events in any one-second window."""

    per_s: int = MAX_MESSAGES_PER_S
    window_start: float = field(default_factory=time.monotonic)
    count: int = 0

    def allow(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now - self.window_start >= 1.0:
            self.window_start, self.count = now, 0
        self.count += 1
        return self.count <= self.per_s
