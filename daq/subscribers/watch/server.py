"""The watch web server (aiohttp): the page, its files, the video, and a WebSocket of updates.

GET /            the page (static/index.html)
GET /static/...  app.js, style.css: everything the page needs ships in the package, no CDN
GET /ws          a WebSocket: one `snapshot` message, then `update`s about every 100 ms
GET /state.json  the same snapshot, for curl and debugging
GET /video       the --video file (with HTTP range requests, so the browser can seek in it)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
from collections.abc import Callable
from pathlib import Path

from aiohttp import WSMsgType, web

from daq.subscribers.watch.bridge import WatchBridge

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
QUEUE_LIMIT = 200  # updates waiting for one slow page before it is dropped (it reconnects and resyncs)

BRIDGE_KEY = web.AppKey("bridge", WatchBridge)
VIDEO_KEY = web.AppKey("video", str)


def make_app(bridge: WatchBridge, video: Path | None = None) -> web.Application:
    app = web.Application()
    app[BRIDGE_KEY] = bridge
    app[VIDEO_KEY] = str(video) if video is not None else ""
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/state.json", state_json)
    app.router.add_get("/video", serve_video)
    app.router.add_static("/static/", STATIC, show_index=False)
    return app


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
    ws = web.WebSocketResponse(heartbeat=20.0)
    await ws.prepare(request)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def listener(data: bytes) -> None:
        if queue.qsize() >= QUEUE_LIMIT:
            log.warning("watch: a page at %s is not keeping up; dropping it", request.remote)
            queue.put_nowait(None)
            bridge.remove_listener(listener)
            return
        queue.put_nowait(data)

    queue.put_nowait(bridge.snapshot_bytes())
    bridge.add_listener(listener)
    writer = asyncio.create_task(_write(ws, queue))
    try:
        async for msg in ws:  # the page sends nothing we need; reading notices when it goes
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        bridge.remove_listener(listener)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    return ws


async def _write(ws: web.WebSocketResponse, queue: asyncio.Queue[bytes | None]) -> None:
    while True:
        data = await queue.get()
        if data is None:
            await ws.close()
            return
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
) -> None:
    """Serve until `stop`; `on_ready` gets the bound (host, port) pairs once the socket listens."""
    runner = web.AppRunner(make_app(bridge, video), access_log=None, handle_signals=False)
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
