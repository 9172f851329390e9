"""Write tables as CSV or Parquet (Parquet needs pyarrow: the optional extra `parquet`).

A table is column names, a type per column and rows. CSV: empty cell for a missing value, numbers
in Python's shortest round-trip form (integral floats without ".0"). Parquet: typed columns
(strings, int64, float64, bool); a missing float is null.
"""

from __future__ import annotations

import csv
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from daq.exceptions import MissingExtraError
from daq.export.reader import ExportError, SessionRecording
from daq.export.resample import Resampled
from daq.export.segments import Window

ColumnType = Literal["string", "int64", "float64", "bool"]
Format = Literal["csv", "parquet"]

TIDY_COLUMNS: tuple[tuple[str, ColumnType], ...] = (
    ("station", "string"),
    ("session", "string"),
    ("dial", "string"),
    ("boot", "string"),
    ("seq", "int64"),
    ("t_ns", "int64"),
    ("media_s", "float64"),
    ("timecode", "string"),
    ("frame", "int64"),
    ("value", "float64"),
    ("raw", "float64"),
)


@dataclass(slots=True)
class Table:
    columns: list[tuple[str, ColumnType]]
    rows: list[list[Any]]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


def tidy_table(session: SessionRecording) -> Table:
    """One row per sample of every dial, in file order, dial by dial."""
    rows: list[list[Any]] = []
    for d in session.dials:
        station = d.station or session.station
        name = d.session or session.session
        for r in d.rows:
            rows.append([station, name, d.dial, r.boot, r.seq, r.t_ns, r.media_s, r.timecode, r.frame, r.value, r.raw])
    return Table(list(TIDY_COLUMNS), rows)


def resampled_table(grid: Resampled) -> Table:
    """Wide: media_s (grid point or bin start), [bin_end_s], timecode, one column per dial, group_mean."""
    columns: list[tuple[str, ColumnType]] = [("media_s", "float64")]
    if grid.kind == "bin":
        columns.append(("bin_end_s", "float64"))
    columns.append(("timecode", "string"))
    columns += [(dial, "float64") for dial in grid.dials]
    columns.append(("group_mean", "float64"))
    timecodes = grid.timecodes()
    ends = grid.ends()
    mean = grid.group_mean()
    rows: list[list[Any]] = []
    for i, start in enumerate(grid.starts):
        row: list[Any] = [start]
        if grid.kind == "bin":
            row.append(ends[i])
        row.append(timecodes[i])
        row += [grid.values[dial][i] for dial in grid.dials]
        row.append(mean[i])
        rows.append(row)
    return Table(columns, rows)


# A window's columns after the one naming what it is of (segments.csv: the target; interview.csv: the sitting).
WINDOW_COLUMNS: list[tuple[str, ColumnType]] = [
    ("kind", "string"),
    ("rank", "int64"),
    ("start_s", "float64"),
    ("end_s", "float64"),
    ("start_timecode", "string"),
    ("end_timecode", "string"),
    ("mean", "float64"),
]


def segments_table(windows: Sequence[Window]) -> Table:
    columns: list[tuple[str, ColumnType]] = [("target", "string"), *WINDOW_COLUMNS]
    rows = [[w.target, w.kind, w.rank, w.start_s, w.end_s, w.start_timecode, w.end_timecode, w.mean] for w in windows]
    return Table(columns, rows)


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    return str(value)


def write_csv(table: Table, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(table.names)
        for row in table.rows:
            writer.writerow([csv_cell(v) for v in row])


def load_pyarrow() -> tuple[ModuleType, ModuleType]:
    """pyarrow and pyarrow.parquet, or MissingExtraError naming the extra."""
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise MissingExtraError("pyarrow", "parquet", "--format parquet") from exc
    return pa, pq


def write_parquet(table: Table, path: Path, metadata: dict[str, str] | None = None) -> None:
    pa, pq = load_pyarrow()
    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    fields = [pa.field(name, types[kind]) for name, kind in table.columns]
    schema = pa.schema(fields, metadata={k.encode(): v.encode() for k, v in (metadata or {}).items()})
    arrays = [pa.array([row[i] for row in table.rows], type=types[kind]) for i, (_, kind) in enumerate(table.columns)]
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), str(path))


def write_table(table: Table, out: Path, stem: str, fmt: Format, metadata: dict[str, str] | None = None) -> Path:
    path = out / f"{stem}.{fmt}"
    try:
        if fmt == "csv":
            write_csv(table, path)
        else:
            write_parquet(table, path, metadata)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    return path


def write_json(data: dict[str, Any], path: Path) -> Path:
    try:
        path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    return path
