"""The recorder's files: one recording per (station, session, dial), their headers, and summary.json.

Files go to `<out>/<station>/<session>/<dial>.csv` (a shared group member's part:
`<dial>@<recorder>.csv`) in the format of `daq.recording`. One file per dial is open at a time
(a new session of a dial closes the earlier one's file), so a recorder that runs for days does
not run out of descriptors; a late sample of an earlier session reopens its file. A file that
exists already (an earlier run with the same client id) is continued: its rows are counted, the
(boot, seq) pairs it holds are handed to `on_resumed`, and a torn last line is ended first.
At close each session folder gets `summary.json` (a part: `summary@<recorder>.json`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from daq.recording import (
    COLUMNS,
    PART_SEPARATOR,
    ends_torn,
    file_name,
    header_text,
    read_recording,
    row_writer,
    safe_name,
    sample_cells,
)

if TYPE_CHECKING:
    from _csv import Writer

log = logging.getLogger(__name__)

Resumed = Callable[[str, str, str, dict[str, list[int]], list[tuple[str, int, int]]], None]
"""(station, session, dial, boot -> seqs already in the file, (boot, lo, hi) gaps its summary.json
reported for the dial): what a continued file holds."""
Report = Callable[[str, str, set[str]], dict[str, Any]]
"""(station, session, dials) -> what the session's summary.json adds: its gaps, its refusals."""
Header = Callable[[], Mapping[str, object]]
"""The header fields of a new file, asked for only when a file is created."""


@dataclass
class DialFile:
    """One open (or closed) recording of one session and dial."""

    path: Path
    handle: TextIO
    writer: Writer
    rows: int = 0
    late: int = 0  # rows written after a row with a higher seq: the file is not in seq order


def header_fields(
    station: str,
    session: str,
    dial: str,
    meta: Mapping[str, Any],
    clock: Mapping[str, Any],
    recorder: str | None = None,
    share: str | None = None,
) -> dict[str, object]:
    """A recording's header from the dial's retained meta and the session's clock."""
    fields: dict[str, object] = {
        "station": station,
        "dial": dial,
        "session": session,
        "profile": meta.get("profile", ""),
        "device": meta.get("device", ""),
        "scale": json.dumps(meta.get("scale", {}), sort_keys=True),
        "rate_hz": meta.get("rate_hz", ""),
        "timecode_rate": clock.get("rate", ""),
        "media_clock": clock.get("kind", ""),
    }
    if share is not None:
        fields["recorder"] = recorder or ""
        fields["share"] = share
    return fields


@dataclass
class RecordingFiles:
    """The recorder's open files by (station, session, dial); writes rows, flushes, summarises."""

    out_dir: Path
    recorder: str | None = None  # a shared group member: names its parts
    share: str | None = None
    on_resumed: Resumed | None = None
    files: dict[tuple[str, str, str], DialFile] = field(default_factory=dict)
    _dirty: set[int] = field(default_factory=set)  # ids of DialFiles written since the last flush

    def file(self, station: str, session: str, dial: str, header: Header) -> DialFile:
        """The file for this session and dial: open, reopened, continued or new."""
        key = (station, session, dial)
        found = self.files.get(key)
        if found is not None:
            if found.handle.closed:  # a late sample of an earlier session of this dial
                found.handle = found.path.open("a", encoding="utf-8", newline="")
                found.writer = row_writer(found.handle)
            return found
        for (st, _, d), entry in self.files.items():  # this dial's earlier sessions are done
            if st == station and d == dial and not entry.handle.closed:
                entry.handle.close()
        folder = self.out_dir / safe_name(station) / safe_name(session)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / file_name(dial, self.recorder)
        fresh = not path.exists() or path.stat().st_size == 0
        existing = 0 if fresh else self._resume(path, station, session, dial)
        handle = path.open("a", encoding="utf-8", newline="")
        writer = row_writer(handle)
        if fresh:
            handle.write(header_text(header()))
            writer.writerow(COLUMNS)
        entry = DialFile(path, handle, writer, rows=existing)
        self.files[key] = entry
        return entry

    def write(self, entry: DialFile, sample: Mapping[str, Any]) -> None:
        entry.writer.writerow(sample_cells(sample))
        entry.rows += 1
        self._dirty.add(id(entry))

    def _resume(self, path: Path, station: str, session: str, dial: str) -> int:
        """Continuing a file of an earlier run: its samples count as seen; a torn last line is ended."""
        recording = read_recording(path)
        seen: dict[str, list[int]] = {}
        if recording.has("boot", "seq"):
            i_boot, i_seq = recording.columns.index("boot"), recording.columns.index("seq")
            for row in recording.rows:
                try:
                    seen.setdefault(row[i_boot], []).append(int(row[i_seq]))
                except ValueError:
                    continue
        if self.on_resumed is not None:
            self.on_resumed(station, session, dial, seen, _reported_gaps(path.parent, dial))
        if ends_torn(path):
            with path.open("a", encoding="utf-8") as out:
                out.write("\n")
        log.info("recorder: continuing %s (%d rows already there)", path, len(recording.rows))
        return len(recording.rows)

    def flush(self) -> None:
        """Hand what was written to the operating system (before it is acknowledged)."""
        if not self._dirty:
            return
        for entry in self.files.values():
            if id(entry) in self._dirty and not entry.handle.closed:
                entry.handle.flush()
        self._dirty.clear()

    def close(self, report: Report, duplicates: int) -> None:
        """Close every file and write each session folder's summary.

        `report(station, session, dials)` gives the session's gaps and refusals (a part's gaps are
        not asked for: the other members hold the rest); `duplicates` is how many re-sent samples
        were dropped."""
        summaries: dict[Path, dict[str, Any]] = {}
        for (station, session, dial), entry in self.files.items():
            entry.handle.close()
            summary = summaries.setdefault(entry.path.parent, {"station": station, "session": session, "dials": {}})
            summary["dials"][dial] = {"rows": entry.rows, "file": entry.path.name}
            if entry.late:
                summary["dials"][dial]["out_of_order"] = entry.late
        self.files.clear()
        self._dirty.clear()
        for folder, summary in summaries.items():
            name = "summary.json"
            if self.share is not None:
                # A part: which seqs are missing is known only after `merge` (the others hold them).
                summary["recorder"] = self.recorder
                summary["share"] = self.share
                summary["partial"] = True
                name = f"summary{PART_SEPARATOR}{self.recorder}.json"
            extra = report(summary["station"], summary["session"], set(summary["dials"]))
            if self.share is None:
                summary["gaps"] = extra["gaps"]
            if "rejected" in extra:
                summary["rejected"] = extra["rejected"]
            summary["duplicates_dropped"] = duplicates
            (folder / name).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def _reported_gaps(folder: Path, dial: str) -> list[tuple[str, int, int]]:
    """The gaps of `dial` in the folder's summary.json (an earlier run's), as (boot, lo, hi)."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        gaps = summary.get("gaps", []) if isinstance(summary, dict) else []
        return [
            (str(g["boot"]), int(lo), int(hi))
            for g in gaps
            if isinstance(g, dict) and g.get("dial") == dial
            for lo, hi in g.get("missing", [])
        ]
    except (OSError, ValueError, TypeError, KeyError):
        return []
