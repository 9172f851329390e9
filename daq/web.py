"""What the local web pages share (`daq rate`, `daq review`, `daq watch`): the app's page, its video, the server.

Each page is one HTML file in its package's `static/` folder, served at `/` (never cached, so an
upgraded page is seen at once) with its scripts and styles under `/static/`; a video is served
with HTTP range requests (aiohttp's FileResponse), so the browser can seek in it. `serve` runs
an app on host:port until `stop` and hands the bound addresses to `on_ready` (port 0: any free).
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from aiohttp import web

T = TypeVar("T")

Ready = Callable[[list[tuple[str, int]]], None]
"""Told the (host, port) pairs the server listens on, once it does."""


def page_app(static: Path, page: str, routes: web.RouteTableDef, key: web.AppKey[T], value: T) -> web.Application:
    """An app serving `static/page` at `/`, the folder's other files under `/static/`, and `routes`.

    Its handlers find `value` (what the page shows) as `request.app[key]`.
    """

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(static / page, headers={"Cache-Control": "no-cache"})

    app = web.Application()
    app[key] = value
    app.router.add_get("/", index)
    app.add_routes(routes)
    app.router.add_static("/static/", static, show_index=False)
    return app


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
) -> None:
    """Serve `app` on host:port until `stop` is set; OSError when it cannot listen."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        on_ready(bound_addresses(runner))
        await stop.wait()
    finally:
        await runner.cleanup()
