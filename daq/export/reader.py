"""Read the recorder's files: `<out>/<station>/<session>/<dial>.csv` and the session's `summary.json`.

A dial file is `#` header lines (`# key: value`; `scale` is JSON) followed by a CSV table with the
columns `boot,seq,t_ns,media_s,timecode,frame,value,raw,replay` (see README "Recording files").
Empty cells are nulls. Columns are found by name, so a later recorder that adds a column still reads.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daq.exceptions import FatalError

REQUIRED = ("boot", "seq", "t_ns", "media_s", "timecode", "frame", "value", "raw")
NOT_DIAL_FILES = frozenset({"interview.csv"})  # `daq review` writes it into the session folder


class ExportError(FatalError):
    """A recording cannot be read or exported; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Row:
    """One sample as the recorder wrote it."""

    boot: str
    seq: int
    t_ns: int
    media_s: float | None
    timecode: str | None
    frame: int | None
    value: float
    raw: float
    replay: bool = False


@dataclass(slots=True)
class DialRecording:
    """One dial's file: its header and its rows in file order."""

    path: Path
    dial: str
    header: dict[str, str]
    rows: list[Row]
    scale: dict[str, Any] = field(default_factory=dict)

    @property
    def station(self) -> str:
        return self.header.get("station", "")

    @property
    def session(self) -> str:
        return self.header.get("session", "")

    @property
    def timecode_rate(self) -> str:
        return self.header.get("timecode_rate", "")

    @property
    def rate_hz(self) -> float | None:
        text = self.header.get("rate_hz", "")
        try:
            return float(text) if text else None
        except ValueError:
            return None


@dataclass(slots=True)
class SessionRecording:
    """All dial files of one session folder."""

    folder: Path
    station: str
    session: str
    dials: list[DialRecording]
    recorder_summary: dict[str, Any] | None = None

    @property
    def timecode_rate(self) -> str:
        return next((d.timecode_rate for d in self.dials if d.timecode_rate), "")


def _optional_float(text: str) -> float | None:
    return float(text) if text.strip() else None


def _optional_int(text: str) -> int | None:
    return int(text) if text.strip() else None


def _number(text: str) -> float:
    if not text.strip():
        raise ValueError("empty")
    return float(text)


def _parse_row(cells: dict[str, str]) -> Row:
    return Row(
        boot=cells["boot"],
        seq=int(cells["seq"]),
        t_ns=int(cells["t_ns"]),
        media_s=_optional_float(cells["media_s"]),
        timecode=cells["timecode"] or None,
        frame=_optional_int(cells["frame"]),
        value=_number(cells["value"]),
        raw=_number(cells["raw"]),
        replay=cells.get("replay", "").strip().lower() in ("true", "1", "yes"),
    )


def read_dial_file(path: Path) -> DialRecording:
    """Read one recorder CSV; raise ExportError naming the file and line on anything malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    header: dict[str, str] = {}
    lines = text.splitlines()
    first_data = 0
    for number, line in enumerate(lines):
        if not line.startswith("#"):
            first_data = number
            break
        body = line[1:].strip()
        key, sep, value = body.partition(":")
        if sep:
            header[key.strip()] = value.strip()
    else:
        first_data = len(lines)
    table = lines[first_data:]
    if not table or not table[0].strip():
        raise ExportError(f"{path}: no column line after the '#' header (expected {','.join(REQUIRED)},...)")
    reader = csv.DictReader(table)
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise ExportError(f"{path}: line {first_data + 1}: missing column(s) {', '.join(missing)}")
    rows: list[Row] = []
    for offset, cells in enumerate(reader):
        line_no = first_data + 2 + offset
        try:
            rows.append(_parse_row(cells))
        except (ValueError, TypeError) as exc:
            raise ExportError(f"{path}: line {line_no}: not a sample row ({exc})") from exc
    scale: dict[str, Any] = {}
    if header.get("scale"):
        try:
            loaded = json.loads(header["scale"])
        except json.JSONDecodeError as exc:
            raise ExportError(f"{path}: header 'scale' is not JSON: {exc}") from exc
        if isinstance(loaded, dict):
            scale = loaded
    dial = header.get("dial") or path.stem
    return DialRecording(path=path, dial=dial, header=header, rows=rows, scale=scale)


def read_session(folder: Path) -> SessionRecording:
    """Read every `<dial>.csv` in a session folder (`<out>/<station>/<session>/`), sorted by dial id."""
    if not folder.is_dir():
        raise ExportError(f"{folder}: not a folder; give a session folder <out>/<station>/<session>/")
    files = sorted(p for p in folder.glob("*.csv") if p.is_file() and p.name not in NOT_DIAL_FILES)
    dials = [read_dial_file(p) for p in files]
    dials = [d for d in dials if d.header or d.rows]
    if not dials:
        raise ExportError(
            f"{folder}: no dial files (*.csv) here; give a session folder <out>/<station>/<session>/ "
            "as written by `daq record`"
        )
    seen: dict[str, Path] = {}
    for d in dials:
        if d.dial in seen:
            raise ExportError(f"{d.path}: dial {d.dial!r} is also in {seen[d.dial]}")
        seen[d.dial] = d.path
    dials.sort(key=lambda d: d.dial)
    station = next((d.station for d in dials if d.station), folder.parent.name)
    session = next((d.session for d in dials if d.session), folder.name)
    summary: dict[str, Any] | None = None
    summary_path = folder / "summary.json"
    if summary_path.is_file():
        try:
            loaded = json.loads(summary_path.read_text(encoding="utf-8"))
            summary = loaded if isinstance(loaded, dict) else None
        except (OSError, json.JSONDecodeError):
            summary = None
    return SessionRecording(folder=folder, station=station, session=session, dials=dials, recorder_summary=summary)
