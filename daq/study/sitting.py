"""A video's identity and a sitting's record of it (`<session>/sitting.json`).

`daq rate` writes `sitting.json` into the session folder the recorder fills
(`<out>/<station>/<session>/`), and sends the same body on `events` as kind `sitting`, so a later
sitting of the same video can be matched to this one and `daq review` can check its `--video`:

    {"v": 1, "station": "...", "session": "...", "rater": "client", "dimension": "helpful",
     "dial": "d1", "scale": {...},
     "video": {"file": "session.mp4", "path": "/abs/session.mp4", "size": 123, "sha256": "..."}}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daq.exceptions import FatalError

SITTING_FILE = "sitting.json"
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class VideoId:
    file: str
    path: str
    size: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "path": self.path, "size": self.size, "sha256": self.sha256}


def video_id(path: Path) -> VideoId:
    """Name, size and sha256 of a video file (reads it whole: a few seconds per GB)."""
    if not path.is_file():
        raise FatalError(f"--video {path}: no such file")
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return VideoId(path.name, str(path.resolve()), size, digest.hexdigest())


def write_json_atomic(path: Path, body: object) -> None:
    """Write JSON to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    write_text_atomic(path, json.dumps(body, indent=2, ensure_ascii=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with_suppress_unlink(tmp)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def with_suppress_unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def read_sitting(folder: Path) -> dict[str, Any] | None:
    """The session's sitting.json, or None when it has none (a session recorded without `daq rate`)."""
    path = folder / SITTING_FILE
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return body if isinstance(body, dict) else None


def check_video(sitting: dict[str, Any] | None, video: VideoId) -> str | None:
    """None when the video is the one the sitting rated; else a sentence saying what differs."""
    if sitting is None:
        return None
    recorded = sitting.get("video")
    if not isinstance(recorded, dict) or not recorded.get("sha256"):
        return None
    if recorded.get("sha256") == video.sha256:
        return None
    return (
        f"this is not the video of the session: {video.file} ({video.size} bytes, sha256 {video.sha256[:12]}…) "
        f"was given, the session rated {recorded.get('file')} ({recorded.get('size')} bytes, "
        f"sha256 {str(recorded.get('sha256'))[:12]}…)"
    )
