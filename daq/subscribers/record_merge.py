"""`daq record merge`: a shared recorder group's parts of each session and dial -> one `<dial>.csv`.

Each member of a group (`daq record --share GROUP`) holds a part of every dial,
`<dial>@<recorder>.csv`. Merging reads every recording of a session folder (parts and whole files
alike), keeps the first copy of each (boot, seq), puts boots in the order of their first `t_ns` and
rows in seq order within a boot, writes `<dial>.csv` (atomically: a temporary file, then a rename)
and the session's `summary.json` with the sources, the duplicates dropped and the seqs still
missing. The parts are kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daq.recording import COLUMNS, PART_HEADER_KEYS, file_name, header_text, read_recording, render_row

HEADER_DROP_ON_MERGE = (*PART_HEADER_KEYS, "merged_from")


@dataclass
class MergedDial:
    dial: str
    path: Path
    rows: int
    sources: dict[str, int]  # file name -> rows read from it
    duplicates: int
    bad_rows: int
    gaps: list[dict[str, Any]]  # {"boot", "missing": [[lo, hi], ...], "count"}

    @property
    def missing(self) -> int:
        return sum(int(g["count"]) for g in self.gaps)


@dataclass
class MergedSession:
    folder: Path
    dials: list[MergedDial]
    skipped: list[str] = field(default_factory=list)  # files that are not dialdaq recordings


def missing_ranges(seqs: Sequence[int]) -> list[list[int]]:
    """Seqs missing between the lowest and the highest one seen (seqs sorted, unique).

    From the lowest, not from 0: one boot can span several sessions (`daq session stop`/`start`),
    and a later session's folder starts mid-boot. A loss before a session's first sample is in the
    recorder's own summary.json, which follows the boot across sessions."""
    out: list[list[int]] = []
    expected = seqs[0] if seqs else 0
    for seq in seqs:
        if seq > expected:
            out.append([expected, seq - 1])
        expected = seq + 1
    return out


def merge_session(folder: Path) -> MergedSession:
    """Merge every recording of one session folder into `<dial>.csv` per dial (and summary.json)."""
    groups: dict[str, list[Path]] = {}
    result = MergedSession(folder, [])
    station = session = ""
    for path in sorted(folder.glob("*.csv")):
        head = read_recording(path, header_only=True)
        if not head.marked or not head.has("boot", "seq"):
            result.skipped.append(path.name)
            continue
        station = station or head.header.get("station", "")
        session = session or head.header.get("session", "")
        groups.setdefault(head.dial, []).append(path)
    for dial, paths in sorted(groups.items()):
        result.dials.append(_merge_dial(folder, dial, paths))
    if result.dials:
        summary = {
            "station": station or folder.parent.name,
            "session": session or folder.name,
            "merged_from": sorted({name for d in result.dials for name in d.sources}),
            "dials": {
                d.dial: {"rows": d.rows, "file": d.path.name, "sources": d.sources, "duplicates_dropped": d.duplicates}
                for d in result.dials
            },
            "gaps": [
                {"dial": d.dial, "boot": g["boot"], "missing": g["missing"]} for d in result.dials for g in d.gaps
            ],
            "duplicates_dropped": sum(d.duplicates for d in result.dials),
        }
        (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return result


def _merge_dial(folder: Path, dial: str, paths: Sequence[Path]) -> MergedDial:
    """One dial's parts -> `<dial>.csv`: first copy of each (boot, seq), boots by first t_ns, seq order."""
    by_boot: dict[str, dict[int, str]] = {}  # boot -> seq -> the row as a line of the file
    first_t: dict[str, int] = {}
    sources: dict[str, int] = {}
    headers: list[dict[str, str]] = []
    out_columns = list(COLUMNS)
    duplicates = bad_rows = 0
    for path in paths:
        recording = read_recording(path)
        columns = recording.columns
        headers.append(recording.header)
        sources[path.name] = len(recording.rows)
        bad_rows += recording.torn
        out_columns += [c for c in columns if c not in out_columns]
        pick = [columns.index(c) if c in columns else -1 for c in out_columns]
        i_boot, i_seq = columns.index("boot"), columns.index("seq")
        i_t = columns.index("t_ns") if "t_ns" in columns else -1
        for row in recording.rows:
            try:
                boot, seq = row[i_boot], int(row[i_seq])
            except ValueError:
                bad_rows += 1
                continue
            seqs = by_boot.setdefault(boot, {})
            if seq in seqs:
                duplicates += 1
                continue
            seqs[seq] = render_row(row if columns == out_columns else [row[i] if i >= 0 else "" for i in pick])
            try:
                t_ns = int(row[i_t]) if i_t >= 0 else 0
            except ValueError:
                t_ns = 0
            first_t[boot] = min(t_ns, first_t.get(boot, t_ns))
    boots = sorted(by_boot, key=lambda b: (first_t.get(b, 0), b))
    gaps: list[dict[str, Any]] = []
    for boot in boots:
        missing = missing_ranges(sorted(by_boot[boot]))
        if missing:
            gaps.append({"boot": boot, "missing": missing, "count": sum(hi - lo + 1 for lo, hi in missing)})
    # The header of the part that knows most (a part begun before meta arrived has empty fields).
    best = max(headers, key=lambda h: sum(1 for v in h.values() if v))
    fields: dict[str, object] = {k: v for k, v in best.items() if k not in HEADER_DROP_ON_MERGE}
    fields["merged_from"] = ", ".join(p.name for p in paths)
    target = folder / file_name(dial)
    temp = target.with_name(f".{target.name}.merging")
    rows_out = 0
    with temp.open("w", encoding="utf-8", newline="") as handle:
        handle.write(header_text(fields))
        handle.write(render_row(out_columns))
        for boot in boots:
            seqs = by_boot[boot]
            for seq in sorted(seqs):
                handle.write(seqs[seq])
                rows_out += 1
    os.replace(temp, target)
    return MergedDial(dial, target, rows_out, sources, duplicates, bad_rows, gaps)


def merge_recordings(path: Path) -> list[MergedSession]:
    """Merge every session folder under `path` (the --out folder, a station's, or one session's)."""
    folders = sorted({p.parent for p in path.rglob("*.csv")} if path.is_dir() else set())
    return [merge_session(folder) for folder in folders]
