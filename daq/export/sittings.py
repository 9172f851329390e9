"""Several sittings of one video: every (session, dial) as a rater on the video's media time.

A *sitting* is one session folder written by `daq record`. Each dial of each sitting is a *rater*.

Metadata read (the keys a recording may carry; the first three are what a sitting records about
itself, e.g. `daq rate`; any of them may be absent):

- `video`: the video rated, a JSON object `{"name": str, "size": int, "sha256": str}`
  (`file` is taken for `name`; any of them may be missing);
- `rater`: the rater's label, e.g. "client" or "observer-2";
- `dimension`: what was rated, e.g. "helpfulness".

They are looked up, later sources overriding earlier ones, in:

1. `<session>/sitting.json`: what `daq rate` writes (daq.study.sitting): `video` {file, path, size,
   sha256}, `rater`, `dimension` and the `dial` rated (its rater and dimension apply to that dial);
2. `<session>/session.json`: the session's retained payload (as on `<root>/<station>/session`),
   top-level keys `video`, `rater`, `dimension`;
3. `<session>/summary.json`: top-level `video`, `rater`, `dimension`, and per dial
   `dials.<dial>.rater` / `dials.<dial>.dimension`;
4. the dial file's header lines `# video: {json}` (or `# video_name:`, `# video_size:`,
   `# video_sha256:`), `# rater: LABEL`, `# dimension: TEXT`.

A rater's label is its `rater` value; without one it is `station/session/dial`, and in an export
of a single session simply the dial id (station and session are the same for every dial there).
Labels that would collide get ` (station/session/dial)` appended.

Two sittings rated the same video when their sha256 agree, or (without a hash on both sides) when
name and size agree. A mix of different videos is refused, naming both, unless forced; a sitting
that recorded no video identity is taken to be of the same video, with a note saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from daq.export.reader import DialRecording, ExportError, SessionRecording, read_session


@dataclass(frozen=True, slots=True)
class VideoIdentity:
    """What a sitting recorded about the video file it rated."""

    name: str | None = None
    size: int | None = None
    sha256: str | None = None

    @classmethod
    def parse(cls, data: Any, where: str) -> VideoIdentity | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ExportError(f"{where}: 'video' is not an object {{name, size, sha256}}: {data!r}")
        name, size, sha = data.get("name") or data.get("file"), data.get("size"), data.get("sha256")
        try:
            size_int = int(size) if size not in (None, "") else None
        except (TypeError, ValueError) as exc:
            raise ExportError(f"{where}: video 'size' is not a number of bytes: {size!r}") from exc
        found = cls(str(name) if name else None, size_int, str(sha).lower() if sha else None)
        return found if found != cls() else None

    def same_video(self, other: VideoIdentity) -> bool:
        if self.sha256 and other.sha256:
            return self.sha256 == other.sha256
        return (self.name, self.size) == (other.name, other.size)

    def describe(self) -> str:
        parts = [self.name or "(no name)"]
        if self.size is not None:
            parts.append(f"{self.size} bytes")
        if self.sha256:
            parts.append(f"sha256 {self.sha256[:12]}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(slots=True)
class Rater:
    """One dial of one sitting."""

    label: str
    station: str
    session: str
    dial: str
    recording: DialRecording
    sitting: SessionRecording
    video: VideoIdentity | None = None
    dimension: str | None = None

    @property
    def source(self) -> str:
        return f"{self.station}/{self.session}/{self.dial}"


@dataclass(slots=True)
class Sittings:
    """The raters of one or more sittings, and what was noticed while reading them."""

    sittings: list[SessionRecording]
    raters: list[Rater]
    video: VideoIdentity | None
    notes: list[str] = field(default_factory=list)

    @property
    def single(self) -> bool:
        return len(self.sittings) == 1

    def rater(self, label: str) -> Rater:
        for r in self.raters:
            if r.label == label:
                return r
        raise ExportError(f"no rater {label!r}: the raters are {', '.join(r.label for r in self.raters)}")


def _load_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: not readable as JSON ({exc}); fix or remove it") from exc
    if not isinstance(loaded, dict):
        raise ExportError(f"{path}: not a JSON object")
    return loaded


def _header_video(header: dict[str, str], where: str) -> VideoIdentity | None:
    if header.get("video"):
        try:
            data = json.loads(header["video"])
        except json.JSONDecodeError as exc:
            raise ExportError(f"{where}: header 'video' is not JSON: {exc}") from exc
        return VideoIdentity.parse(data, where)
    fields = {k: header.get(f"video_{k}") for k in ("name", "size", "sha256")}
    return VideoIdentity.parse(fields, where) if any(fields.values()) else None


def dial_metadata(
    session: SessionRecording, dial: DialRecording
) -> tuple[VideoIdentity | None, str | None, str | None]:
    """(video, rater, dimension) of one dial, from the sources in the module docstring."""
    video: VideoIdentity | None = None
    rater: str | None = None
    dimension: str | None = None
    sitting = _load_json(session.folder / "sitting.json")
    if sitting is not None and sitting.get("dial") not in (None, dial.dial):
        sitting = {"video": sitting.get("video")}  # another dial's sitting: only the video is shared
    payload = _load_json(session.folder / "session.json")
    summary = _load_json(session.folder / "summary.json")
    for source, data in (("sitting.json", sitting), ("session.json", payload), ("summary.json", summary)):
        if data is None:
            continue
        where = str(session.folder / source)
        video = VideoIdentity.parse(data.get("video"), where) or video
        rater = str(data["rater"]) if data.get("rater") else rater
        dimension = str(data["dimension"]) if data.get("dimension") else dimension
    per_dial = (summary or {}).get("dials", {})
    entry = per_dial.get(dial.dial) if isinstance(per_dial, dict) else None
    if isinstance(entry, dict):
        rater = str(entry["rater"]) if entry.get("rater") else rater
        dimension = str(entry["dimension"]) if entry.get("dimension") else dimension
    video = _header_video(dial.header, str(dial.path)) or video
    rater = dial.header.get("rater") or rater
    dimension = dial.header.get("dimension") or dimension
    return video, rater, dimension


def _unique_labels(raters: list[Rater]) -> None:
    counts: dict[str, int] = {}
    for r in raters:
        counts[r.label] = counts.get(r.label, 0) + 1
    for r in raters:
        if counts[r.label] > 1 or r.label == "mean":
            r.label = f"{r.label} ({r.source})"


def check_videos(raters: list[Rater], force: bool) -> tuple[VideoIdentity | None, list[str]]:
    """The one video all sittings rated; refuse a mix unless forced (then notes say what was mixed)."""
    notes: list[str] = []
    by_sitting: dict[str, VideoIdentity | None] = {}
    for r in raters:
        key = f"{r.station}/{r.session}"
        if r.video is not None or key not in by_sitting:
            by_sitting[key] = r.video if r.video is not None else by_sitting.get(key)
    known = [(k, v) for k, v in by_sitting.items() if v is not None]
    unknown = [k for k, v in by_sitting.items() if v is None]
    first = known[0] if known else None
    for key, video in known[1:]:
        assert first is not None
        if not video.same_video(first[1]):
            message = f"different videos: {first[0]} rated {first[1].describe()}, but {key} rated {video.describe()}"
            if not force:
                raise ExportError(f"{message}; give --force to combine them anyway")
            notes.append(f"{message} (combined because of --force)")
    if known and unknown and len(by_sitting) > 1:
        reference = first[0] if first else ""
        notes.append(f"{', '.join(unknown)} recorded no video identity: taken to be the same video as {reference}")
    return (first[1] if first else None), notes


def read_sittings(folders: list[Path], force: bool = False) -> Sittings:
    """Read every session folder; one rater per (session, dial); check that they rated one video."""
    if not folders:
        raise ExportError("give at least one session folder")
    seen: dict[Path, Path] = {}
    sessions: list[SessionRecording] = []
    for folder in folders:
        key = folder.resolve()
        if key in seen:
            raise ExportError(f"{folder}: given twice")
        seen[key] = folder
        sessions.append(read_session(folder))
    single = len(sessions) == 1
    raters: list[Rater] = []
    for s in sessions:
        for d in s.dials:
            video, rater, dimension = dial_metadata(s, d)
            station = d.station or s.station
            name = d.session or s.session
            label = rater or (d.dial if single else f"{station}/{name}/{d.dial}")
            raters.append(Rater(label, station, name, d.dial, d, s, video, dimension))
    _unique_labels(raters)
    video, notes = check_videos(raters, force)
    rates = sorted({s.timecode_rate for s in sessions if s.timecode_rate})
    if len(rates) > 1:
        notes.append(f"the sittings use different timecode rates ({', '.join(rates)}): timecodes use {rates[0]}")
    if not single:
        for s in sessions:
            if not any(r.media_s is not None for d in s.dials for r in d.rows):
                raise ExportError(
                    f"{s.folder}: no sample has a media time (no media clock ran), so this sitting "
                    "cannot be aligned with the others on the video"
                )
    return Sittings(sessions, raters, video, notes)


def shifted_rows(rater: Rater, lag_s: float) -> DialRecording:
    """The rater's recording with every media_s moved back by lag_s: the rating put on the moment it is about.

    A row that the shift moves before media 0 is left out: it is about a moment before the video began.
    """
    rows = [
        replace(row, media_s=row.media_s - lag_s) if row.media_s is not None and lag_s else row
        for row in rater.recording.rows
    ]
    if lag_s:
        rows = [row for row in rows if row.media_s is None or row.media_s >= 0]
    rec = rater.recording
    return DialRecording(path=rec.path, dial=rater.label, header=rec.header, rows=rows, scale=rec.scale)


def combined_session(sittings: Sittings, lags: dict[str, float] | None = None) -> SessionRecording:
    """All raters as the dials of one pseudo-session (dial id = rater label), each shifted by its lag."""
    lags = lags or {}
    first = sittings.sittings[0]
    dials = [shifted_rows(r, lags.get(r.label, 0.0)) for r in sittings.raters]
    if sittings.single:
        station, session = first.station, first.session
    else:
        station = ",".join(dict.fromkeys(s.station for s in sittings.sittings))
        session = ",".join(s.session for s in sittings.sittings)
    return SessionRecording(folder=first.folder, station=station, session=session, dials=dials)
