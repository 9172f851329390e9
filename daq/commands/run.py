"""`daq run`: run a station; say on the terminal what it runs and, at stop, what was not delivered."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging

from daq.commands.common import (
    EXIT_CODES_EPILOG,
    EXIT_NO_BROKER,
    EXIT_OK,
    add_broker_args,
    config_data_from_args,
    run_until_signal,
)
from daq.config import DaqConfig, DialConfig, build_config, default_outbox_dir
from daq.exceptions import ConfigError
from daq.station.station import Station

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run a station: read the dials, publish every sample",
        description="Run a station from a config file, or N simulated dials from the command line.",
        epilog=EXIT_CODES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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


def describe_dial(dial: DialConfig) -> str:
    if dial.simulate is not None:
        return f"{dial.id} (simulated, {dial.simulate.rate_hz:g} Hz)"
    where = "any port that fits" if dial.attachment.is_empty else dial.attachment.describe()
    return f"{dial.id} ({dial.profile} on {where})"


def outbox_place(config: DaqConfig) -> str:
    if config.outbox.memory:
        return "in memory (what is not delivered at exit is lost)"
    return str(config.outbox.path or default_outbox_dir(config.station.id))


def media_clock(config: DaqConfig) -> str:
    media = config.media
    if media.clock == "none":
        return "none (samples carry no media position)"
    start = "session starts now" if media.autostart else "session waits for a start command"
    return f"{media.clock} at {media.rate} fps ({start})"


def start_line(config: DaqConfig) -> str:
    """One line: what this station runs, where it publishes, where it keeps what it cannot send yet."""
    dials = ", ".join(describe_dial(d) for d in config.dials)
    count = f"{len(config.dials)} dial" + ("s" if len(config.dials) != 1 else "")
    return (
        f"station {config.station.id}: {count}: {dials}; broker {config.broker.address.display()}; "
        f"outbox {outbox_place(config)}; media clock {media_clock(config)}"
    )


def handle(args: argparse.Namespace) -> int:
    config = station_config(args)
    station = Station(config)  # builds everything (profiles, devices) before touching the network

    async def main(stop: asyncio.Event) -> int:
        if args.duration:
            asyncio.get_running_loop().call_later(args.duration, stop.set)
        log.info("%s", start_line(config))
        # What start made (modules, config, profiles, the station) lives until exit: out of the cyclic
        # collector, whose full pass over it took ~16 ms here (a latency spike every few thousand samples).
        gc.freeze()
        await station.run(stop)
        session = station.publisher.session
        if session.connected_once:
            return EXIT_OK
        why = session.report.last or "stopped before the first attempt"
        log.error(
            "never reached the broker at %s (%s): nothing was delivered; exit code %d",
            config.broker.address.display(),
            why,
            EXIT_NO_BROKER,
        )
        return EXIT_NO_BROKER

    return run_until_signal(main, config.station.event_loop)
