"""The recall interview's web server (aiohttp): one session's trace, its segments, the answers.

GET  /                 the page (static/review.html); /static/... its script and style
GET  /video            the --video file (range requests), only when it matches the session's hash
GET  /api/state        session, trace on the media grid, codebook, saved settings and answers, video check
GET  /api/segments     ?count=3&window=10&gap=0&lag=0: the segments (daq.study.picks), or 400 with why
POST /api/settings     {"count", "window_s", "gap_s", "lag_s", "lead_s"}: saved in interview.json
POST /api/answer       {"key", "segment": {...}, "text", "tags": [...]}: saved (interview.json + .csv)

Built with `daq.web.app.page_app`: every request passes the pages' door (`daq.web.door`: the token
off loopback, a loopback Host on loopback, a POST only from the page's own Origin).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from daq.export.reader import ExportError, SessionRecording
from daq.export.resample import Resampled
from daq.study import STATIC
from daq.study.codebook import Codebook
from daq.study.interview import Interview, InterviewError
from daq.study.picks import pick_segments, segment_json
from daq.web.app import page_app, video_response
from daq.web.door import Door, Limits

log = logging.getLogger(__name__)

LIMITS = Limits(body_bytes=1 << 20)  # an answer's free text: up to 1 MB a request (aiohttp's default)
DEFAULTS: dict[str, float] = {"count": 3, "window_s": 10.0, "gap_s": 0.0, "lag_s": 0.0, "lead_s": 3.0}


@dataclass(slots=True)
class Review:
    """One session's interview: its recording on the media grid, the answers, the codebook, the video checked."""

    session: SessionRecording
    grid: Resampled
    interview: Interview
    codebook: Codebook
    video: Path | None
    video_note: str  # what the page says about the video ("" when it plays)
    video_ok: bool
    sitting: dict[str, Any] | None
    target: str = "mean"  # the dial whose segments are found, or the group mean

    def settings(self) -> dict[str, float]:
        return {**DEFAULTS, **self.interview.settings}

    def segments(self, settings: dict[str, float]) -> list[dict[str, Any]]:
        windows = pick_segments(
            self.grid, int(settings["count"]), settings["window_s"], settings["gap_s"], settings["lag_s"], self.target
        )
        return [segment_json(w) for w in windows]

    def state(self) -> dict[str, Any]:
        settings = self.settings()
        try:
            segments, error = self.segments(settings), ""
        except ExportError as exc:
            segments, error = [], str(exc)
        scale = next((d.scale for d in self.session.dials if d.scale), {})
        return {
            "station": self.session.station,
            "session": self.session.session,
            "folder": str(self.session.folder),
            "rate": self.session.timecode_rate,
            "dials": self.grid.dials,
            "scale": scale,
            "sitting": self.sitting,
            "target": self.target,
            "trace": {"step": self.grid.step, "starts": self.grid.starts, "mean": self.grid.series(self.target)},
            "codebook": self.codebook.as_json(),
            "settings": settings,
            "segments": segments,
            "segments_error": error,
            "answers": self.interview.answers,
            "video": {"ok": self.video_ok, "note": self.video_note, "url": "/video" if self.video_ok else None},
            "files": {"json": str(self.interview.json_path), "csv": str(self.interview.csv_path)},
        }


REVIEW_KEY = web.AppKey("review", Review)
ROUTES = web.RouteTableDef()  # the handlers below, after the page (daq.web.app.page_app)


@ROUTES.get("/video")
async def serve_video(request: web.Request) -> web.StreamResponse:
    review = request.app[REVIEW_KEY]
    if review.video is None or not review.video_ok:
        raise web.HTTPNotFound(text=review.video_note or "no video")
    return video_response(review.video)


@ROUTES.get("/api/state")
async def api_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[REVIEW_KEY].state())


def _settings_of(source: dict[str, Any], base: dict[str, float]) -> dict[str, float]:
    out = dict(base)
    for key in DEFAULTS:
        if key in source and source[key] not in (None, ""):
            try:
                out[key] = float(source[key])
            except (TypeError, ValueError):
                raise ExportError(f"{key}: give a number, not {source[key]!r}") from None
    return out


@ROUTES.get("/api/segments")
async def api_segments(request: web.Request) -> web.Response:
    review = request.app[REVIEW_KEY]
    query = {k: request.query[k] for k in request.query}
    aliases = {"window": "window_s", "gap": "gap_s", "lag": "lag_s", "lead": "lead_s"}
    try:
        settings = _settings_of({aliases.get(k, k): v for k, v in query.items()}, review.settings())
        return web.json_response({"segments": review.segments(settings), "settings": settings})
    except ExportError as exc:
        return web.json_response({"error": str(exc)}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="send a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="send a JSON object")
    return body


@ROUTES.post("/api/settings")
async def api_settings(request: web.Request) -> web.Response:
    review = request.app[REVIEW_KEY]
    body = await _body(request)
    try:
        settings = _settings_of(body, review.settings())
        segments = review.segments(settings)
    except ExportError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    review.interview.set_settings(settings)
    return web.json_response({"settings": settings, "segments": segments})


@ROUTES.post("/api/answer")
async def api_answer(request: web.Request) -> web.Response:
    review = request.app[REVIEW_KEY]
    body = await _body(request)
    raw_segment = body.get("segment")
    segment: dict[str, Any] = raw_segment if isinstance(raw_segment, dict) else {}
    tags = body.get("tags", [])
    try:
        entry = review.interview.answer(str(body.get("key", "")), segment, body.get("text", ""), list(tags))
    except (InterviewError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except OSError as exc:
        log.error("cannot save the interview: %s", exc)
        return web.json_response({"error": f"cannot save: {exc}"}, status=500)
    return web.json_response({"saved": True, "answer": entry})


def make_app(review: Review, door: Door | None = None) -> web.Application:
    return page_app(STATIC, "review.html", ROUTES, REVIEW_KEY, review, door=door, limits=LIMITS)
