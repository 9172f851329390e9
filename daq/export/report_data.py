"""What the HTML report shows besides the grid: pauses and seeks, marks, and the interview answers.

- Pauses and seeks are read from the samples themselves (every sitting's samples carry read time
  `t_ns` and media time `media_s`): between two consecutive samples of a dial in read order, media
  time standing still for at least `MIN_PAUSE_S` of read time is a pause; media time jumping back,
  or ahead by more than `SEEK_SLACK_S` beyond the read time that passed, is a seek.
- Marks come from `<session>/events.jsonl` when a sitting has one: one event payload per line as
  published on `<root>/<station>/events` (CONTRACT.md); those of kind `mark` with `data.media_s`.
  The recorder does not write this file today, so most reports show no marks.
- Interview answers come from `<session>/interview.json` (written by `daq review`): a list of
  answers, or an object holding one under `answers`, `segments` or `items`. Each answer is shown
  with whichever of these keys it has: `kind`, `rank`, `start_s`, `end_s`, `start_timecode`,
  `end_timecode`, `answer`/`text`, `tags`/`categories`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daq.export.reader import ExportError, SessionRecording
from daq.export.resample import media_rows

MIN_PAUSE_S = 0.5
SEEK_SLACK_S = 0.5


@dataclass(frozen=True, slots=True)
class ClockEvent:
    sitting: str  # station/session
    kind: str  # "pause", "seek" or "mark"
    media_s: float  # where it happened (for a seek: where it went from)
    to_s: float | None = None  # a seek's destination
    duration_s: float | None = None  # a pause's length in read time
    label: str = ""


def clock_events(session: SessionRecording) -> list[ClockEvent]:
    """Pauses and seeks of one sitting, from its dial with the most samples on media time."""
    name = f"{session.station}/{session.session}"
    if not session.dials:
        return []
    rows = max((media_rows(d.rows) for d in session.dials), key=len)
    out: list[ClockEvent] = []
    still_since: tuple[int, float] | None = None  # (t_ns, media_s) where media time stopped
    for a, b in itertools.pairwise(rows):
        assert a.media_s is not None
        assert b.media_s is not None
        dt = (b.t_ns - a.t_ns) / 1e9
        dm = b.media_s - a.media_s
        if abs(dm) < 1e-6:
            if still_since is None:
                still_since = (a.t_ns, a.media_s)
            continue
        if still_since is not None:
            stood = (b.t_ns - still_since[0]) / 1e9 - max(dm, 0.0)
            if stood >= MIN_PAUSE_S:
                out.append(ClockEvent(name, "pause", still_since[1], duration_s=stood))
            still_since = None
        if dm < -1e-3 or dm - dt > SEEK_SLACK_S:
            out.append(ClockEvent(name, "seek", a.media_s, to_s=b.media_s))
    if still_since is not None:
        stood = (rows[-1].t_ns - still_since[0]) / 1e9
        if stood >= MIN_PAUSE_S:
            out.append(ClockEvent(name, "pause", still_since[1], duration_s=stood))
    return out


def marks(session: SessionRecording) -> list[ClockEvent]:
    path = session.folder / "events.jsonl"
    if not path.is_file():
        return []
    name = f"{session.station}/{session.session}"
    out: list[ClockEvent] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(event, dict) or event.get("kind") != "mark":
            continue
        data = event.get("data")
        media = data.get("media_s") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(media, int | float):
            label = str(data.get("label") or event.get("message") or "mark")
            out.append(ClockEvent(name, "mark", float(media), label=label))
    return out


def interview(session: SessionRecording) -> list[dict[str, Any]]:
    """The answers in `<session>/interview.json`, or [] when there is none."""
    path = session.folder / "interview.json"
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: not readable as JSON ({exc})") from exc
    if isinstance(data, dict):
        for key in ("answers", "segments", "items"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
            if isinstance(data.get(key), dict):  # `daq review`'s file: answers keyed by segment
                data = list(data[key].values())
                break
        else:
            data = [v for v in data.values() if isinstance(v, dict)]
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def read_events(sessions: list[SessionRecording]) -> list[ClockEvent]:
    return [e for s in sessions for e in (*clock_events(s), *marks(s))]


def interviews(sessions: list[SessionRecording]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(f"{s.station}/{s.session}", answers) for s in sessions if (answers := interview(s))]


def folder_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"
