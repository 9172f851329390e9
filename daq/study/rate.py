"""The rating sitting (`daq rate`): the page's web server and what it does to the station.

The page's own <video> element is the media clock. For every presented frame,
`requestVideoFrameCallback` gives the frame's media time and the time it is shown; the page maps that
onto the server's wall clock (an offset measured by ping over the WebSocket, the lowest round trip
wins) and sends `{"type": "position", "state": "playing"|"paused"|"stopped", "position_s", "speed",
"t_ns"}`. The server hands each one to the station's MQTT-followed clock (daq.mediaclock.mqtt_follow)
and publishes it on `<root>/<station>/media/position`, so other apps follow the sitting too.

The sitting: the first "playing" starts a session (and writes `sitting.json`, see daq.study.sitting,
also sent on `events` as kind `sitting`); "ended" (end of file) stops it. Pause and seek come as
positions and so are in the samples exactly.

GET /          the page (static/rate.html)        GET /video  the video file (range requests)
GET /ws        WebSocket: hello, value (about 20 per second), session, done; the page sends ping, position, ended
GET /state.json  the sitting's state (session id, folder), for scripts and tests

Built with `daq.web.app.page_app`: every request passes the pages' door (`daq.web.door`), the
WebSocket is a `daq.web.page_socket.PageSocket` (the page's own Origin, limits, a slow page dropped).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from daq.mediaclock.mqtt_follow import position_topic
from daq.recording import safe_name
from daq.station.station import Station
from daq.study import STATIC
from daq.study.sitting import SITTING_FILE, VideoId, write_json_atomic
from daq.web.app import page_app, video_response
from daq.web.door import Door, Limits
from daq.web.page_socket import PageSocket

log = logging.getLogger(__name__)

VALUE_EVERY_S = 0.05


@dataclass(slots=True)
class Sitting:
    """One rating sitting: the station, the dial and video rated, and where the session is (its state)."""

    station: Station
    dial: str
    video: VideoId
    video_path: Path
    rater: str
    dimension: str
    out: Path
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    session: str | None = None
    folder: Path | None = None
    state: str = "waiting"  # waiting, playing, paused, gone (no page), ended
    listeners: set[Callable[[bytes], object]] = field(default_factory=set)  # each open page's `send`

    @property
    def scale(self) -> dict[str, Any]:
        dial = next(d for d in self.station.config.dials if d.id == self.dial)
        return dial.scale.model_dump()

    def info(self) -> dict[str, Any]:
        return {
            "v": 1,
            "station": self.station.station_id,
            "session": self.session,
            "rater": self.rater,
            "dimension": self.dimension,
            "dial": self.dial,
            "scale": self.scale,
            "rate": self.station.session.clock.rate.label if self.station.session.clock else "25",
            "video": self.video.as_json(),
        }

    def state_json(self) -> dict[str, Any]:
        return {**self.info(), "state": self.state, "folder": str(self.folder) if self.folder else None}

    def broadcast(self, body: dict[str, Any]) -> None:
        data = orjson.dumps(body)
        for send in list(self.listeners):
            send(data)

    def value(self) -> float | None:
        pipe = self.station.pipelines.get(self.dial)
        return pipe.stats.last_value if pipe is not None else None

    # -- what the page reports --------------------------------------------------------------

    async def position(self, body: dict[str, Any]) -> None:
        state = body.get("state")
        if self.state == "ended" or (self.session is None and state != "playing"):
            return  # the sitting starts with playback and ends with the file
        payload = orjson.dumps(
            {k: body[k] for k in ("position_s", "state", "speed", "t_ns") if body.get(k) is not None}
        )
        self.station.clocks.on_message(position_topic(self.station.topics.base), payload, time.monotonic_ns())
        self.station.publisher.send(position_topic(self.station.topics.base), payload)
        if self.session is None:
            await self.start()  # after the clock has its first position: no sample of the session lacks one
        elif state in ("playing", "paused") and self.state != state:
            self.state = str(state)
            self.broadcast({"type": "session", "session": self.session, "state": self.state})

    async def start(self) -> None:
        await self.station.control.handle("session.start", {})
        self.session = self.station.session.session_id
        assert self.session is not None
        self.folder = self.out / safe_name(self.station.station_id) / safe_name(self.session)
        self.folder.mkdir(parents=True, exist_ok=True)
        body = self.info()
        write_json_atomic(self.folder / SITTING_FILE, body)
        self.station.announcer.event("sitting", self.dial, f"sitting of {self.video.file} rated by {self.rater}", body)
        self.state = "playing"
        print(f"daq rate: session {self.session} started; recording into {self.folder}", flush=True)
        self.broadcast({"type": "session", "session": self.session, "state": self.state})

    async def page_gone(self) -> None:
        """The last page closed mid-sitting: nobody sees the video, so the clock has no position until a page plays."""
        if self.session is None or self.state in ("ended", "gone"):
            return
        await self.position({"state": "stopped", "t_ns": self.station.read_clock.now_ns()})
        self.state = "gone"
        print(f"daq rate: the page closed: session {self.session} goes on, without a media position", flush=True)

    async def ended(self, body: dict[str, Any]) -> None:
        if self.session is None or self.state == "ended":
            return
        await self.position({"state": "stopped", "t_ns": body.get("t_ns")})
        await self.station.control.handle("session.stop", {})
        self.state = "ended"
        print(f"daq rate: end of the video: session {self.session} stopped", flush=True)
        self.broadcast({"type": "done", "session": self.session, "folder": str(self.folder)})
        self.finished.set()


SITTING_KEY = web.AppKey("sitting", Sitting)
ROUTES = web.RouteTableDef()  # the handlers below, after the page (daq.web.app.page_app)
# The page sends a position for every frame it shows (up to the display's rate, faster when played
# faster) and its pings: a higher message rate than the watch page's, the other limits as there.
LIMITS = Limits(messages_per_s=250)


@ROUTES.get("/state.json")
async def state_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[SITTING_KEY].state_json())


@ROUTES.get("/video")
async def serve_video(request: web.Request) -> web.StreamResponse:
    return video_response(request.app[SITTING_KEY].video_path)


@ROUTES.get("/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    sitting = request.app[SITTING_KEY]
    async with PageSocket(request, text=False, name="rate") as page:
        page.send(orjson.dumps({"type": "hello", **sitting.state_json()}))
        sitting.listeners.add(page.send)
        values = asyncio.create_task(_send_values(page, sitting), name="rate-values")
        try:
            async for msg in page:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    body = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(body, dict):
                    continue
                kind = body.get("type")
                if kind == "ping":
                    now = sitting.station.read_clock.now_ns()
                    page.send(orjson.dumps({"type": "pong", "t": body.get("t"), "server_ns": now}))
                elif kind == "position":
                    await sitting.position(body)
                elif kind == "ended":
                    await sitting.ended(body)
        finally:
            values.cancel()
            await asyncio.gather(values, return_exceptions=True)
            sitting.listeners.discard(page.send)
            if not sitting.listeners:
                await sitting.page_gone()
    return page.ws


async def _send_values(page: PageSocket, sitting: Sitting) -> None:
    """The dial's value about every VALUE_EVERY_S, when it changed (the first one always)."""
    last: float | None = None
    first = True
    while not page.dropped:
        await asyncio.sleep(VALUE_EVERY_S)
        value = sitting.value()
        if value != last or first:
            last, first = value, False
            page.send(orjson.dumps({"type": "value", "value": value}))


def make_app(sitting: Sitting, door: Door | None = None) -> web.Application:
    return page_app(STATIC, "rate.html", ROUTES, SITTING_KEY, sitting, door=door, limits=LIMITS)
