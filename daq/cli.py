"""The `daq` command: one subcommand per module in `daq.commands`.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func` to a handler `(argparse.Namespace) -> int` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from daq import __version__, redact
from daq.exceptions import FatalError

# Order is the order `daq --help` lists them in.
COMMAND_MODULES = (
    "daq.commands.run",
    "daq.commands.demo",
    "daq.commands.record",
    "daq.commands.status",
    "daq.commands.schema",
    "daq.commands.timecode",
    "daq.commands.session",
    "daq.commands.profiles",
    "daq.commands.devices",
    "daq.commands.watch",
    "daq.commands.export",
    "daq.commands.report",
    "daq.commands.rate",
    "daq.commands.review",
    "daq.commands.lsl",
    "daq.commands.doctor",
    "daq.commands.outbox",
    "daq.commands.config",
)

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daq",
        description="dialdaq: rating dials to MQTT, every reading on the video's timecode.",
    )
    parser.add_argument("--version", action="version", version=f"dialdaq {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet on this checkout
                continue
            raise
        module.register(sub)
    return parser


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    setup_logging(args.verbose)
    try:
        code: int = args.func(args)
    except FatalError as exc:
        print(f"daq: error: {redact.scrub(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `daq ... | head`: the reader went away; that is not an error
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
