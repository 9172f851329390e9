"""`daq record`: write every sample to one CSV per session and dial; `daq record merge`: combine parts."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from daq.commands.common import (
    EXIT_CODES_EPILOG,
    EXIT_NO_BROKER,
    EXIT_OK,
    add_broker_args,
    config_from_args,
    run_until_signal,
)
from daq.exceptions import ConfigError
from daq.ids import parse_stations
from daq.subscribers.record_merge import MergedSession, merge_recordings
from daq.subscribers.recorder import DEFAULT_SESSION_EXPIRY_S, Recorder

log = logging.getLogger(__name__)

DESCRIPTION = """\
Subscribe to stations and write <out>/<station>/<session>/<dial>.csv.

--station takes one id, several (repeat it, or lab-a,lab-b), or '+' for every station,
also those that appear later (each new one is announced).

--share GROUP joins an MQTT shared subscription: the broker gives each sample message to one
recorder of the group, so each writes <dial>@<client-id>.csv with its part; `daq record merge OUT`
combines the parts into <dial>.csv. --persistent keeps the session on the broker (clean start off,
--session-expiry), so a recorder restarted with the same --client-id gets what it missed. Messages
are acknowledged only after their rows are written.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "record",
        help="record samples to CSV files, one per session and dial (merge: combine a shared group's files)",
        description=DESCRIPTION,
        epilog=EXIT_CODES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_broker_args(parser)
    parser.add_argument(
        "--station",
        action="append",
        metavar="ID",
        help="station id; repeat it or give a comma list for several; '+' for every station (default)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("recordings"), help="folder for the files (default ./recordings)"
    )
    parser.add_argument("--client-id", help="MQTT client id (default: random); names the files with --share")
    parser.add_argument(
        "--share", metavar="GROUP", help="join shared subscription group GROUP ($share/GROUP/...) for the samples"
    )
    parser.add_argument(
        "--persistent",
        action="store_true",
        help="keep the MQTT session while away (needs --client-id): a restart gets what it missed",
    )
    parser.add_argument(
        "--session-expiry",
        type=int,
        default=DEFAULT_SESSION_EXPIRY_S,
        metavar="S",
        help=f"with --persistent, MQTT 5: how long the broker keeps the session (default {DEFAULT_SESSION_EXPIRY_S})",
    )
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.set_defaults(func=handle)

    actions = parser.add_subparsers(dest="record_action", metavar="ACTION")
    merge = actions.add_parser(
        "merge",
        help="merge the per-recorder files of each session into <dial>.csv",
        description=(
            "Merge every recording under OUT_DIR (the --out folder, a station's folder or one session's): "
            "per session and dial, all files (<dial>@<recorder>.csv and <dial>.csv) become <dial>.csv, "
            "each (boot, seq) once, boots in time order, seq order within a boot; summary.json lists the "
            "sources, duplicates dropped and the seqs still missing. The parts are kept."
        ),
    )
    merge.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    merge.add_argument("--check", action="store_true", help="exit 1 when a gap remains")
    merge.set_defaults(func=handle_merge)


def handle(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        stations = parse_stations(args.station or ["+"])
        recorder = Recorder(
            config.broker,
            args.out,
            config.station.root,
            stations,
            args.client_id,
            share=args.share,
            persistent=args.persistent,
            session_expiry_s=args.session_expiry,
            on_new_station=lambda s: print(f"new station: {s}", flush=True),
        )
    except ValueError as exc:
        raise ConfigError(None, None, str(exc)) from exc

    async def main(stop: asyncio.Event) -> int:
        if args.duration:
            asyncio.get_running_loop().call_later(args.duration, stop.set)
        extra = ""
        if recorder.share is not None:
            extra += f" in shared group {recorder.share} as {recorder.client_id}"
        if recorder.persistent:
            extra += f" (persistent session {recorder.client_id})"
        stations = ", ".join(f"{config.station.root}/{s}" for s in recorder.stations)
        print(
            f"recording {stations} from {config.broker.address.display()}{extra} into {args.out}/",
            flush=True,
        )
        await recorder.run(stop)
        print_summary(recorder)
        session = recorder.mqtt_session
        if session.connected_once:
            return EXIT_OK
        log.error(
            "never reached the broker at %s (%s): nothing was received or recorded; exit code %d",
            config.broker.address.display(),
            session.report.last or "stopped before the first attempt",
            EXIT_NO_BROKER,
        )
        return EXIT_NO_BROKER

    return run_until_signal(main)


def print_summary(recorder: Recorder) -> None:
    stats = recorder.stats
    for (station, dial), rows in sorted(stats.rows.items()):
        print(f"{station}/{dial}: {rows} rows")
    if recorder.share is not None:
        print(
            f"duplicates dropped: {stats.duplicates}; this recorder holds a part of group {recorder.share}: "
            f"run `daq record merge {recorder.out_dir}` for complete files and gaps",
            flush=True,
        )
        return
    missing = sum(t.missing_count for t in recorder.trackers.values())
    if stats.late:
        print(
            f"{stats.late} samples came late (after a higher seq; they fill the gaps reported above) and are "
            f"written where they arrived: `daq record merge {recorder.out_dir}` puts the files in seq order"
        )
    for entry in recorder.before_subscribe():  # not a gap: published before this recorder heard of the boot
        print(f"{entry['station']}/{entry['dial']} boot {entry['boot']}: first seq seen {entry['first_seq_seen']}")
    print(f"duplicates dropped: {stats.duplicates}; samples missing (gaps): {missing}", flush=True)
    if stats.refused.count:
        print(f"refused (not written): {stats.refused.count}, {dict(stats.refused.reasons)}", flush=True)


def handle_merge(args: argparse.Namespace) -> int:
    if not args.out_dir.is_dir():
        raise ConfigError(None, "OUT_DIR", f"{args.out_dir} is not a folder")
    sessions = merge_recordings(args.out_dir)
    if not sessions:
        print(f"no recordings under {args.out_dir}")
        return 0
    print_merge(sessions)
    gaps = sum(d.missing for s in sessions for d in s.dials)
    return 1 if args.check and gaps else 0


def print_merge(sessions: list[MergedSession]) -> None:
    total_rows = total_dups = total_missing = 0
    for session in sessions:
        for name in session.skipped:
            print(f"{session.folder / name}: not a dialdaq recording; skipped")
        for dial in session.dials:
            parts = ", ".join(f"{name} {rows}" for name, rows in dial.sources.items())
            line = f"{dial.path}: {dial.rows} rows from {len(dial.sources)} files ({parts}); "
            line += f"{dial.duplicates} duplicates dropped"
            if dial.bad_rows:
                line += f"; {dial.bad_rows} torn rows skipped"
            print(line)
            for gap in dial.gaps:
                ranges = ", ".join(f"{lo}..{hi}" if lo != hi else f"{lo}" for lo, hi in gap["missing"])
                print(f"  gap: boot {gap['boot']} is missing seq {ranges} ({gap['count']} samples)")
            total_rows += dial.rows
            total_dups += dial.duplicates
            total_missing += dial.missing
    print(
        f"merged {sum(len(s.dials) for s in sessions)} files in {len(sessions)} sessions: {total_rows} rows, "
        f"duplicates dropped: {total_dups}; samples missing (gaps): {total_missing}",
        flush=True,
    )
