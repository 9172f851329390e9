"""Tables of several sittings: the tidy table with a `rater` column, interview answers, segments as JSON rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from daq.export.report_data import interviews
from daq.export.segments import Window
from daq.export.sittings import Sittings
from daq.export.writers import TIDY_COLUMNS, WINDOW_COLUMNS, ColumnType, Table


def sittings_tidy_table(sittings: Sittings) -> Table:
    """One row per sample of every rater, rater by rater, media_s as recorded (no lag shift)."""
    columns: list[tuple[str, ColumnType]] = [("rater", "string"), *TIDY_COLUMNS]
    rows: list[list[Any]] = []
    for rater in sittings.raters:
        for r in rater.recording.rows:
            rows.append(
                [
                    rater.label,
                    rater.station,
                    rater.session,
                    rater.dial,
                    r.boot,
                    r.seq,
                    r.t_ns,
                    r.media_s,
                    r.timecode,
                    r.frame,
                    r.value,
                    r.raw,
                ]
            )
    return Table(columns, rows)


def windows_json(windows: Sequence[Window]) -> list[dict[str, Any]]:
    """The windows as JSON objects, their fields in order (target, kind, rank, start_s, ... mean)."""
    return [asdict(w) for w in windows]


# `daq review`'s interview.csv columns (daq.study.interview.CSV_COLUMNS), after the sitting they belong to.
INTERVIEW_COLUMNS: list[tuple[str, ColumnType]] = [
    ("sitting", "string"),
    *WINDOW_COLUMNS,
    ("lag_s", "float64"),
    ("tags", "string"),
    ("text", "string"),
    ("updated_utc", "string"),
]


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def interview_table(sittings: Sittings) -> Table | None:
    """The answers of every sitting's `interview.json` (see `daq.export.report_data`), or None without any."""
    rows: list[list[Any]] = []
    for sitting, answers in interviews(sittings.sittings):
        for a in sorted(answers, key=lambda a: (_float(a.get("start_s")) or 0.0, str(a.get("kind")))):
            tags = a.get("tags", a.get("categories", []))
            rank = a.get("rank")
            rows.append(
                [
                    sitting,
                    str(a.get("kind") or "") or None,
                    rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
                    _float(a.get("start_s")),
                    _float(a.get("end_s")),
                    str(a.get("start_timecode") or "") or None,
                    str(a.get("end_timecode") or "") or None,
                    _float(a.get("mean")),
                    _float(a.get("lag_s")),
                    ";".join(map(str, tags)) if isinstance(tags, list) else str(tags),
                    str(a.get("text", a.get("answer", ""))),
                    str(a.get("updated_utc") or "") or None,
                ]
            )
    return Table(list(INTERVIEW_COLUMNS), rows) if rows else None
