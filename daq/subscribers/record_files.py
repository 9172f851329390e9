"""The recorder's files: one recording per (station, session, dial), their headers, and summary.json.

Files go to `<out>/<station>/<session>/<dial>.csv` (a shared group member's part:
`<dial>@<recorder>.csv`) in the format of `daq.recording`. One file per dial is open at a time
(a new session of a dial closes the earlier one's file), so a recorder that runs for days does
not run out of descriptors; a late sample of an earlier session reopens its file. A file that
exists already (an earlier run with the same client id) is continued: its rows are counted, the
(boot, seq) pairs it holds are handed to `on_resumed`, and a torn last line is ended first.
At close each session folder gets `summary.json` (a part: `summary@<recorder>.json`).

Rows are committed in batches (`flush`, before the messages are acknowledged): a batch that cannot
be written (ENOSPC, EIO) is cut off the file again, so the file holds exactly the committed rows
and a sample the broker sends again is written once; `flush` says which files failed.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daq.recording import (
    COLUMNS,
    PART_SEPARATOR,
    ends_torn,
    file_name,
    header_text,
    read_recording,
    render_row,
    row_writer,
    safe_name,
    sample_cells,
)

if TYPE_CHECKING:
    from _csv import Writer

log = logging.getLogger(__name__)

_write: Callable[[int, bytes], int] = os.write  # every write of rows goes through this (tests make it fail)
OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)

Resumed = Callable[[str, str, str, dict[str, list[int]], list[tuple[str, int, int]]], None]
"""(station, session, dial, boot -> seqs already in the file, (boot, lo, hi) gaps its summary.json
reported for the dial): what a continued file holds."""
Report = Callable[[str, str, set[str]], dict[str, Any]]
"""(station, session, dials) -> what the session's summary.json adds: its gaps, its refusals, and
per dial the rows that could not be written (`not_written`, a mapping dial -> count)."""
Header = Callable[[], Mapping[str, object]]
"""The header fields of a new file, asked for only when a file is created."""


@dataclass(eq=False)
class DialFile:
    """One recording of one session and dial: its rows committed to the file, and those not yet.

    Rows are written to `buffer` first; `RecordingFiles.flush` writes the buffer to the file (one
    `os.write` per file and batch) and only then do they count (`rows`, `committed`). A write that
    fails cuts the file back to `committed` bytes: no part of a failed batch stays in the file."""

    path: Path
    fd: int | None  # None: closed (reopened when it has something to write)
    committed: int  # bytes of the file that hold committed rows (and the header)
    rows: int = 0  # committed rows
    late: int = 0  # rows written after a row with a higher seq: the file is not in seq order
    head: str = ""  # a new file's header and column line, until they are committed
    current: bool = True  # the dial's current file; another session's is closed once written
    cut: bool = False  # a failed write could not be cut back yet: cut when it is reopened
    buffer: io.StringIO = field(default_factory=io.StringIO)
    pending: int = 0  # rows in `buffer`
    writer: Writer = field(init=False)

    def __post_init__(self) -> None:
        self.writer = row_writer(self.buffer)

    def discard_pending(self) -> None:
        self.buffer.seek(0)
        self.buffer.truncate()
        self.pending = 0


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
            if not found.current:  # a late sample of an earlier session of this dial
                self._make_current(key)
            return found
        folder = self.out_dir / safe_name(station) / safe_name(session)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / file_name(dial, self.recorder)
        fresh = not path.exists() or path.stat().st_size == 0
        existing = 0 if fresh else self._resume(path, station, session, dial)
        fd = os.open(path, OPEN_FLAGS, 0o666)
        head = header_text(header()) + render_row(COLUMNS) if fresh else ""
        entry = DialFile(path, fd, committed=os.fstat(fd).st_size, rows=existing, head=head)
        self.files[key] = entry
        self._make_current(key)
        return entry

    def _make_current(self, key: tuple[str, str, str]) -> None:
        """This dial's earlier sessions are done: their files close (once what they hold is written)."""
        station, _, dial = key
        for other, entry in self.files.items():
            if other[0] == station and other[2] == dial:
                entry.current = other == key
                if not entry.current and not entry.pending and not entry.head:
                    _close(entry)

    def write(self, entry: DialFile, sample: Mapping[str, Any]) -> None:
        """A row to the file's buffer: in the file (and counted) once `flush` wrote it."""
        entry.writer.writerow(sample_cells(sample))
        entry.pending += 1
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

    def flush(self) -> tuple[set[int], OSError | None]:
        """Write every file's buffered rows to the operating system (before they are acknowledged).

        (ids of the DialFiles that could not be written, the first error): each of those is cut back
        to what it held before, its rows dropped from the buffer (the broker sends them again)."""
        failed: set[int] = set()
        error: OSError | None = None
        if not self._dirty:
            return failed, error
        for entry in self.files.values():
            if id(entry) not in self._dirty:
                continue
            try:
                self._commit(entry)
            except OSError as exc:
                failed.add(id(entry))
                error = error or exc
                self._roll_back(entry, exc)
        # a new file's header is written at the next flush (its rows came again, or not)
        self._dirty = {id(entry) for entry in self.files.values() if id(entry) in failed and entry.head}
        return failed, error

    def _commit(self, entry: DialFile) -> None:
        data = (entry.head + entry.buffer.getvalue()).encode("utf-8")
        if entry.fd is None:
            entry.fd = os.open(entry.path, OPEN_FLAGS, 0o666)
        if entry.cut:
            os.ftruncate(entry.fd, entry.committed)
            entry.cut = False
        done = 0
        while done < len(data):
            written = _write(entry.fd, data[done:] if done else data)
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += written
        entry.committed += len(data)
        entry.rows += entry.pending
        entry.head = ""
        entry.discard_pending()
        if not entry.current:
            _close(entry)

    @staticmethod
    def _roll_back(entry: DialFile, exc: OSError) -> None:
        """A failed write: drop the batch, cut the file back to its committed bytes, reopen it later."""
        log.error(
            "recorder: could not write %d rows to %s (%s); cut back to what was written", entry.pending, entry.path, exc
        )
        entry.discard_pending()
        _close(entry)
        try:
            os.truncate(entry.path, entry.committed)
        except OSError as cut_exc:
            entry.cut = True  # tried again before the next write
            log.error("recorder: could not cut %s back (%s); tried again before its next write", entry.path, cut_exc)

    def close(self, report: Report, duplicates: int) -> None:
        """Close every file and write each session folder's summary.

        `report(station, session, dials)` gives the session's gaps and refusals (a part's gaps are
        not asked for: the other members hold the rest); `duplicates` is how many re-sent samples
        were dropped."""
        failed, _ = self.flush()  # the recorder commits before it closes: this is only in case
        if failed:
            log.error("recorder: %d files could not be written at close", len(failed))
        summaries: dict[Path, dict[str, Any]] = {}
        for (station, session, dial), entry in self.files.items():
            _close(entry)
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
            for dial, count in extra.get("not_written", {}).items():
                summary["dials"][dial]["not_written"] = count
            if self.share is None:
                summary["gaps"] = extra["gaps"]
            if "rejected" in extra:
                summary["rejected"] = extra["rejected"]
            summary["duplicates_dropped"] = duplicates
            (folder / name).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def _close(entry: DialFile) -> None:
    if entry.fd is not None:
        fd, entry.fd = entry.fd, None
        os.close(fd)


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
