"""Control requests on `<root>/<station>/cmd/<verb>`: the session and the media clock, by command.

Verbs: session.start {"timecode"?}, session.stop, session.pause, session.resume,
session.seek {"media_s"}, mark {"label", "dial"?}, clock.set {"clock": session|mpv|mqtt|mtc|none,
"socket"? (mpv), "port"? (mtc), "rate"?, "timecode"? (session)}.

A request is a JSON object (or empty). The reply goes to the request's MQTT 5 response
topic if that is allowed (see daq.station.reply_topics: under `cmd/<verb>/reply` or the reply
prefix, never the station's own topics), or to `<root>/<station>/cmd/<verb>/reply`, and always
carries `ok` and, when the request had one, its `id`. A request with a response topic that is
not allowed is not carried out; its reply (on the default topic) says why.

Control works on what it is given: the session state, the read clock, an announcer (events, the
retained session, replies) and a way to switch the media clock (the clock stage's `install`).
Messages for a media clock (the MQTT position) never come here: the clock stage takes them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import InitVar, dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from daq.config import MediaConfig
from daq.exceptions import MissingExtraError
from daq.mediaclock.base import ClockInputError, MediaClock
from daq.mediaclock.factory import CLOCK_KINDS, make_clock
from daq.mediaclock.session_clock import SessionClock
from daq.readclock import ReadClock
from daq.station.announcer import Announcer
from daq.station.reply_topics import ReplyTopics
from daq.station.session_state import SessionState

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
InstallClock = Callable[[MediaClock | None], None]
# source, reason: a media clock refused an input (the clock stage's `refuse`: counted, reported)
OnRefused = Callable[[str, str], None]


class CommandError(Exception):
    """A request that cannot be carried out; the message goes back in the reply."""


@dataclass(slots=True, eq=False)
class StationControl:
    announcer: Announcer
    session: SessionState
    read_clock: ReadClock
    media: MediaConfig  # the clock settings in force; clock.set changes them
    install_clock: InstallClock
    on_refused: OnRefused | None = None
    replies: InitVar[ReplyTopics | None] = None  # where replies may go (default: from the announcer's topics)
    reply_topics: ReplyTopics = field(init=False)
    verbs: dict[str, Handler] = field(init=False)

    def __post_init__(self, replies: ReplyTopics | None) -> None:
        self.reply_topics = replies or ReplyTopics(self.announcer.topics)
        self.verbs = {
            "session.start": self.session_start,
            "session.stop": self.session_stop,
            "session.pause": self.session_pause,
            "session.resume": self.session_resume,
            "session.seek": self.session_seek,
            "mark": self.mark,
            "clock.set": self.clock_set,
        }

    async def on_command(self, topic: str, payload: bytes, response_topic: str | None) -> None:
        """A request on `cmd/<verb>`: carry it out and reply."""
        verb = topic.rsplit("/", 1)[-1]
        try:
            request = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            request = None
        reply_to, refusal = self.reply_topics.choose(verb, response_topic)
        if refusal is not None:
            log.warning("command %s not carried out: %s", verb, refusal)
            reply: dict[str, Any] = {"verb": verb, "ok": False, "error": f"{refusal}; the command was not carried out"}
            if isinstance(request, dict) and "id" in request:
                reply["id"] = request["id"]
        else:
            reply = await self.handle(verb, request)
        self.announcer.reply(verb, reply, reply_to)

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
        except ClockInputError as exc:  # the media clock refused it: the reply says why, and `events` too
            if self.on_refused is not None:
                self.on_refused(f"cmd/{verb}", str(exc))
            return {**base, "ok": False, "error": f"refused: {exc}"}
        except (TypeError, ValueError, OverflowError) as exc:
            return {**base, "ok": False, "error": f"bad request: {exc}"}
        except Exception as exc:  # never leave a requester waiting for a reply
            log.exception("command %s failed", verb)
            return {**base, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {**base, "ok": True, **result}

    # -- verbs ------------------------------------------------------------------------

    def _session_clock(self) -> SessionClock:
        clock = self.session.clock
        if not isinstance(clock, SessionClock):
            kind = clock.kind if clock is not None else "none"
            raise CommandError(
                f"the media clock is {kind}, not the session clock: control the player itself, "
                'or switch with clock.set {"clock": "session"}'
            )
        return clock

    def _changed(self, kind: str, message: str, data: dict[str, Any]) -> dict[str, Any]:
        self.announcer.session_changed(kind, message, data)
        return {"session": self.session.session_id}

    async def session_start(self, request: dict[str, Any]) -> dict[str, Any]:
        """A new session id; the session clock also starts (at `timecode`), other clocks keep following."""
        timecode = request.get("timecode")
        if timecode is not None:
            self._session_clock()
        self.session.start(self.read_clock.now_ns(), str(timecode) if timecode is not None else None)
        return self._changed("session.start", "session started", {"timecode": timecode})

    async def session_stop(self, request: dict[str, Any]) -> dict[str, Any]:
        """The session ends: readings from now on carry no session; the session clock stops."""
        stopping = self.session.session_id
        self.session.stop()
        self.announcer.event("session.stop", None, "session stopped", {})
        self.announcer.session()
        return {"session": stopping}

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
        now = self.read_clock.now_ns()
        pos, _ = self.session.checked_position_at(self.read_clock.mono_ns(now))  # a mark never fails on the clock
        data = {
            "label": label,
            "media_s": pos.media_s if pos else None,
            "timecode": pos.timecode if pos else None,
        }
        self.announcer.event("mark", request.get("dial"), label, data)
        return data

    async def clock_set(self, request: dict[str, Any]) -> dict[str, Any]:
        """Switch the media clock at run time; options not given keep their current values."""
        kind = request.get("clock")
        if kind not in CLOCK_KINDS:
            choices = " | ".join(f'"{k}"' for k in CLOCK_KINDS)
            raise CommandError(f'give the clock as {{"clock": {choices}}}')
        changes: dict[str, Any] = {"clock": kind}
        for key, setting in (("socket", "mpv_socket"), ("port", "mtc_port"), ("rate", "rate")):
            if request.get(key) is not None:
                changes[setting] = request[key]
        try:
            media = MediaConfig.model_validate({**self.media.model_dump(), **changes})
            clock = make_clock(media)
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise CommandError(problems) from None
        except MissingExtraError as exc:
            raise CommandError(str(exc)) from None
        timecode = request.get("timecode")
        if isinstance(clock, SessionClock) and self.session.session_id is not None:
            clock.start(str(timecode) if timecode is not None else None)  # the session goes on, on this clock
        self.media = media
        self.install_clock(clock)  # a clock fed by messages starts from the last one heard
        data: dict[str, Any] = {"clock": kind, **{k: v for k, v in changes.items() if k != "clock"}}
        if media.mpv_socket is not None and kind == "mpv":
            data["mpv_socket"] = str(media.mpv_socket)
        return self._changed("clock.set", f"media clock: {kind}", data)
