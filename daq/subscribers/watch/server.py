"""The watch web server (aiohttp): the page, its files, the video, and a WebSocket of updates.

GET /            the page (static/index.html)
GET /static/...  app.js, style.css: everything the page needs ships in the package, no CDN
GET /ws          a WebSocket: one `snapshot` message, then `update`s about every 100 ms
GET /state.json  the same snapshot, for curl and debugging
GET /video       the --video file (with HTTP range requests, so the browser can seek in it)

Every request passes the door first (`daq.subscribers.watch.door`: the token off loopback, a
loopback Host on loopback, the page's own Origin on the WebSocket, limits per page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import WSCloseCode, WSMsgType, web

from daq.subscribers.watch.bridge import WatchBridge
from daq.subscribers.watch.door import (
    MAX_CLIENTS,
    MAX_MESSAGE_BYTES,
    MAX_QUEUED_BYTES,
    TOKEN_COOKIE,
    TOKEN_PARAM,
    Door,
    RateLimit,
    origin_ok,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
QUEUE_LIMIT = 200  # updates waiting for one slow page before it is dropped (it reconnects and resyncs)

BRIDGE_KEY = web.AppKey("bridge", WatchBridge)
VIDEO_KEY = web.AppKey("video", str)
DOOR_KEY = web.AppKey("door", Door)
CLIENTS_KEY = web.AppKey("clients", set)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(bridge: WatchBridge, video: Path | None = None, door: Door | None = None) -> web.Application:
    app = web.Application(middlewares=[check_door], client_max_size=MAX_MESSAGE_BYTES)
    app[BRIDGE_KEY] = bridge
    app[VIDEO_KEY] = str(video) if video is not None else ""
    app[DOOR_KEY] = door or Door()
    app[CLIENTS_KEY] = set()
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/state.json", state_json)
    app.router.add_get("/video", serve_video)
    app.router.add_static("/static/", STATIC, show_index=False)
    return app


@web.middleware
async def check_door(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The door's rules before any handler; a valid `?token=` also sets the cookie (and on `/`
    the page is reloaded without it, so the token does not stay in the address bar)."""
    door = request.app[DOOR_KEY]
    if not door.host_ok(request.host):
        raise web.HTTPForbidden(text="daq watch serves loopback only: open it as 127.0.0.1 or localhost\n")
    by_query = door.token is not None and door.token_ok(request.query.get(TOKEN_PARAM))
    if not (by_query or door.token_ok(request.cookies.get(TOKEN_COOKIE))):
        raise web.HTTPForbidden(text="this page needs its token: open the URL that daq watch printed (?token=...)\n")
    if by_query and request.path == "/" and request.method == "GET":
        found = web.HTTPFound("/")
        _set_cookie(found, door)
        raise found
    response = await handler(request)
    if by_query and not response.prepared:
        _set_cookie(response, door)
    return response


def _set_cookie(response: web.StreamResponse, door: Door) -> None:
    if door.token is not None:
        response.set_cookie(TOKEN_COOKIE, door.token, httponly=True, samesite="Strict", path="/")


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def state_json(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE_KEY]
    return web.Response(body=bridge.snapshot_bytes(), content_type="application/json")


async def serve_video(request: web.Request) -> web.StreamResponse:
    video = request.app[VIDEO_KEY]
    if not video:
        raise web.HTTPNotFound(text="no video: start daq watch with --video FILE")
    kind, _ = mimetypes.guess_type(video)
    return web.FileResponse(video, headers={"Content-Type": kind or "application/octet-stream"})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    bridge = request.app[BRIDGE_KEY]
    clients = request.app[CLIENTS_KEY]
    if not origin_ok(request.headers.get("Origin"), request.host):
        raise web.HTTPForbidden(text="a WebSocket from another page's origin is refused\n")
    if len(clients) >= MAX_CLIENTS:
        raise web.HTTPServiceUnavailable(text=f"at most {MAX_CLIENTS} pages at a time\n")
    ws = _PageSocket(heartbeat=20.0, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    outbox = _Outbox(request)
    clients.add(outbox)

    def listener(data: bytes) -> None:
        if not outbox.put(data):
            log.warning("watch: a page at %s is not keeping up; dropping it", request.remote)
            bridge.remove_listener(listener)

    outbox.put(bridge.snapshot_bytes())
    bridge.add_listener(listener)
    writer = asyncio.create_task(outbox.write(ws))
    rate = RateLimit()
    try:
        async for msg in ws:  # the page sends nothing we need; reading notices when it goes
            if msg.type == WSMsgType.ERROR:
                break
            if not rate.allow():
                log.warning("watch: a page at %s sends too many messages; closing it", request.remote)
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many messages")
                break
    finally:
        clients.discard(outbox)
        bridge.remove_listener(listener)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        if not ws.closed:  # after a read error (a message too big)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close(code=ws.close_code or WSCloseCode.MESSAGE_TOO_BIG)
    return ws


class _PageSocket(web.WebSocketResponse):
    """aiohttp 3.14 re-arms the heartbeat for data that arrives after close (a flooding page's
    last frames), leaving a timer for `heartbeat` seconds on a closed socket: not once closed."""

    def _reset_heartbeat(self) -> None:
        if not self.closed:
            super()._reset_heartbeat()


class _Outbox:
    """What waits to be sent to one page, bounded in messages and bytes (its socket's buffer too)."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.queued_bytes = 0
        self.dropped = False

    def put(self, data: bytes) -> bool:
        """False (and the page is closed) when it is too far behind."""
        if self.dropped:
            return False
        transport = self.request.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        if self.queue.qsize() >= QUEUE_LIMIT or self.queued_bytes + buffered + len(data) > MAX_QUEUED_BYTES:
            self.dropped = True
            self.queue.put_nowait(None)
            return False
        self.queued_bytes += len(data)
        self.queue.put_nowait(data)
        return True

    async def write(self, ws: web.WebSocketResponse) -> None:
        while True:
            data = await self.queue.get()
            if data is None:
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"not keeping up")
                return
            self.queued_bytes -= len(data)
            try:
                await ws.send_str(data.decode())
            except (ConnectionResetError, RuntimeError):
                return


async def serve(
    bridge: WatchBridge,
    host: str,
    port: int,
    video: Path | None,
    stop: asyncio.Event,
    on_ready: Callable[[list[tuple[str, int]]], None],
    door: Door | None = None,
) -> None:
    """Serve until `stop`; `on_ready` gets the bound (host, port) pairs once the socket listens."""
    runner = web.AppRunner(make_app(bridge, video, door), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound: list[tuple[str, int]] = []
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                bound.append((str(address[0]), int(address[1])))
        on_ready(bound)
        worker = asyncio.create_task(bridge.run(stop), name="watch-bridge")
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if worker.done():
                worker.result()
        finally:
            stopper.cancel()
            if not worker.done():
                stop.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(worker, 5.0)
    finally:
        await runner.cleanup()
