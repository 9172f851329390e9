"""What several commands share: broker options, signal handling."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from daq.config import BrokerConfig, DaqConfig, apply_env, build_config, read_config_data
from daq.event_loop import chosen, loop_factory
from daq.url_password import warn_password_in_url


def add_broker_args(parser: argparse.ArgumentParser, with_config: bool = True) -> None:
    if with_config:
        parser.add_argument("--config", "-c", type=Path, help="station config file (TOML)")
    parser.add_argument("--broker", metavar="URL", help="mqtt://HOST:PORT or mqtts://HOST:PORT (env DAQ_BROKER_URL)")
    parser.add_argument("--root", help="topic root (default daq)")
    parser.add_argument("--mqtt-protocol", choices=("5", "3.1.1"), help="MQTT protocol version (default 5)")


def config_data_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The config file (or nothing) with the environment and command-line options applied, not yet validated."""
    config_path: Path | None = getattr(args, "config", None)
    data = read_config_data(config_path) if config_path is not None else apply_env({}, os.environ)
    if args.broker:
        warn_password_in_url(args.broker)
        data.setdefault("broker", {})["url"] = args.broker
    if getattr(args, "root", None):
        data.setdefault("station", {})["root"] = args.root
    if getattr(args, "mqtt_protocol", None):
        data.setdefault("broker", {})["protocol"] = args.mqtt_protocol
    return data


def config_from_args(args: argparse.Namespace) -> DaqConfig:
    return build_config(config_data_from_args(args), getattr(args, "config", None))


def broker_from_args(args: argparse.Namespace) -> tuple[BrokerConfig, str]:
    config = config_from_args(args)
    return config.broker, config.station.root


# Exit codes of the long-running commands (`daq run`, `daq record`); README's Commands section lists them.
EXIT_OK = 0
EXIT_CONFIG = 2  # a config error or a refusal retrying will not fix (daq.cli's EXIT_USAGE)
EXIT_NO_BROKER = 3  # stopped without ever reaching the broker: nothing delivered (or received)
EXIT_CODES_EPILOG = """\
exit codes:
  0  stopped cleanly (the broker was reached)
  2  a config error, or a refusal retrying will not fix (bad password, certificate, protocol)
  3  stopped without ever reaching the broker: nothing was delivered (run: the samples are kept
     in the outbox folder for the next start, or LOST with a memory outbox) or received (record)
"""

# Loggers whose INFO lines (a start line, "connected to the broker") a user sees without -v.
TERMINAL_LOGGERS = ("daq.mqtt.session", "daq.commands.run", "daq.commands.record")


def say_progress() -> list[tuple[logging.Logger, int]]:
    """Let TERMINAL_LOGGERS through at INFO when the log shows less; returns what to restore."""
    if logging.getLogger().getEffectiveLevel() <= logging.INFO:
        return []
    changed = []
    for name in TERMINAL_LOGGERS:
        logger = logging.getLogger(name)
        changed.append((logger, logger.level))
        logger.setLevel(logging.INFO)
    return changed


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[int]], event_loop: str | None = None) -> int:
    """Run `main(stop)`; SIGTERM and SIGINT set `stop`, and `main` flushes and returns.

    While it runs, the broker's comings and goings and the command's start line are shown at the
    default verbosity (`say_progress`). The loop is uvloop where it is installed, else asyncio's
    (daq.event_loop): `event_loop` is the configured choice (`[station] event_loop`; None: auto),
    DAQ_EVENT_LOOP overrides it.
    """

    # Device reader threads stamp each read as it returns; a short switch interval lets them take the
    # GIL promptly while the loop is busy (measured in benchmarks/serial_readers.py: p99 25 ms -> 6 ms).
    sys.setswitchinterval(0.001)

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await main(stop)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    factory, name = loop_factory(chosen(event_loop))
    logging.getLogger(__name__).debug("event loop: %s", name)
    restore = say_progress()
    try:
        with asyncio.Runner(loop_factory=factory) as loop_runner:
            return loop_runner.run(runner())
    finally:
        for logger, level in restore:
            logger.setLevel(level)
