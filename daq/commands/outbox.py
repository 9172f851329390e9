"""`daq outbox show|discard`: what a station's disk outbox holds, and emptying it on purpose.

The folder is `--path DIR`, or the one a config names (`--config FILE`: `[outbox] path`, else
the station's default), or the default folder of `--station ID`. `show` reads without changing
anything (also while a daemon runs: then a snapshot). `discard` asks `y/N` (`--yes` skips the
question), refuses while a daemon holds the folder's LOCK, and logs what it deleted as a
deliberate choice. Exit codes: 0 done (or nothing to do), 1 declined or the folder in use,
2 a usage or config error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from daq.config import default_outbox_dir, load_config
from daq.exceptions import FatalError
from daq.outbox.inventory import Inventory, discard, in_use, inventory

log = logging.getLogger("daq.outbox")

EXIT_DECLINED = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("outbox", help="list what a station's outbox holds, or discard it")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    show = verbs.add_parser("show", help="samples waiting, per boot and dial: count, seq and time range, bytes")
    add_folder_args(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=handle_show)
    drop = verbs.add_parser("discard", help="delete every sample waiting in the outbox (asks first)")
    add_folder_args(drop)
    drop.add_argument("--yes", "-y", action="store_true", help="do not ask")
    drop.set_defaults(func=handle_discard)


def add_folder_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--config", "-c", type=Path, help="station config file: its [outbox] path")
    where.add_argument("--path", type=Path, help="the outbox folder")
    where.add_argument("--station", help="station id: its default outbox folder")


def folder_from_args(args: argparse.Namespace) -> Path:
    if args.path is not None:
        return Path(args.path)
    if args.station:
        return default_outbox_dir(args.station)
    if args.config is not None:
        config = load_config(args.config)
        if config.outbox.memory:
            raise FatalError(f"{args.config}: [outbox] memory = true: this station keeps no outbox on disk")
        return config.outbox.path or default_outbox_dir(config.station.id)
    raise FatalError("name the outbox: --config FILE, --path DIR or --station ID")


def when(t_ns: int | None) -> str:
    if t_ns is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t_ns / 1e9)) + f".{t_ns // 10**6 % 1000:03d}"


def span(a: int | None, b: int | None) -> str:
    return "?" if a is None else f"{a}..{b}"


def describe(inv: Inventory) -> list[str]:
    if not inv.exists:
        return [f"outbox {inv.path}: no such folder (nothing kept)"]
    state = "in use by a running daemon: a snapshot" if inv.in_use else "no daemon running on it"
    lines = [
        f"outbox {inv.path}: {inv.records} samples waiting in {inv.segments} segments, "
        f"{inv.bytes_on_disk:,} bytes on disk ({state})"
    ]
    if inv.groups:
        rows = [("boot", "dial", "samples", "seq", "read from (UTC)", "read to (UTC)", "bytes")]
        groups = sorted(inv.groups.values(), key=lambda g: (g.t_ns_first or 0, g.boot, g.dial))
        for g in groups:
            row = (g.boot, g.dial, str(g.records), span(g.seq_first, g.seq_last))
            rows.append((*row, when(g.t_ns_first), when(g.t_ns_last), f"{g.bytes:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for segment, n in sorted(inv.damaged.items()):
        lines.append(f"  damaged: {segment}: {n} samples cannot be read")
    return lines


def handle_show(args: argparse.Namespace) -> int:
    inv = inventory(folder_from_args(args))
    if args.json:
        print(json.dumps(inv.as_dict(), indent=2))
    else:
        print("\n".join(describe(inv)))
    return 0


def handle_discard(args: argparse.Namespace) -> int:
    path = folder_from_args(args)
    inv = inventory(path)
    if not inv.exists or (not inv.segments and not inv.damaged):
        print(f"outbox {path}: nothing to discard")
        return 0
    if inv.in_use or in_use(path):
        print(f"daq: outbox folder {path} is in use by a running daemon: stop it first", file=sys.stderr)
        return EXIT_DECLINED
    print("\n".join(describe(inv)))
    if not args.yes:
        try:
            answer = input(f"Discard these {inv.records} samples for good? They are never sent. [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("kept: nothing discarded")
            return EXIT_DECLINED
    try:
        files = discard(path)
    except FatalError as exc:
        print(f"daq: {exc}", file=sys.stderr)
        return EXIT_DECLINED
    boots = ", ".join(sorted({g.boot for g in inv.groups.values()})) or "none"
    log.warning(
        "discarded %d samples (boots %s; %d files) from outbox %s: a deliberate choice (daq outbox discard%s)",
        inv.records,
        boots,
        files,
        path,
        " --yes" if args.yes else ", confirmed",
    )
    print(f"discarded {inv.records} samples from {path}")
    return 0
