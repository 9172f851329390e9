"""`daq lsl`: republish every dial as a Lab Streaming Layer stream (the optional extra `lsl`)."""

from __future__ import annotations

import argparse
import asyncio

from daq.commands.common import add_broker_args, config_from_args, run_until_signal
from daq.exceptions import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "lsl",
        help="republish each dial as a Lab Streaming Layer stream (needs the 'lsl' extra)",
        description=(
            "Subscribe to one station (or all: --station '+') and open one LSL stream per dial: one channel "
            "(value), source id dialdaq-<station>-<dial>, timestamps = the samples' read time on LSL's clock. "
            "Set LSLAPICFG to an lsl_api.cfg to choose LSL's resolve scope or session id."
        ),
    )
    add_broker_args(parser)
    parser.add_argument("--station", default="+", help="station id, or '+' for every station (default)")
    parser.add_argument("--client-id", help="MQTT client id (default: random)")
    parser.add_argument(
        "--wait-inlet",
        type=float,
        default=0.0,
        metavar="S",
        help="hold a new stream's samples until an inlet connects, for at most S seconds (default 0: send at once)",
    )
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from daq.subscribers.lsl import LslBridge, load_pylsl  # only here: pylsl and liblsl load on use

    if args.wait_inlet < 0:
        raise ConfigError(None, "--wait-inlet", "give 0 or more seconds")
    pylsl = load_pylsl()
    config = config_from_args(args)
    bridge = LslBridge(
        config.broker, config.station.root, args.station, args.client_id, wait_inlet_s=args.wait_inlet, pylsl=pylsl
    )

    async def main(stop: asyncio.Event) -> int:
        if args.duration:
            asyncio.get_running_loop().call_later(args.duration, stop.set)
        print(
            f"lsl: bridging {config.station.root}/{args.station} from {config.broker.address.display()} "
            f"(LSL clock offset {bridge.clock.offset:+.6f} s, liblsl {pylsl.library_version()})",
            flush=True,
        )
        await bridge.run(stop)
        stats = bridge.stats
        print(
            f"lsl: {stats.pushed} samples in {stats.streams_opened} streams; "
            f"duplicates dropped: {stats.duplicates}; invalid: {stats.invalid}",
            flush=True,
        )
        return 0

    return run_until_signal(main)
