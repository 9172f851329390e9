"""What every local web page is built with (`daq rate`, `daq review`, `daq watch`): the app behind its
door, its video, the server.

Each page is one HTML file in its package's `static/` folder, served at `/` (never cached, so an
upgraded page is seen at once) with its scripts and styles under `/static/`; a video is served
with HTTP range requests (aiohttp's FileResponse), so the browser can seek in it. Every request
passes the door first (`daq.web.door`: the token off loopback, a loopback Host on loopback, the
page's own Origin on a WebSocket or a POST); a page's `/ws` is a `daq.web.page_socket.PageSocket`.
`serve` runs an app on host:port until `stop` and hands the bound addresses to `on_ready` (port 0:
any free).
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from aiohttp import hdrs, web

from daq.web.door import TOKEN_PARAM, Door, Limits, needs_origin, origin_ok, token_cookie
from daq.web.page_socket import LIMITS_KEY, SOCKETS_KEY, close_sockets

T = TypeVar("T")

Ready = Callable[[list[tuple[str, int]]], None]
"""Told the (host, port) pairs the server listens on, once it does."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Alongside = Callable[[asyncio.Event], Awaitable[None]]
"""Work that runs while the page is served (`daq watch`'s bridge to the broker); given the stop event."""

DOOR_KEY = web.AppKey("page_door", Door)


def page_app(
    static: Path,
    page: str,
    routes: web.RouteTableDef,
    key: web.AppKey[T],
    value: T,
    *,
    door: Door | None = None,
    limits: Limits | None = None,
) -> web.Application:
    """An app serving `static/page` at `/`, the folder's other files under `/static/`, and `routes`,
    every request through `door` (default: loopback only, no token) with `limits` per page.

    Its handlers find `value` (what the page shows) as `request.app[key]`.
    """

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(static / page, headers={"Cache-Control": "no-cache"})

    limits = limits or Limits()
    app = web.Application(middlewares=[check_door], client_max_size=limits.body_bytes)
    app[key] = value
    app[DOOR_KEY] = door or Door()
    app[LIMITS_KEY] = limits
    app[SOCKETS_KEY] = set()
    app.on_shutdown.append(close_sockets)
    app.router.add_get("/", index)
    app.add_routes(routes)
    app.router.add_static("/static/", static, show_index=False)
    return app


@web.middleware
async def check_door(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The door's rules before any handler; a valid `?token=` also sets the cookie (and on `/`
    the page is reloaded without it, so the token does not stay in the address bar)."""
    door = request.app[DOOR_KEY]
    if not door.host_ok(request.host):
        raise web.HTTPForbidden(text=f"{door.command} serves loopback only: open it as 127.0.0.1 or localhost\n")
    cookie = token_cookie(request.host)
    by_query = door.token is not None and door.token_ok(request.query.get(TOKEN_PARAM))
    if not (by_query or door.token_ok(request.cookies.get(cookie))):
        raise web.HTTPForbidden(
            text=f"this page needs its token: open the URL that {door.command} printed (?{TOKEN_PARAM}=...)\n"
        )
    if needs_origin(request.method, request.headers.get(hdrs.UPGRADE)) and not origin_ok(
        request.headers.get(hdrs.ORIGIN), request.host
    ):
        raise web.HTTPForbidden(text="a request from another page's origin is refused\n")
    if by_query and request.path == "/" and request.method == "GET":
        found = web.HTTPFound("/")
        _set_cookie(found, door, cookie)
        raise found
    response = await handler(request)
    if by_query and not response.prepared:
        _set_cookie(response, door, cookie)
    return response


def _set_cookie(response: web.StreamResponse, door: Door, name: str) -> None:
    if door.token is not None:
        response.set_cookie(name, door.token, httponly=True, samesite="Strict", path="/")


def video_response(path: Path | str) -> web.FileResponse:
    """The video file at `path`, with its content type (range requests: aiohttp's FileResponse)."""
    kind, _ = mimetypes.guess_type(str(path))
    return web.FileResponse(path, headers={"Content-Type": kind or "application/octet-stream"})


def bound_addresses(runner: web.AppRunner) -> list[tuple[str, int]]:
    """The (host, port) pairs `runner`'s sites listen on."""
    return [(str(a[0]), int(a[1])) for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2]


async def serve(
    app: web.Application,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_ready: Ready,
    alongside: Alongside | None = None,
) -> None:
    """Serve `app` on host:port until `stop` is set; OSError when it cannot listen.

    `alongside(stop)` starts once the socket listens; when it ends (or fails: raised here) the
    server stops too, and at `stop` it has 5 s to finish.
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        on_ready(bound_addresses(runner))
        if alongside is None:
            await stop.wait()
        else:
            await _run_alongside(alongside, stop)
    finally:
        await runner.cleanup()


async def _run_alongside(alongside: Alongside, stop: asyncio.Event) -> None:
    worker = asyncio.ensure_future(alongside(stop))
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
