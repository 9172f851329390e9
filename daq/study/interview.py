"""The interview's answers: one free text and a set of codebook tags per segment.

Kept in `<session>/interview.json` (the whole state: the page's settings and every answer, keyed by
`daq.study.picks.segment_key`) and `<session>/interview.csv` (one row per answered segment, with its
timecodes), both rewritten atomically on every change (temporary file, fsync, rename), so a killed
server or a closed browser loses nothing that the page reported saved.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daq.exceptions import FatalError
from daq.study.sitting import write_json_atomic, write_text_atomic

JSON_FILE = "interview.json"
CSV_FILE = "interview.csv"
CSV_COLUMNS = (
    "kind",
    "rank",
    "start_s",
    "end_s",
    "start_timecode",
    "end_timecode",
    "mean",
    "lag_s",
    "tags",
    "text",
    "updated_utc",
)
SEGMENT_FIELDS = ("kind", "rank", "start_s", "end_s", "start_timecode", "end_timecode", "mean", "target")
SETTING_KEYS = ("count", "window_s", "gap_s", "lag_s", "lead_s")


class InterviewError(FatalError):
    """interview.json cannot be read or an answer is malformed."""


@dataclass(slots=True)
class Interview:
    folder: Path
    station: str
    session: str
    settings: dict[str, float] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    codebook: dict[str, object] = field(default_factory=dict)

    @property
    def json_path(self) -> Path:
        return self.folder / JSON_FILE

    @property
    def csv_path(self) -> Path:
        return self.folder / CSV_FILE

    @classmethod
    def open(cls, folder: Path, station: str, session: str) -> Interview:
        found = cls(folder, station, session)
        path = found.json_path
        if not path.exists():
            return found
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InterviewError(f"{path}: cannot read the saved interview: {exc}") from exc
        if not isinstance(body, dict):
            raise InterviewError(f"{path}: not an interview (a JSON object is expected)")
        settings = body.get("settings") or {}
        answers = body.get("answers") or {}
        if isinstance(settings, dict):
            found.settings = {k: float(v) for k, v in settings.items() if k in SETTING_KEYS and _is_number(v)}
        if isinstance(answers, dict):
            found.answers = {str(k): v for k, v in answers.items() if isinstance(v, dict)}
        return found

    def body(self) -> dict[str, Any]:
        return {
            "v": 1,
            "station": self.station,
            "session": self.session,
            "codebook": self.codebook,
            "settings": self.settings,
            "answers": self.answers,
        }

    def set_settings(self, settings: dict[str, Any]) -> None:
        self.settings = {k: float(settings[k]) for k in SETTING_KEYS if _is_number(settings.get(k))}
        self.save()

    def answer(self, key: str, segment: dict[str, Any], text: str, tags: list[str]) -> dict[str, Any]:
        """Record (or replace) the answer for one segment and save both files."""
        if not key or not isinstance(text, str) or not all(isinstance(t, str) for t in tags):
            raise InterviewError("an answer needs a key, a text and a list of tags")
        entry: dict[str, Any] = {f: segment.get(f) for f in SEGMENT_FIELDS}
        entry.update(
            {
                "lag_s": self.settings.get("lag_s", 0.0),
                "text": text,
                "tags": list(dict.fromkeys(tags)),
                "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        previous = self.answers.get(key)
        if previous is not None:  # keep the segment's facts from when it was first answered if not sent again
            for f in SEGMENT_FIELDS:
                if entry.get(f) is None and previous.get(f) is not None:
                    entry[f] = previous[f]
        self.answers[key] = entry
        self.save()
        return entry

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        rows = sorted(self.answers.values(), key=lambda a: (float(a.get("start_s") or 0.0), str(a.get("kind"))))
        for a in rows:
            cells = dict(a)
            cells["tags"] = ";".join(a.get("tags") or [])
            writer.writerow(["" if cells.get(c) is None else cells.get(c) for c in CSV_COLUMNS])
        return out.getvalue()

    def save(self) -> None:
        write_json_atomic(self.json_path, self.body())
        write_text_atomic(self.csv_path, self.csv_text())


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
