"""Control requests on `<root>/<station>/cmd/<verb>`: session start/stop/pause/resume/seek, marks.

A request is a JSON object (or empty). The reply goes to the request's MQTT 5 response
topic, or to `<root>/<station>/cmd/<verb>/reply`, and always carries `ok` and, when
the request had one, its `id`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiomqtt
import orjson

from daq.mediaclock.session import SessionClock

if TYPE_CHECKING:
    from daq.station import Station

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class CommandError(Exception):
    """A request that cannot be carried out; the message goes back in the reply."""


class StationControl:
    def __init__(self, station: Station) -> None:
        self.station = station
        self.verbs: dict[str, Handler] = {
            "session.start": self.session_start,
            "session.stop": self.session_stop,
            "session.pause": self.session_pause,
            "session.resume": self.session_resume,
            "session.seek": self.session_seek,
            "mark": self.mark,
        }

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return (self.station.topics.cmd_filter,)

    async def on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        verb = topic.rsplit("/", 1)[-1]
        try:
            request = orjson.loads(bytes(message.payload)) if message.payload else {}
        except orjson.JSONDecodeError:
            request = None
        reply_topic = getattr(message.properties, "ResponseTopic", None) or self.station.topics.cmd_reply(
            verb
        )
        reply = await self.handle(verb, request)
        self.station.publisher.send(reply_topic, orjson.dumps(reply))

    async def handle(self, verb: str, request: object) -> dict[str, Any]:
        if not isinstance(request, dict):
            return {"ok": False, "verb": verb, "error": "the request must be a JSON object (or empty)"}
        handler = self.verbs.get(verb)
        base: dict[str, Any] = {"verb": verb}
        if "id" in request:
            base["id"] = request["id"]
        if handler is None:
            return {**base, "ok": False, "error": f"unknown verb; known: {', '.join(sorted(self.verbs))}"}
        try:
            result = await handler(request)
        except CommandError as exc:
            return {**base, "ok": False, "error": str(exc)}
        except (TypeError, ValueError) as exc:
            return {**base, "ok": False, "error": f"bad request: {exc}"}
        return {**base, "ok": True, **result}

    # -- verbs ------------------------------------------------------------------------

    def _session_clock(self) -> SessionClock:
        clock = self.station.session.clock
        if not isinstance(clock, SessionClock):
            raise CommandError(f"the media clock is {getattr(clock, 'kind', 'none')}, not the session clock")
        return clock

    def _changed(self, kind: str, message: str, data: dict[str, Any]) -> dict[str, Any]:
        self.station.emit_event(kind, None, message, data)
        self.station.publish_session()
        return {"session": self.station.session.session_id}

    async def session_start(self, request: dict[str, Any]) -> dict[str, Any]:
        timecode = request.get("timecode")
        self._session_clock()
        self.station.start_session(str(timecode) if timecode is not None else None)
        return self._changed("session.start", "session started", {"timecode": timecode})

    async def session_stop(self, request: dict[str, Any]) -> dict[str, Any]:
        self._session_clock().stop()
        result = self._changed("session.stop", "session stopped", {})
        self.station.session.session_id = None
        self.station.publish_session()
        return result

    async def session_pause(self, request: dict[str, Any]) -> dict[str, Any]:
        seg = self._session_clock().pause()
        return self._changed("clock.pause", "paused", {"media_s": seg.media_ns / 1e9})

    async def session_resume(self, request: dict[str, Any]) -> dict[str, Any]:
        seg = self._session_clock().resume()
        return self._changed("clock.resume", "resumed", {"media_s": seg.media_ns / 1e9})

    async def session_seek(self, request: dict[str, Any]) -> dict[str, Any]:
        if "media_s" not in request:
            raise CommandError('give the position as {"media_s": seconds}')
        seg = self._session_clock().seek(float(request["media_s"]))
        return self._changed("clock.seek", "sought", {"media_s": seg.media_ns / 1e9})

    async def mark(self, request: dict[str, Any]) -> dict[str, Any]:
        label = str(request.get("label", "mark"))
        now = self.station.read_clock.now_ns()
        pos = self.station.session.position_at(self.station.read_clock.mono_ns(now))
        data = {
            "label": label,
            "media_s": pos.media_s if pos else None,
            "timecode": pos.timecode if pos else None,
        }
        self.station.emit_event("mark", request.get("dial"), label, data)
        return data
