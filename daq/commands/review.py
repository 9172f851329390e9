"""`daq review SESSION_DIR`: the recall interview on a page (see daq.study.review).

Serve a page for the interview after a sitting: the rater's trace over the whole video, the N most helpful
and N most hindering segments (as `daq export --segments N`), the video of each, and a free-text answer
with codebook tags per segment, saved on every change to SESSION_DIR/interview.json and interview.csv.

On 127.0.0.1 (the default), localhost or ::1 the page is open to this machine; on any other --host every
request needs a token: a new one is printed at start in the page's URL (?token=...), or set DAQ_PAGE_TOKEN.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from daq.commands.args import Subcommands, add_command, add_page_args, import_page_server
from daq.commands.common import run_until_signal
from daq.exceptions import FatalError

DEFAULT_PORT = 8090
DEFAULT_GRID_HZ = 10.0  # as `daq export --segments` uses by default


def register(sub: Subcommands) -> None:
    help = "the recall interview: a session's trace, its most helpful and hindering segments, the answers"
    parser = add_command(sub, "review", __doc__, handle, help=help)
    parser.add_argument("session_dir", type=Path, metavar="SESSION_DIR", help="<out>/<station>/<session>/")
    parser.add_argument("--video", type=Path, help="the video (default: the one sitting.json names, if there)")
    parser.add_argument("--codebook", type=Path, help="TOML file with helpful = [...] and hindering = [...] tags")
    add_page_args(parser, DEFAULT_PORT)


def handle(args: argparse.Namespace) -> int:
    server = import_page_server("daq.study.review", "daq review")
    from daq.export.reader import read_session
    from daq.export.resample import resample
    from daq.study.codebook import load_codebook
    from daq.study.interview import Interview
    from daq.study.sitting import check_video, read_sitting, video_id
    from daq.web.app import serve
    from daq.web.door import Door, page_url

    folder: Path = args.session_dir
    session = read_session(folder)
    if not any(r.media_s is not None for d in session.dials for r in d.rows):
        raise FatalError(f"{folder}: no sample has a media time (no media clock ran); there is nothing to review")
    codebook = load_codebook(args.codebook)
    grid = resample(session, rate_hz=DEFAULT_GRID_HZ)
    interview = Interview.open(folder, session.station, session.session)
    interview.codebook = codebook.as_json()
    sitting = read_sitting(folder)
    video: Path | None = args.video
    if video is None and sitting is not None:
        named = Path(str((sitting.get("video") or {}).get("path", "")))
        video = named if named.is_file() else None
    note, ok = "", False
    if video is None:
        note = "no video: start daq review with --video FILE"
    elif not video.is_file():
        raise FatalError(f"--video {video}: no such file")
    else:
        print(f"checking {video} against the session's video hash ...", flush=True)
        mismatch = check_video(sitting, video_id(video))
        if mismatch is not None:
            note = f"refused: {mismatch}"
            print(f"daq review: {note}", file=sys.stderr, flush=True)
        else:
            ok = True
            if sitting is None or not (sitting.get("video") or {}).get("sha256"):
                note = "the session recorded no video hash (not a daq rate sitting): the video could not be checked"
                print(f"daq review: note: {note}", file=sys.stderr, flush=True)
    # The sitting's own dial when the session holds others too (as `daq export --segments-of DIAL`).
    rated = str((sitting or {}).get("dial") or "")
    target = rated if len(grid.dials) > 1 and rated in grid.values else "mean"
    review = server.Review(session, grid, interview, codebook, video, note, ok, sitting, target)
    door = Door.for_host(args.host, command="daq review")

    def ready(bound: list[tuple[str, int]]) -> None:
        for host, port in bound:
            print(f"daq review: {page_url(host, port, door)}  (answers go to {interview.json_path})", flush=True)

    async def main(stop: asyncio.Event) -> int:
        try:
            await serve(server.make_app(review, door), args.host, args.port, stop, ready)
        except OSError as exc:
            raise FatalError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
        return 0

    return run_until_signal(main)
