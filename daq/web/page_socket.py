"""A page's WebSocket through the door's limits (`daq.web.door.Limits`), for every page's `/ws`.

    async with PageSocket(request) as page:     # 503 past `clients` pages, 403 for a foreign Origin
        page.send(first)                         # queued; False once the page is dropped
        async for message in page:               # TEXT and BINARY messages, until the page goes
            ...
    return page.ws

What the page sends is bounded (`message_bytes`: closed with 1009; `messages_per_s`: closed with
1008); what waits to be sent to it too (`queued_messages`, `queued_bytes`, its socket's buffer
counted): a page that does not read is closed with 1013 and dropped, never buffered for. The app
(`daq.web.app.page_app`) holds the open sockets and closes them with 1001 when it shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from daq.web.door import Limits, RateLimit, origin_ok

log = logging.getLogger(__name__)

HEARTBEAT_S = 20.0
LIMITS_KEY = web.AppKey("page_limits", Limits)
SOCKETS_KEY: web.AppKey[set[PageSocket]] = web.AppKey("page_sockets")


class _Socket(web.WebSocketResponse):
    """aiohttp 3.14 re-arms the heartbeat for data that arrives after close (a flooding page's
    last frames), leaving a timer for `heartbeat` seconds on a closed socket: not once closed."""

    def _reset_heartbeat(self) -> None:
        if not self.closed:
            super()._reset_heartbeat()


class Outbox:
    """What waits to be sent to one page, bounded in messages and bytes (its socket's buffer too)."""

    def __init__(self, request: web.Request, limits: Limits | None = None) -> None:
        self.request = request
        self.limits = limits or Limits()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.queued_bytes = 0
        self.dropped = False

    def put(self, data: bytes) -> bool:
        """False (and the page is closed) when it is too far behind."""
        if self.dropped:
            return False
        transport = self.request.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        if (
            self.queue.qsize() >= self.limits.queued_messages
            or self.queued_bytes + buffered + len(data) > self.limits.queued_bytes
        ):
            self.dropped = True
            self.queue.put_nowait(None)
            return False
        self.queued_bytes += len(data)
        self.queue.put_nowait(data)
        return True

    async def write(self, ws: web.WebSocketResponse, text: bool) -> None:
        """Send what is queued, as text or binary frames, until the page is dropped or gone."""
        while True:
            data = await self.queue.get()
            if data is None:
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"not keeping up")
                return
            self.queued_bytes -= len(data)
            try:
                await (ws.send_str(data.decode()) if text else ws.send_bytes(data))
            except (ConnectionResetError, RuntimeError):
                return


class PageSocket:
    """One page's WebSocket: checked, bounded both ways, and closed when the `async with` ends.

    `text`: send as text frames (else binary); `name`: the page in log lines ("watch", "rate").
    """

    def __init__(self, request: web.Request, *, text: bool = True, name: str = "page") -> None:
        self.request = request
        self.limits = request.app[LIMITS_KEY]
        self.name = name
        self.text = text
        self.ws: web.WebSocketResponse = _Socket(heartbeat=HEARTBEAT_S, max_msg_size=self.limits.message_bytes)
        self.outbox = Outbox(request, self.limits)
        self.rate = RateLimit(self.limits.messages_per_s)
        self._writer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PageSocket:
        request, sockets = self.request, self.request.app[SOCKETS_KEY]
        if not origin_ok(request.headers.get("Origin"), request.host):  # the app's door checks it too
            raise web.HTTPForbidden(text="a WebSocket from another page's origin is refused\n")
        if len(sockets) >= self.limits.clients:
            raise web.HTTPServiceUnavailable(text=f"at most {self.limits.clients} pages at a time\n")
        await self.ws.prepare(request)
        sockets.add(self)
        self._writer = asyncio.create_task(self.outbox.write(self.ws, self.text), name=f"{self.name}-page-writer")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.request.app[SOCKETS_KEY].discard(self)
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        if not self.ws.closed:  # after a read error (a message too big), or the handler's own end
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.close(code=self.ws.close_code or WSCloseCode.MESSAGE_TOO_BIG)

    @property
    def dropped(self) -> bool:
        return self.outbox.dropped

    def send(self, data: bytes) -> bool:
        """Queue `data` for the page; False when it is too far behind (it is then closed and dropped)."""
        if self.outbox.dropped:
            return False
        if not self.outbox.put(data):
            log.warning("%s: a page at %s is not keeping up; dropping it", self.name, self.request.remote)
            return False
        return True

    def __aiter__(self) -> PageSocket:
        return self

    async def __anext__(self) -> WSMessage:
        """The page's next TEXT or BINARY message; the end once it is closed, fails, or sends too much."""
        while True:
            if self.outbox.queue.qsize():
                # Let the writer send what the last messages' answers queued: messages already
                # read are handed over without a yield, and a burst within the rate would
                # otherwise fill the outbox of a page that reads, and close it with 1013.
                await asyncio.sleep(0)
            msg = await self.ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                raise StopAsyncIteration
            if not self.rate.allow():
                log.warning("%s: a page at %s sends too many messages; closing it", self.name, self.request.remote)
                await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many messages")
                raise StopAsyncIteration
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                return msg

    async def close(self, code: int = WSCloseCode.GOING_AWAY, message: bytes = b"server going away") -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=message)


async def close_sockets(app: web.Application) -> None:
    """On shutdown: every open page is told the server goes away (1001), so no handler waits on it."""
    sockets: set[PageSocket] = app[SOCKETS_KEY]
    await asyncio.gather(*(page.close() for page in list(sockets)), return_exceptions=True)
