"""`daq record`: write every sample to one CSV per session and dial."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from daq.commands.common import add_broker_args, config_from_args, run_until_signal
from daq.recorder import Recorder

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "record",
        help="record samples to CSV files, one per session and dial",
        description="Subscribe to one station (or all: --station '+') and write <out>/<station>/<session>/<dial>.csv.",
    )
    add_broker_args(parser)
    parser.add_argument("--station", default="+", help="station id, or '+' for every station (default)")
    parser.add_argument(
        "--out", type=Path, default=Path("recordings"), help="folder for the files (default ./recordings)"
    )
    parser.add_argument("--client-id", help="MQTT client id (default: random)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    recorder = Recorder(config.broker, args.out, config.station.root, args.station, args.client_id)

    async def main(stop: asyncio.Event) -> int:
        if args.duration:
            asyncio.get_running_loop().call_later(args.duration, stop.set)
        print(
            f"recording {config.station.root}/{args.station} from {config.broker.address.display()} "
            f"into {args.out}/",
            flush=True,
        )
        await recorder.run(stop)
        print_summary(recorder)
        return 0

    return run_until_signal(main)


def print_summary(recorder: Recorder) -> None:
    stats = recorder.stats
    for (station, dial), rows in sorted(stats.rows.items()):
        print(f"{station}/{dial}: {rows} rows")
    missing = sum(t.missing_count for t in recorder.trackers.values())
    print(f"duplicates dropped: {stats.duplicates}; samples missing (gaps): {missing}", flush=True)
