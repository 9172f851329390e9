"""`daq run`: run a station."""

from __future__ import annotations

import argparse
import asyncio
import logging

from daq.commands.common import add_broker_args, config_data_from_args, run_until_signal
from daq.config import DaqConfig, build_config
from daq.exceptions import ConfigError
from daq.station.station import Station

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run a station: read the dials, publish every sample",
        description="Run a station from a config file, or N simulated dials from the command line.",
    )
    add_broker_args(parser)
    parser.add_argument("--station", help="station id (default: config, else the host name)")
    parser.add_argument("--simulate", type=int, metavar="N", help="add N simulated dials sim-01..sim-N")
    parser.add_argument("--rate", type=float, default=10.0, metavar="HZ", help="simulated readings per second")
    parser.add_argument("--seed", type=int, help="random seed of the simulated dials")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.set_defaults(func=handle)


def simulated_dials(count: int, rate: float, seed: int | None) -> list[dict[str, object]]:
    if count < 1 or count > 999:
        raise ConfigError(None, "--simulate", "give a number of dials from 1 to 999")
    if not 0 < rate <= 10000:
        raise ConfigError(None, "--rate", "give readings per second above 0 and at most 10000")
    return [
        {"id": f"sim-{i:02d}", "simulate": {"rate_hz": rate, "seed": None if seed is None else seed + i}}
        for i in range(1, count + 1)
    ]


def station_config(args: argparse.Namespace) -> DaqConfig:
    data = config_data_from_args(args)
    if args.station:
        data.setdefault("station", {})["id"] = args.station
    if args.simulate:
        data["dials"] = list(data.get("dials", [])) + simulated_dials(args.simulate, args.rate, args.seed)
    config = build_config(data, args.config)
    if not config.dials:
        raise ConfigError(args.config, "dials", "no dials configured: add [[dials]] to the config or use --simulate N")
    return config


def handle(args: argparse.Namespace) -> int:
    config = station_config(args)
    station = Station(config)  # builds everything (profiles, devices) before touching the network

    async def main(stop: asyncio.Event) -> int:
        if args.duration:
            asyncio.get_running_loop().call_later(args.duration, stop.set)
        log.info(
            "station %s: %d dials, broker %s",
            config.station.id,
            len(config.dials),
            config.broker.address.display(),
        )
        await station.run(stop)
        return 0

    return run_until_signal(main, config.station.event_loop)
