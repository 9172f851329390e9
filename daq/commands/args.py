"""How a command module adds its subcommand, and the options and imports several commands share.

`add_command` makes the parser: its one-line `help` for `daq --help`, its description the module
docstring's paragraphs after the first line (argparse re-wraps them), `func` its handler.
`add_profile_dirs` adds --dir (profile folders); `add_page_args` --host and --port of a page;
`import_page_server` imports a page's aiohttp server, or says that the `watch` extra is missing.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeAlias

from daq.exceptions import MissingExtraError

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]

PAGE_LIBRARIES = ("aiohttp", "multidict", "yarl")  # what the watch extra installs for the pages


def add_command(
    sub: Subcommands, name: str, doc: str | None, func: Handler | None, *, help: str
) -> argparse.ArgumentParser:
    """The subcommand `name`, described by `doc` (its module's docstring) past the first paragraph.
    `func` None: a command of verbs, each of which sets its own handler."""
    head, _, body = (doc or "").partition("\n\n")
    parser = sub.add_parser(name, help=help, description=body.strip() or head.strip() or None)
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def add_profile_dirs(parser: argparse.ArgumentParser, help: str) -> None:
    """--dir DIR (repeatable): folders of firmware profile .toml files besides the built-in ones."""
    parser.add_argument("--dir", action="append", type=Path, default=[], metavar="DIR", help=help)


def add_page_args(parser: argparse.ArgumentParser, port: int) -> None:
    """--host and --port of the page the command serves."""
    parser.add_argument("--host", default="127.0.0.1", help="address to serve the page on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=port, help=f"port of the page (default {port}; 0: any free)")


def import_page_server(module: str, command: str) -> ModuleType:
    """The page server `module` (it imports aiohttp); MissingExtraError naming `command` without the extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in PAGE_LIBRARIES:
            raise MissingExtraError("aiohttp", "watch", command) from None
        raise
