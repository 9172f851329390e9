"""`daq rate --video FILE`: one command for a rating sitting (see daq.study.rate).

A station (the config's dials, or --simulate), the embedded broker when none is reachable, a recorder
into --out, and a page in the browser with the video and the rating bar. The session starts when the
video starts playing and stops at its end; the command then waits for the recorder and exits.

On 127.0.0.1 (the default), localhost or ::1 the page is open to this machine; on any other --host every
request needs a token: a new one is printed at start in the page's URL (?token=...), or set DAQ_PAGE_TOKEN.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
import webbrowser
from fractions import Fraction
from pathlib import Path

from daq.commands.args import Subcommands, add_command, add_page_args, import_page_server
from daq.commands.common import config_data_from_args, run_until_signal
from daq.config import DaqConfig, build_config
from daq.embedded_broker import EmbeddedBroker, is_listening
from daq.exceptions import ConfigError, FatalError

DEFAULT_PORT = 8091

RATE_LABELS = {
    Fraction(24000, 1001): "23.976",
    Fraction(24): "24",
    Fraction(25): "25",
    Fraction(30000, 1001): "29.97",
    Fraction(30): "30",
    Fraction(48): "48",
    Fraction(50): "50",
    Fraction(60000, 1001): "59.94",
    Fraction(60): "60",
}


def register(sub: Subcommands) -> None:
    help = "a rating sitting: the video and a rating bar in the browser, the dial recorded on its frames"
    parser = add_command(sub, "rate", __doc__, handle, help=help)
    parser.add_argument("--video", type=Path, required=True, help="the video to rate (a format the browser plays)")
    parser.add_argument("--config", "-c", type=Path, help="station config (TOML) with the dial(s)")
    parser.add_argument("--dial", help="the dial the rater turns (default: the config's only or first dial)")
    parser.add_argument("--rater", default="rater", help="who rates: client, therapist, observer-1 ... (default rater)")
    parser.add_argument("--dimension", help="what is rated (default: the dial's scale unit, else 'rating')")
    parser.add_argument(
        "--same-as",
        type=Path,
        metavar="SESSION_DIR",
        help="an earlier sitting of this video: refuse a video whose sha256 differs from the one it rated",
    )
    parser.add_argument("--simulate", action="store_true", help="a simulated dial instead of the config's")
    parser.add_argument("--out", type=Path, default=Path("recordings"), help="recordings folder (default recordings)")
    parser.add_argument("--fps", help="the video's frame rate label, e.g. 25 or 29.97 (default: ffprobe, else 25)")
    parser.add_argument(
        "--broker", metavar="URL", help="use this broker (default: the config's, localhost, else embedded)"
    )
    parser.add_argument("--embedded", action="store_true", help="always start the embedded broker")
    parser.add_argument("--mqtt-protocol", choices=("5", "3.1.1"), help="MQTT protocol version of --broker")
    parser.add_argument("--station", help="station id (default: the config's, else the host name)")
    add_page_args(parser, DEFAULT_PORT)
    parser.add_argument("--no-open", action="store_true", help="do not open the page in a browser")


def probe_rate(video: Path) -> str | None:
    """The video's frame rate label by ffprobe, or None (no ffprobe, or a rate dialdaq has no label for)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    try:
        out = subprocess.run(
            [
                ffprobe,
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=r_frame_rate",
                "-of",
                "default=nw=1:nk=1",
                str(video),
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
        return RATE_LABELS.get(Fraction(out))
    except (OSError, subprocess.SubprocessError, ValueError, ZeroDivisionError):
        return None


def sitting_config(args: argparse.Namespace, broker_url: str | None, protocol: str | None, rate: str) -> DaqConfig:
    args.root = None
    data = config_data_from_args(args)
    if broker_url is not None:
        data.setdefault("broker", {})["url"] = broker_url
    if protocol is not None:
        data.setdefault("broker", {})["protocol"] = protocol
    if args.station:
        data.setdefault("station", {})["id"] = args.station
    if args.simulate:
        data["dials"] = [
            {
                "id": args.dial or "sim-01",
                "simulate": {"rate_hz": 20.0, "seed": 1},
                "scale": {
                    "min": -50,
                    "max": 50,
                    "labels": {"-50": "very hindering", "0": "neutral", "50": "very helpful"},
                    "unit": "helpful - hindering",
                },
            }
        ]
    data["media"] = {**data.get("media", {}), "clock": "mqtt", "rate": rate, "autostart": False}
    data.setdefault("outbox", {"memory": True})
    config = build_config(data, args.config)
    if not config.dials:
        raise ConfigError(args.config, "dials", "no dials configured: give --config with [[dials]], or --simulate")
    return config


def handle(args: argparse.Namespace) -> int:
    server = import_page_server("daq.study.rate", "daq rate")
    from daq.station.station import Station
    from daq.study.sitting import check_video, read_sitting, video_id
    from daq.study.sitting_recorder import SittingRecorder
    from daq.web.app import serve
    from daq.web.door import Door, page_url

    video: Path = args.video
    if not video.is_file():
        raise FatalError(f"--video {video}: no such file")
    rate = args.fps or probe_rate(video) or "25"
    print(f"daq rate: hashing {video} ...", flush=True)
    identity = video_id(video)
    video_path = video.resolve()
    if args.same_as is not None:
        earlier = read_sitting(args.same_as)
        if earlier is None:
            raise FatalError(f"--same-as {args.same_as}: no sitting.json there (not a session of daq rate)")
        mismatch = check_video(earlier, identity)
        if mismatch is not None:
            raise FatalError(f"--same-as {args.same_as}: {mismatch}")
    door = Door.for_host(args.host, command="daq rate")
    configured = (
        config_data_from_args(argparse.Namespace(config=args.config, broker=None, root=None, mqtt_protocol=None))
        .get("broker", {})
        .get("url")
    )

    async def main(stop: asyncio.Event) -> int:
        embedded: EmbeddedBroker | None = None
        url, protocol = (None, None) if args.embedded else (args.broker or configured, args.mqtt_protocol)
        if url is None:
            if not args.embedded and is_listening("127.0.0.1", 1883):
                url = "mqtt://127.0.0.1:1883"
                print("daq rate: using the broker on localhost:1883", flush=True)
            else:
                embedded = EmbeddedBroker()
                await embedded.start()
                url, protocol = embedded.url, "3.1.1"
                print(f"daq rate: no broker found: started an embedded one at {url} (MQTT 3.1.1)", flush=True)
        try:
            config = sitting_config(args, url, protocol, rate)
            return await sit(config, stop)
        finally:
            if embedded is not None:
                await embedded.stop()

    async def sit(config: DaqConfig, stop: asyncio.Event) -> int:
        dial = args.dial or config.dials[0].id
        if dial not in {d.id for d in config.dials}:
            raise ConfigError(
                args.config, "--dial", f"no dial {dial!r}; the config has {', '.join(d.id for d in config.dials)}"
            )
        scale = next(d.scale for d in config.dials if d.id == dial)
        station = Station(config)
        sitting = server.Sitting(
            station, dial, identity, video_path, args.rater, args.dimension or scale.unit or "rating", args.out
        )
        recorder = SittingRecorder(config.broker, args.out, config.station.root, station.station_id)
        recorder_stop, station_stop, web_stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        recording = asyncio.create_task(recorder.run(recorder_stop))
        await asyncio.wait_for(recorder.connected.wait(), 10)
        running = asyncio.create_task(station.run(station_stop))

        def ready(bound: list[tuple[str, int]]) -> None:
            host, port = bound[0]
            url = page_url(host, port, door)
            print(f"daq rate: the sitting's page is {url}  (dial {dial}, rater {args.rater}, {rate} fps)", flush=True)
            print("daq rate: the session starts when the video plays and stops at its end", flush=True)
            if args.no_open:
                return
            if door.token is None:
                webbrowser.open(url)
            else:  # a browser's command line is in the process list: no token there
                print("daq rate: the page needs its token: open the URL above in the browser", flush=True)

        web = asyncio.create_task(serve(server.make_app(sitting, door), args.host, args.port, web_stop, ready))
        done = asyncio.create_task(sitting.finished.wait())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({done, stopped, web, running}, return_when=asyncio.FIRST_COMPLETED)
        if web.done() and web.exception() is not None:
            exc = web.exception()
            raise FatalError(f"cannot serve the page on {args.host}:{args.port}: {exc}")
        if not sitting.finished.is_set() and sitting.session is not None:
            await station.control.handle("session.stop", {})
            sitting.state = "ended"
            print(f"daq rate: stopped by the researcher: session {sitting.session} stopped", flush=True)
        expected = {d: p.seq for d, p in station.pipelines.items()}
        await asyncio.sleep(0.5)  # the page sees "done" before the server goes
        web_stop.set()
        station_stop.set()
        await running
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(  # noqa: ASYNC110
            recorder.stats.last_seq.get((station.station_id, d), -1) < n - 1
            for d, n in expected.items()
            if recorder.stats.rows.get((station.station_id, d))
        ):
            await asyncio.sleep(0.05)
        recorder_stop.set()
        await recording
        for task in (done, stopped, web):
            task.cancel()
        if sitting.folder is not None:
            print(f"daq rate: recorded into {sitting.folder}", flush=True)
            print(f"daq rate: next: daq review {sitting.folder} --video {video}", flush=True)
        else:
            print("daq rate: the video never played: nothing recorded", file=sys.stderr, flush=True)
        return 0

    return run_until_signal(main)
