"""`daq config`: the example configs that ship with dialdaq.

`daq config example` prints the example station config (every common key, commented), to start
a station's own: `daq config example > daq.toml`, edit, then `daq run --config daq.toml` (or
`daq doctor --config daq.toml` first). `daq config files` prints the folder of every shipped
config and lists it: the station example, Mosquitto's TLS config and ACL, bridged and clustered
brokers (Mosquitto, EMQX), the udev rules; copy from there. They are the package data
`daq.config_files` (the repository's config/ folder), so a wheel or pipx install has them too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daq.commands.args import Subcommands, add_command
from daq.package_data import shipped_folder

EXAMPLE = "daq.example.toml"


def config_files_dir() -> Path:
    """The shipped config folder (the repository's config/), wherever dialdaq is installed."""
    return shipped_folder("daq.config_files", "config")


def register(sub: Subcommands) -> None:
    parser = add_command(sub, "config", __doc__, None, help="the example configs that ship with dialdaq")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    example = verbs.add_parser("example", help=f"print the example station config ({EXAMPLE})")
    example.set_defaults(func=handle_example)
    files = verbs.add_parser("files", help="print the folder of the shipped configs and list it")
    files.set_defaults(func=handle_files)


def handle_example(args: argparse.Namespace) -> int:
    sys.stdout.write((config_files_dir() / EXAMPLE).read_text(encoding="utf-8"))
    return 0


def handle_files(args: argparse.Namespace) -> int:
    folder = config_files_dir()
    print(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")):
        print(f"  {path.relative_to(folder).as_posix()}")
    return 0
