"""`daq doctor`: is each configured dial ready to be read, and if not, what to do.

Check that each configured dial is present, readable and not held by a kernel driver, and say what
to do. With --listen S each dial that passed the checks is then opened for S seconds and what it
sends is decoded: readings and their range, garbage with its reasons and the last undecodable
input, discarded lines, buttons.

Exit 0 when every dial is ready (or no config was given: then only this machine is
checked), 1 when a dial is not (with --listen: also when what it sent never decoded), 2 when
the config itself is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from pathlib import Path

from daq.commands.args import Subcommands, add_command
from daq.config import build_config, read_config_data
from daq.diagnose.doctor import diagnose, machine, render
from daq.exceptions import ConfigError

HELP = "check that each configured dial is present, readable and not held by a kernel driver, and say what to do"


def register(sub: Subcommands) -> None:
    parser = add_command(sub, "doctor", __doc__, handle, help=HELP)
    parser.add_argument("--config", "-c", type=Path, help="station config file (TOML) whose dials to check")
    parser.add_argument(
        "--listen",
        type=float,
        metavar="S",
        help="then open each ready dial for S seconds and show what it sends, decoded (turn it meanwhile)",
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")


def handle(args: argparse.Namespace) -> int:
    config = build_config(read_config_data(args.config), args.config) if args.config else None
    if args.listen is not None and (config is None or not 0 < args.listen <= 3600):
        raise ConfigError(None, "--listen", "give --config FILE, and seconds above 0 (at most 3600)")
    reports = diagnose(config) if config is not None else []
    if config is not None and args.listen is not None:
        from daq.diagnose.listen import listen

        def reading(describe: str) -> None:
            print(f"  {describe}: reading now", flush=True)

        if not args.json:
            print(
                f"listening to each dial for {args.listen:g} s once it is read (below): turn it, press its buttons",
                flush=True,
            )
        asyncio.run(listen(config, reports, args.listen, None if args.json else reading))
    facts = machine(config.profile_dirs if config is not None else ())
    if args.json:
        body = {
            "dials": [r.as_json() for r in reports],
            "machine": [asdict(f) for f in facts],
        }
        print(json.dumps(body, indent=2))
    else:
        print(render(reports, facts, configured=config is not None, listened=args.listen is not None))
    return 0 if all(r.ready for r in reports) else 1
