"""Read the recorder's files as typed samples: `<out>/<station>/<session>/<dial>.csv` and `summary.json`.

The file format (header lines, columns, torn rows, a shared group's parts) is `daq.recording`'s,
the same module the recorder writes with and `daq record merge` reads with; this module turns its
text cells into typed rows (empty cells are nulls) and says which file and line is malformed.
A session recorded by a shared group is read from its merged `<dial>.csv` files: the parts
(`<dial>@<recorder>.csv`) are each only a share of the samples.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daq.exceptions import FatalError
from daq.recording import REQUIRED, Recording, is_part, part_of, read_recording

log = logging.getLogger(__name__)

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
    torn: int = 0  # rows skipped: cut off when a recorder stopped while writing them

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
        recording = read_recording(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ExportError(f"{path}: cannot read: {reason}") from exc
    return _typed(recording)


def _typed(recording: Recording) -> DialRecording:
    path, header = recording.path, recording.header
    if not recording.columns:
        line = f"line {recording.column_line}: " if recording.column_line else ""
        raise ExportError(f"{path}: {line}no column line after the '#' header (expected {','.join(REQUIRED)},...)")
    missing = [c for c in REQUIRED if c not in recording.columns]
    if missing:
        raise ExportError(f"{path}: line {recording.column_line}: missing column(s) {', '.join(missing)}")
    rows: list[Row] = []
    for line_no, cells in zip(recording.lines, recording.records(), strict=True):
        try:
            rows.append(_parse_row(cells))
        except (ValueError, TypeError) as exc:
            raise ExportError(f"{path}: line {line_no}: not a sample row ({exc})") from exc
    if recording.torn:
        log.warning("%s: %d torn rows skipped (a recorder stopped while writing them)", path, recording.torn)
    scale: dict[str, Any] = {}
    if header.get("scale"):
        try:
            loaded = json.loads(header["scale"])
        except json.JSONDecodeError as exc:
            raise ExportError(f"{path}: header 'scale' is not JSON: {exc}") from exc
        if isinstance(loaded, dict):
            scale = loaded
    return DialRecording(path=path, dial=recording.dial, header=header, rows=rows, scale=scale, torn=recording.torn)


def _whole_files(folder: Path) -> list[Path]:
    """The session's `<dial>.csv` files; ExportError when a dial is in parts of a group not merged yet."""
    files = sorted(p for p in folder.glob("*.csv") if p.is_file() and p.name not in NOT_DIAL_FILES)
    whole = [p for p in files if not is_part(p)]
    parted = {part_of(p)[0] for p in files if is_part(p)}
    unmerged = sorted(parted - {p.stem for p in whole})
    unmerged += [p.stem for p in whole if p.stem in parted and not _merged(p)]
    if unmerged:
        raise ExportError(
            f"{folder}: dial(s) {', '.join(sorted(unmerged))} are in parts of a shared recorder group "
            f"(<dial>@<recorder>.csv), not merged: run `daq record merge {folder}` first"
        )
    return whole


def _merged(path: Path) -> bool:
    """A `<dial>.csv` that `daq record merge` wrote (it names its parts in `merged_from`)."""
    try:
        return "merged_from" in read_recording(path, header_only=True).header
    except (OSError, UnicodeDecodeError):
        return True  # read_dial_file says what is wrong with it


def read_session(folder: Path) -> SessionRecording:
    """Read every `<dial>.csv` in a session folder (`<out>/<station>/<session>/`), sorted by dial id."""
    if not folder.is_dir():
        raise ExportError(f"{folder}: not a folder; give a session folder <out>/<station>/<session>/")
    dials = [read_dial_file(p) for p in _whole_files(folder)]
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
