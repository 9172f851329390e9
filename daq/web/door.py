"""The pages' door: who may open a page of `daq watch`, `daq rate` or `daq review`, and how much any one
page may cost the server. The rules only, with no aiohttp (`daq.web.app` applies them to every request,
`daq.web.page_socket` to every WebSocket).

- On loopback (`--host` 127.0.0.1, localhost or ::1, the default) no token is needed, but the
  request's `Host` must be a loopback name, so a web page elsewhere cannot reach the server
  through a DNS name that points at 127.0.0.1 (DNS rebinding).
- On any other address every request needs the token: the `token` query parameter (the URL
  the command prints, as Jupyter does) or the cookie set at the first visit with it (one cookie
  name per port, so two pages on one machine keep their own). The token is `DAQ_PAGE_TOKEN` (or,
  as before, `DAQ_WATCH_TOKEN`) when set (then it is needed on loopback too), else a new random
  one per run.
- A request that can change something (any method but GET, HEAD and OPTIONS) and every WebSocket
  take only a browser `Origin` of the page itself (same host and port), else 403.
- Per page (`Limits`): messages from it at most `message_bytes` and `messages_per_s` per second
  (else it is closed), request bodies at most `body_bytes`; what waits to be sent to it at most
  `queued_messages` and `queued_bytes` (a page that does not read is dropped, not buffered for);
  at most `clients` pages at a time.
"""

from __future__ import annotations

import hmac
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TOKEN_ENV = "DAQ_PAGE_TOKEN"
LEGACY_TOKEN_ENV = "DAQ_WATCH_TOKEN"  # the name `daq watch` read before every page had the door
TOKEN_ENVS = (TOKEN_ENV, LEGACY_TOKEN_ENV)
TOKEN_PARAM = "token"
TOKEN_COOKIE = "daq_token"  # + "_<port>": cookies are per host, not per port
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_MESSAGE_BYTES = 4096
MAX_MESSAGES_PER_S = 20
MAX_QUEUED_MESSAGES = 200
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


def token_cookie(host_header: str) -> str:
    """The token's cookie for the page at `host_header`: 'lab-pc:8787' -> 'daq_token_8787' (80 without a port)."""
    rest = host_header.rpartition("]")[2] if host_header.startswith("[") else host_header
    port = rest.rpartition(":")[2] if rest.count(":") == 1 else ""
    return f"{TOKEN_COOKIE}_{port if port.isdigit() else '80'}"


@dataclass(frozen=True)
class Door:
    """The rules of one page server: its token (None: none needed), whether it serves loopback only,
    the command it serves for (named in its refusals) and the variable the token came from ("": made)."""

    token: str | None = None
    loopback_only: bool = True
    command: str = "the daq command"
    token_env: str = ""

    @classmethod
    def for_host(cls, host: str, environ: Mapping[str, str] | None = None, *, command: str = "the daq command") -> Door:
        env = os.environ if environ is None else environ
        name = next((n for n in TOKEN_ENVS if env.get(n)), "")
        token = env[name] if name else None
        loopback = is_loopback(host)
        if token is None and not loopback:
            token = secrets.token_urlsafe(24)
        return cls(token, loopback, command, name)

    def token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def host_ok(self, host_header: str) -> bool:
        """On loopback, the Host a browser sent must be a loopback name (no DNS rebinding)."""
        return not self.loopback_only or is_loopback(host_name(host_header))

    def shown_token(self) -> str | None:
        """What the printed URL carries: a made token itself (the way in, as Jupyter does), one from the
        environment only as `$NAME` (it is not printed), None when no token is needed."""
        if self.token is None:
            return None
        return "$" + self.token_env if self.token_env else self.token


def page_url(host: str, port: int, door: Door | None = None) -> str:
    """The URL a command prints for its page: `http://host:port/`, `?token=...` when the door needs one
    (`0.0.0.0` and `::` shown as this machine's name)."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    token = door.shown_token() if door is not None else None
    return f"http://{host}:{port}/" + (f"?{TOKEN_PARAM}={token}" if token else "")


def origin_ok(origin: str | None, host_header: str) -> bool:
    """A WebSocket's (or a POST's) Origin: absent (not a browser) or the page's own `http(s)://host:port`."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()


def needs_origin(method: str, upgrade: str | None) -> bool:
    """Whether a request must come from the page's own Origin: a WebSocket, or one that can change something."""
    return method.upper() not in SAFE_METHODS or (upgrade or "").lower() == "websocket"


@dataclass(frozen=True)
class Limits:
    """What one page may cost the server (the defaults are the watch page's)."""

    message_bytes: int = MAX_MESSAGE_BYTES  # one WebSocket message from the page
    messages_per_s: int = MAX_MESSAGES_PER_S  # WebSocket messages from the page in any one second
    body_bytes: int = MAX_MESSAGE_BYTES  # one request body (a POST)
    queued_messages: int = MAX_QUEUED_MESSAGES  # messages waiting for a page before it is dropped
    queued_bytes: int = MAX_QUEUED_BYTES  # bytes waiting for it (its socket's buffer too)
    clients: int = MAX_CLIENTS  # WebSockets open at a time


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
