"""Tables of several sittings: the tidy table with a `rater` column, and segments as JSON rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from daq.export.segments import Window
from daq.export.sittings import Sittings
from daq.export.writers import TIDY_COLUMNS, ColumnType, Table


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
    return [
        {
            "target": w.target,
            "kind": w.kind,
            "rank": w.rank,
            "start_s": w.start_s,
            "end_s": w.end_s,
            "start_timecode": w.start_timecode,
            "end_timecode": w.end_timecode,
            "mean": w.mean,
        }
        for w in windows
    ]
