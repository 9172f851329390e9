"""`daq export`: a recorded session as analysis-ready tables (tidy, resampled), summary and segments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from daq.export.reader import ExportError, read_session
from daq.export.resample import DEFAULT_MAX_HOLD_S, held_signals, resample
from daq.export.segments import find_segments
from daq.export.summary import format_summary, session_summary
from daq.export.writers import (
    load_pyarrow,
    resampled_table,
    segments_table,
    tidy_table,
    write_json,
    write_table,
)
from daq.study.interview import export_interview

DEFAULT_RATE_HZ = 10.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "export",
        help="export a recorded session: tidy table, resampled grid, summary, segments",
        description=(
            "Read a session folder written by `daq record` (<out>/<station>/<session>/) and write "
            "samples.<fmt> (one row per sample), and on request resampled.<fmt> (on the media timeline), "
            "summary.json and segments.<fmt>. See the README section 'Exports' for the resampling rules."
        ),
    )
    parser.add_argument("session_dir", type=Path, metavar="SESSION_DIR", help="<out>/<station>/<session>/")
    parser.add_argument("--out", type=Path, help="folder for the files (default SESSION_DIR/export)")
    parser.add_argument(
        "--format", choices=("csv", "parquet"), default="csv", help="table format (parquet: the 'parquet' extra)"
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
    parser.add_argument("--summary", action="store_true", help="write summary.json and print a table")
    parser.add_argument(
        "--segments", type=int, metavar="N", help="find the N most helpful and N most hindering windows"
    )
    parser.add_argument("--window", type=float, metavar="SECONDS", help="window length for --segments")
    parser.add_argument(
        "--segments-of",
        default="mean",
        metavar="mean|dial|DIAL",
        help="segments of the group mean (default), of each dial ('dial'), or of one dial id",
    )
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if (args.segments is None) != (args.window is None):
        raise ExportError("--segments N and --window SECONDS go together")
    if args.format == "parquet":
        load_pyarrow()  # fail before writing anything
    folder: Path = args.session_dir
    session = read_session(folder)
    out: Path = args.out if args.out is not None else folder / "export"
    if args.summary and out.resolve() == folder.resolve():
        raise ExportError(f"--out {out}: that is the session folder; its summary.json is the recorder's. Pick another")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot create: {exc.strerror or exc}") from exc

    meta = {
        "dialdaq": json.dumps(
            {
                "station": session.station,
                "session": session.session,
                "timecode_rate": session.timecode_rate,
                "dials": {d.dial: {"header": d.header, "scale": d.scale} for d in session.dials},
            },
            sort_keys=True,
        )
    }
    written = [write_table(tidy_table(session), out, "samples", args.format, meta)]

    rate, bin_s = args.rate, args.bin
    wants_grid = rate is not None or bin_s is not None
    if not wants_grid and (args.summary or args.segments is not None):
        rate = DEFAULT_RATE_HZ
    if rate is not None or bin_s is not None:
        signals = held_signals(session, args.max_hold)
        grid = resample(session, rate_hz=rate, bin_s=bin_s, max_hold=args.max_hold, signals=signals)
        if wants_grid:
            written.append(write_table(resampled_table(grid), out, "resampled", args.format, meta))
        windows = find_segments(grid, args.segments, args.window, args.segments_of) if args.segments is not None else []
        if args.summary:
            summary = session_summary(session, signals, grid)
            if windows:
                summary["segments"] = [
                    {
                        "target": w.target,
                        "kind": w.kind,
                        "rank": w.rank,
                        "start_s": w.start_s,
                        "end_s": w.end_s,
                        "start_timecode": w.start_timecode,
                        "end_timecode": w.end_timecode,
                        "mean": w.mean,
                    }
                    for w in windows
                ]
            written.append(write_json(summary, out / "summary.json"))
            print(format_summary(summary))
        if args.segments is not None:
            written.append(write_table(segments_table(windows), out, "segments", args.format, meta))
            step = f"{grid.rate_hz:g} Hz grid" if grid.kind == "rate" else f"{grid.step:g} s bins"
            print(f"segments of {args.window:g} s on the {step}:")
            for w in windows:
                print(
                    f"  {w.target:<12} {w.kind:<9} #{w.rank}  {w.start_timecode or f'{w.start_s:.3f}'}"
                    f" .. {w.end_timecode or f'{w.end_s:.3f}'}  ({w.start_s:.3f}-{w.end_s:.3f} s)  mean {w.mean:.3f}"
                )
    interview = export_interview(folder, out)  # the answers of `daq review`, beside the segments
    if interview is not None:
        written.append(interview)
    for path in written:
        print(f"wrote {path}")
    return 0
