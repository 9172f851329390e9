"""The watch web server (aiohttp): the page, its files, the video, and a WebSocket of updates.

GET /            the page (static/index.html)
GET /static/...  app.js, style.css: everything the page needs ships in the package, no CDN
GET /ws          a WebSocket: one `snapshot` message, then `update`s about every 100 ms
GET /state.json  the same snapshot, for curl and debugging
GET /video       the --video file (with HTTP range requests, so the browser can seek in it)

Built with `daq.web.app.page_app`, so every request passes the pages' door first (`daq.web.door`:
the token off loopback, a loopback Host on loopback, the page's own Origin on the WebSocket), and
the WebSocket is a `daq.web.page_socket.PageSocket` (limits per page, slow pages dropped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from daq.subscribers.watch.bridge import WatchBridge
from daq.web.app import page_app, video_response
from daq.web.app import serve as serve_app
from daq.web.door import Door, Limits
from daq.web.page_socket import PageSocket

STATIC = Path(__file__).resolve().parent / "static"
LIMITS = Limits()  # the defaults: 4 KB and 20 messages a second from a page, 200 updates or 8 MB waiting for it


@dataclass(frozen=True, slots=True)
class Watch:
    """What the page shows: the bridge's state, and the --video file ("" without)."""

    bridge: WatchBridge
    video: str = ""


WATCH_KEY = web.AppKey("watch", Watch)
ROUTES = web.RouteTableDef()  # the handlers below, after the page (daq.web.app.page_app)


def make_app(bridge: WatchBridge, video: Path | None = None, door: Door | None = None) -> web.Application:
    watch = Watch(bridge, str(video) if video is not None else "")
    return page_app(STATIC, "index.html", ROUTES, WATCH_KEY, watch, door=door, limits=LIMITS)


@ROUTES.get("/state.json")
async def state_json(request: web.Request) -> web.Response:
    bridge = request.app[WATCH_KEY].bridge
    return web.Response(body=bridge.snapshot_bytes(), content_type="application/json")


@ROUTES.get("/video")
async def serve_video(request: web.Request) -> web.StreamResponse:
    video = request.app[WATCH_KEY].video
    if not video:
        raise web.HTTPNotFound(text="no video: start daq watch with --video FILE")
    return video_response(video)


@ROUTES.get("/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    bridge = request.app[WATCH_KEY].bridge
    async with PageSocket(request, text=True, name="watch") as page:

        def listener(data: bytes) -> None:
            if not page.send(data):
                bridge.remove_listener(listener)

        page.send(bridge.snapshot_bytes())
        bridge.add_listener(listener)
        try:
            async for _ in page:  # the page sends nothing we need; reading notices when it goes
                pass
        finally:
            bridge.remove_listener(listener)
    return page.ws


async def serve(
    bridge: WatchBridge,
    host: str,
    port: int,
    video: Path | None,
    stop: asyncio.Event,
    on_ready: Callable[[list[tuple[str, int]]], None],
    door: Door | None = None,
) -> None:
    """Serve until `stop` (or the bridge fails); `on_ready` gets the bound (host, port) pairs once it listens."""
    await serve_app(make_app(bridge, video, door), host, port, stop, on_ready, alongside=bridge.run)
