"""`daq export`: recorded sittings as analysis-ready tables (tidy, resampled), summary, segments, lags, accuracy.

Read session folders written by `daq record` (<out>/<station>/<session>/) and write samples.<fmt> (one row
per sample), and on request resampled.<fmt> (on the media timeline), summary.json (with agreement, lags and
empathic accuracy) and segments.<fmt>. Several session folders of one video are aligned on its media time,
each dial a rater. See the README sections 'Exports' and 'Analysis: several raters of one video'.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from daq.commands.args import Subcommands, add_command
from daq.export.analysis import Analysis, AnalysisOptions, analyse, parse_lag
from daq.export.reader import ExportError
from daq.export.resample import DEFAULT_MAX_HOLD_S
from daq.export.summary import format_summary
from daq.export.writers import (
    load_pyarrow,
    resampled_table,
    segments_table,
    tidy_table,
    write_json,
    write_table,
)
from daq.export.writers_sittings import interview_table, sittings_tidy_table, windows_json

DEFAULT_RATE_HZ = 10.0


def add_analysis_args(parser: argparse.ArgumentParser) -> None:
    """Options `daq export` and `daq report` share: grid, lag, target, segments."""
    parser.add_argument(
        "session_dirs", type=Path, nargs="+", metavar="SESSION_DIR", help="<out>/<station>/<session>/ (one or more)"
    )
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument("--rate", type=float, metavar="HZ", help="resample to HZ grid points per media second")
    grid.add_argument("--bin", type=float, metavar="SECONDS", help="resample to bins of SECONDS (e.g. 0.25 to 4)")
    parser.add_argument(
        "--max-hold",
        type=float,
        default=DEFAULT_MAX_HOLD_S,
        metavar="SECONDS",
        help=f"hold a value for at most SECONDS of media time (default {DEFAULT_MAX_HOLD_S:g})",
    )
    parser.add_argument(
        "--lag",
        default=None,
        metavar="auto|SECONDS",
        help="reaction lag: shift every trace back by SECONDS, or 'auto' to estimate one lag per rater",
    )
    parser.add_argument(
        "--lag-base",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --lag auto: the fastest rater's own lag (the data show only differences; default 0)",
    )
    parser.add_argument(
        "--max-lag", type=float, default=6.0, metavar="SECONDS", help="with --lag auto: search 0..SECONDS (default 6)"
    )
    parser.add_argument("--target", metavar="RATER", help="empathic accuracy of every other rater against RATER")
    parser.add_argument(
        "--epoch", type=float, default=30.0, metavar="SECONDS", help="epoch length for --target (default 30)"
    )
    parser.add_argument("--force", action="store_true", help="combine sittings even if they rated different videos")
    parser.add_argument(
        "--segments", type=int, metavar="N", help="find the N most helpful and N most hindering windows"
    )
    parser.add_argument("--window", type=float, metavar="SECONDS", help="window length for --segments")
    parser.add_argument(
        "--gap", type=float, default=0.0, metavar="SECONDS", help="minimum gap between segments (default 0)"
    )
    parser.add_argument(
        "--segments-of",
        default="mean",
        metavar="mean|dial|RATER",
        help="segments of the group mean (default), of each rater ('dial'), or of one rater",
    )


def options_from_args(args: argparse.Namespace, *, default_rate: bool) -> AnalysisOptions:
    if (args.segments is None) != (args.window is None):
        raise ExportError("--segments N and --window SECONDS go together")
    rate, bin_s = args.rate, args.bin
    if rate is None and bin_s is None and default_rate:
        rate = DEFAULT_RATE_HZ
    return AnalysisOptions(
        rate_hz=rate,
        bin_s=bin_s,
        max_hold=args.max_hold,
        lag=parse_lag(args.lag),
        lag_base=args.lag_base,
        max_lag=args.max_lag,
        target=args.target,
        epoch_s=args.epoch,
        force=args.force,
        segments=args.segments,
        window_s=args.window,
        gap_s=args.gap,
        segments_of=args.segments_of,
    )


def register(sub: Subcommands) -> None:
    help = "export recorded sittings: tidy table, resampled grid, summary, agreement, lags, segments"
    parser = add_command(sub, "export", __doc__, handle, help=help)
    add_analysis_args(parser)
    parser.add_argument("--out", type=Path, help="folder for the files (default SESSION_DIR/export for one session)")
    parser.add_argument(
        "--format", choices=("csv", "parquet"), default="csv", help="table format (parquet: the 'parquet' extra)"
    )
    parser.add_argument("--summary", action="store_true", help="write summary.json and print a table")


def output_folder(args: argparse.Namespace) -> Path:
    folders: list[Path] = args.session_dirs
    if args.out is None and len(folders) > 1:
        raise ExportError("several session folders: give --out FOLDER for the files")
    out: Path = args.out if args.out is not None else folders[0] / "export"
    if args.summary and any(out.resolve() == f.resolve() for f in folders):
        raise ExportError(f"--out {out}: that is the session folder; its summary.json is the recorder's. Pick another")
    return out


def print_windows(result: Analysis, window_s: float) -> None:
    grid = result.grid
    step = f"{grid.rate_hz:g} Hz grid" if grid.kind == "rate" else f"{grid.step:g} s bins"
    print(f"segments of {window_s:g} s on the {step}:")
    for w in result.windows:
        print(
            f"  {w.target:<12} {w.kind:<9} #{w.rank}  {w.start_timecode or f'{w.start_s:.3f}'}"
            f" .. {w.end_timecode or f'{w.end_s:.3f}'}  ({w.start_s:.3f}-{w.end_s:.3f} s)  mean {w.mean:.3f}"
        )
    for note in result.segment_notes:
        print(f"  note: {note}")


def handle(args: argparse.Namespace) -> int:
    if args.format == "parquet":
        load_pyarrow()  # fail before writing anything
    wants_grid = args.rate is not None or args.bin is not None
    summary_wanted = args.summary or args.target is not None or args.lag == "auto"
    options = options_from_args(args, default_rate=summary_wanted or args.segments is not None)
    out = output_folder(args)
    result = analyse(args.session_dirs, options)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot create: {exc.strerror or exc}") from exc

    session = result.combined
    meta = {
        "dialdaq": json.dumps(
            {
                "station": session.station,
                "session": session.session,
                "timecode_rate": session.timecode_rate,
                "dials": {
                    r.label: {"header": r.recording.header, "scale": r.recording.scale, "source": r.source}
                    for r in result.sittings.raters
                }
                if not result.sittings.single
                else {d.dial: {"header": d.header, "scale": d.scale} for d in result.sittings.sittings[0].dials},
                "lags_s": result.lags_used,
            },
            sort_keys=True,
        )
    }
    tidy = tidy_table(result.sittings.sittings[0]) if result.sittings.single else sittings_tidy_table(result.sittings)
    written = [write_table(tidy, out, "samples", args.format, meta)]
    answers = interview_table(result.sittings)
    if answers is not None:
        written.append(write_table(answers, out, "interview", args.format, meta))
    if result.grid_made:
        if wants_grid:
            written.append(write_table(resampled_table(result.grid), out, "resampled", args.format, meta))
        if summary_wanted:
            summary = result.summary()
            if result.windows:
                summary["segments"] = windows_json(result.windows)
            written.append(write_json(summary, out / "summary.json"))
            print(format_summary(summary))
            for line in result.format_extra():
                print(line)
        if args.segments is not None:
            written.append(write_table(segments_table(result.windows), out, "segments", args.format, meta))
            print_windows(result, args.window)
    for path in written:
        print(f"wrote {path}")
    return 0
