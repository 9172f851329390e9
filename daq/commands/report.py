"""`daq report`: one self-contained HTML file of one or more sittings (traces, segments, agreement, lags, accuracy).

Read session folders written by `daq record` (as `daq export` does) and write one HTML file that opens
offline: each rater's trace on media time, the group mean with a band, segments, marks, pauses and seeks,
and the agreement, lag, empathic-accuracy and interview tables. Segments default to --segments 3 --window 10.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from daq.commands.args import Subcommands, add_command
from daq.commands.export import add_analysis_args, options_from_args
from daq.export.analysis import analyse
from daq.export.reader import ExportError
from daq.export.report import render
from daq.export.writers_sittings import windows_json

DEFAULT_SEGMENTS = 3  # as the docstring says
DEFAULT_WINDOW_S = 10.0


def register(sub: Subcommands) -> None:
    help = "one self-contained HTML report of recorded sittings: traces, segments, agreement, lags, accuracy"
    parser = add_command(sub, "report", __doc__, handle, help=help)
    add_analysis_args(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.html", help="the HTML file to write")
    parser.add_argument("--title", default=None, help="the page title (default: the video's name)")


def handle(args: argparse.Namespace) -> int:
    if args.segments is None and args.window is None:
        args.segments, args.window = DEFAULT_SEGMENTS, DEFAULT_WINDOW_S
    options = options_from_args(args, default_rate=True)
    out: Path = args.out
    if out.is_dir():
        raise ExportError(f"--out {out}: that is a folder; give the HTML file to write, e.g. {out / 'report.html'}")
    result = analyse(args.session_dirs, options)
    summary = result.summary()
    if result.windows:
        summary["segments"] = windows_json(result.windows)
    video = result.sittings.video
    title = args.title or f"dialdaq report: {video.name if video and video.name else result.combined.session}"
    page = render(result, summary, title)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot write: {exc.strerror or exc}") from exc
    for note in result.segment_notes:
        print(f"note: {note}")
    count = len(result.sittings.raters)
    print(f"wrote {out} ({len(page) // 1024} KiB, {count} rater{'' if count == 1 else 's'})")
    return 0
