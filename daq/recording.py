"""The recording format: the CSV file `daq record` writes, `daq record merge` combines and `daq export` reads.

A recording is one dial's samples of one session, `<out>/<station>/<session>/<dial>.csv`:

    # dialdaq recording
    # station: lab-a
    # dial: d1
    # ...                      (`# key: value` lines; `scale` is JSON)
    boot,seq,t_ns,media_s,timecode,frame,value,raw,replay
    b1,0,1795000000000000000,0.0,00:00:00:00,0,3.5,17,False

- The header is the run of `#` lines at the top of the file; the `# dialdaq recording` line marks a
  file as a recording, every other header line is `key: value` (lines without a colon are comments).
- Then the column line, then one row per sample, every line ending in `\\n`. Columns are found by
  name (a later recorder may add one); empty cells are nulls.
- A row with another number of cells than the column line, or without a boot, is torn (a recorder
  was stopped in the middle of writing it): readers skip it and count it; nothing else is skipped.
- File and folder names (`safe_name`): an id valid by `daq.ids` (and not only dots) is its own name;
  anything else is escaped into `<id chars, at most 40>~<16 hex of its SHA-256>`. `~` is not an id
  character, so an escaped name never equals a valid id's, and names stay short whatever comes in.
- Header values are one line each: a character that is not printable (a newline, a control
  character) is written as `\\xNN` / `\\uNNNN`, so no value can start a line of its own.
- In a shared recorder group each member writes a part, `<dial>@<recorder>.csv` (`@` is not allowed
  in ids, so a part cannot be taken for a dial) with `recorder` and `share` in its header;
  `daq record merge` makes `<dial>.csv` of the parts, with `merged_from` in its header.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daq.ids import ID_MAX_LENGTH

if TYPE_CHECKING:
    from _csv import Writer

    from _typeshed import SupportsWrite

MARKER = "dialdaq recording"
"""The first header line of every recording, `# dialdaq recording`."""
COLUMNS = ("boot", "seq", "t_ns", "media_s", "timecode", "frame", "value", "raw", "replay")
"""The columns the recorder writes, in this order."""
REQUIRED = ("boot", "seq", "t_ns", "media_s", "timecode", "frame", "value", "raw")
"""The columns a reader needs (`replay` came later: a file without it holds no replayed samples)."""
PART_SEPARATOR = "@"
"""Between the dial and the recorder in a shared group member's part, `<dial>@<recorder>.csv`."""
PART_HEADER_KEYS = ("recorder", "share")
"""Header keys only a part has (a merged file drops them)."""
SUFFIX = ".csv"
NAME_ESCAPE = "~"
"""Between an escaped name's readable part and its hash; not an id character."""
_ID_NAME = re.compile(rf"[A-Za-z0-9_.-]{{1,{ID_MAX_LENGTH}}}")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """A file or folder name for an id (station, session, dial), injective and at most 64 characters.

    A valid id (daq.ids, and not only dots) is its own name; anything else becomes its id characters
    (at most 40) + `~` + 16 hex digits of its SHA-256: never a path, never '.' or '..', never the
    name of another id."""
    if _ID_NAME.fullmatch(text) and set(text) != {"."}:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    readable = _NOT_NAME_CHAR.sub("-", text).strip("-.")[:40].strip("-.")
    return f"{readable}{NAME_ESCAPE}{digest}"


def one_line(value: object) -> str:
    """`value` as text on one line: characters that are not printable become `\\xNN` / `\\uNNNN`."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}") for c in text)


def file_name(dial: str, recorder: str | None = None) -> str:
    """The file a dial's recording goes to: `<dial>.csv`, or the part `<dial>@<recorder>.csv`."""
    stem = safe_name(dial)
    return f"{stem}{PART_SEPARATOR}{recorder}{SUFFIX}" if recorder is not None else f"{stem}{SUFFIX}"


def part_of(path: Path) -> tuple[str, str | None]:
    """(dial stem, recorder) from a recording's file name; the recorder is None for a whole file."""
    stem, sep, recorder = path.stem.partition(PART_SEPARATOR)
    return stem, (recorder if sep else None)


def is_part(path: Path) -> bool:
    return part_of(path)[1] is not None


# -- writing ----------------------------------------------------------------------------------


def header_text(fields: Mapping[str, object]) -> str:
    """The header lines: the marker, then `# key: value` for each field (in the order given)."""
    out = [f"# {MARKER}\n"]
    out += [f"# {one_line(key)}: {one_line(value)}\n" for key, value in fields.items() if key != MARKER]
    return "".join(out)


def sample_cells(sample: Mapping[str, Any]) -> list[Any]:
    """A sample's cells in COLUMNS order; a missing or null field is an empty cell."""
    return [value if (value := sample.get(column)) is not None else "" for column in COLUMNS]


def row_writer(handle: SupportsWrite[str]) -> Writer:
    """A csv writer for a recording's table (rows end in `\\n`, like the header lines)."""
    return csv.writer(handle, lineterminator="\n")


def render_row(cells: Sequence[str]) -> str:
    """One row (or the column line) as a line of the file, quoted only where a cell needs it."""
    if any(ch in value for value in cells for ch in ',"\r\n'):
        out = io.StringIO()
        row_writer(out).writerow(cells)
        return out.getvalue()
    return ",".join(cells) + "\n"


def ends_torn(path: Path) -> bool:
    """True when the file's last line has no line end (the recorder stopped while writing it)."""
    with path.open("rb") as raw:
        if raw.seek(0, os.SEEK_END) == 0:
            return False
        raw.seek(-1, os.SEEK_END)
        return raw.read(1) != b"\n"


# -- reading ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Recording:
    """A recording as its file holds it: header, columns and rows as text, torn rows counted."""

    path: Path
    marked: bool = False  # the `# dialdaq recording` line is there
    header: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    column_line: int = 0  # 1-based line number of the column line; 0 when there is none
    rows: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line number where each row ends
    torn: int = 0

    @property
    def dial(self) -> str:
        """The dial: from the header, else from the file name (a part's without its recorder)."""
        return self.header.get("dial") or part_of(self.path)[0]

    @property
    def recorder(self) -> str | None:
        """The shared group member that wrote this part; None for a whole file."""
        return part_of(self.path)[1]

    def has(self, *columns: str) -> bool:
        return all(c in self.columns for c in columns)

    def records(self) -> list[dict[str, str]]:
        """The rows as column -> cell."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def read_recording(path: Path, header_only: bool = False) -> Recording:
    """Read a recording (`header_only`: up to the column line). OSError when it cannot be read."""
    out = Recording(path)
    with path.open(encoding="utf-8", newline="") as handle:
        number = 0
        table: list[str] = []
        for line in handle:
            number += 1
            if not line.startswith("#"):
                table.append(line)
                break
            key, sep, value = line[1:].strip().partition(":")
            if sep:
                out.header[key.strip()] = value.strip()
            elif key.strip() == MARKER:
                out.marked = True
        if not table:
            return out
        out.column_line = number
        if header_only:
            out.columns = next(csv.reader(table), [])
            return out
        reader = csv.reader(_chain(table, handle))
        out.columns = next(reader, [])
        width = len(out.columns)
        offset = number - 1
        for row in reader:
            if len(row) == width and row[0]:
                out.rows.append(row)
                out.lines.append(offset + reader.line_num)
            elif row:
                out.torn += 1
    return out


def _chain(first: list[str], rest: Iterable[str]) -> Iterator[str]:
    yield from first
    yield from rest
