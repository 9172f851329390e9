"""`daq watch`: the group's trend line drawn live in a browser, for observers behind the mirror.

Subscribe to one station (or all: --station '+') and serve a page that draws each dial's trace, the group
mean with a +/- 1 SD band against media time, the timecode, marks and pauses; with --video, the video
plays above the traces, following the session's media clock.

On 127.0.0.1 (the default), localhost or ::1 the page is open to this machine; on any other --host every
request needs a token: a new one is printed at start in the page's URL (?token=...), or set DAQ_PAGE_TOKEN
(DAQ_WATCH_TOKEN is read too).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
from pathlib import Path

from daq.commands.args import Subcommands, add_command, add_page_args, import_page_server
from daq.commands.common import add_broker_args, config_from_args, run_until_signal
from daq.exceptions import ConfigError, FatalError
from daq.ids import ID_PATTERN

DEFAULT_PORT = 8787


def register(sub: Subcommands) -> None:
    help = "draw every dial and the group mean live in a browser (the watch extra)"
    parser = add_command(sub, "watch", __doc__, handle, help=help)
    add_broker_args(parser)
    parser.add_argument("--station", default="+", help="station id, or '+' for every station (default)")
    parser.add_argument("--video", type=Path, metavar="FILE", help="the session's video, played in the page")
    add_page_args(parser, DEFAULT_PORT)
    parser.add_argument(
        "--minutes", type=float, default=10.0, metavar="M", help="keep the last M minutes of samples (default 10)"
    )
    parser.add_argument("--client-id", help="MQTT client id (default: random)")


def check_args(args: argparse.Namespace) -> None:
    import re

    if args.station != "+" and not re.fullmatch(ID_PATTERN, args.station):
        raise ConfigError(None, "--station", f"{args.station!r} is not a station id (or '+' for every station)")
    if args.video is not None and not args.video.is_file():
        raise ConfigError(None, "--video", f"{args.video} is not a file: give the session's video file")
    if not 0 <= args.port <= 65535:
        raise ConfigError(None, "--port", "give a port from 0 to 65535")
    if not 0 < args.minutes <= 24 * 60:
        raise ConfigError(None, "--minutes", "give minutes above 0 and at most 1440")


def handle(args: argparse.Namespace) -> int:
    check_args(args)
    config = config_from_args(args)
    server = import_page_server("daq.subscribers.watch.server", "daq watch")
    from daq.subscribers.watch.bridge import WatchBridge
    from daq.web.door import Door, page_url

    door = Door.for_host(args.host, command="daq watch")

    bridge = WatchBridge(
        config.broker,
        config.station.root,
        args.station,
        args.client_id,
        window_s=args.minutes * 60.0,
        extra_meta={"video": "/video" if args.video is not None else None},
    )

    def ready(bound: list[tuple[str, int]]) -> None:
        port = bound[0][1] if bound else args.port
        print(
            f"watching {config.station.root}/{args.station} on {config.broker.address.display()}; "
            f"open {page_url(args.host, port, door)} in a browser (Ctrl-C stops)",
            flush=True,
        )

    async def main(stop: asyncio.Event) -> int:
        try:
            await server.serve(bridge, args.host, args.port, args.video, stop, ready, door)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                raise FatalError(
                    f"cannot serve on {args.host}:{args.port}: {exc.strerror}; choose another with --port"
                ) from None
            raise
        return 0

    return run_until_signal(main)
