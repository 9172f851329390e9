"""`daq demo`: the whole path on a bare machine.

Simulated dials -> station -> broker -> recorder, in one process. With no broker given and
nothing listening on localhost:1883 it starts an embedded (amqtt) broker. Shows the live values,
stops after --duration or Ctrl-C, and prints where the CSV files are.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from daq.commands.common import run_until_signal
from daq.commands.run import simulated_dials
from daq.config import DaqConfig, build_config
from daq.embedded_broker import EmbeddedBroker, is_listening
from daq.station.station import Station
from daq.subscribers.recorder import Recorder
from daq.url_password import warn_password_in_url

DEMO_STATION = "demo"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="simulated dials, a broker and a recorder in one go: try dialdaq with nothing installed",
    )
    parser.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds to run (default 10)")
    parser.add_argument("--dials", type=int, default=4, metavar="N", help="simulated dials (default 4)")
    parser.add_argument("--rate", type=float, default=20.0, metavar="HZ", help="readings per second per dial")
    parser.add_argument("--out", type=Path, default=Path("recordings"), help="where the CSV files go")
    parser.add_argument("--broker", metavar="URL", help="use this broker instead of an embedded one")
    parser.add_argument("--embedded", action="store_true", help="always start the embedded broker")
    parser.add_argument("--port", type=int, default=0, help="port of the embedded broker (default: a free one)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the simulated dials")
    parser.set_defaults(func=handle)


def demo_config(broker_url: str, protocol: str, args: argparse.Namespace) -> DaqConfig:
    return build_config(
        {
            "station": {"id": DEMO_STATION},
            "outbox": {"memory": True},  # a demo leaves nothing behind to replay into the next one
            "broker": {
                "url": broker_url,
                "protocol": protocol,
                "client_id": f"daq-demo-{time.monotonic_ns() % 100000}",
            },
            "dials": [
                {**d, "scale": {"min": -50, "max": 50, "unit": "hindering (-50) .. helpful (+50)"}}
                for d in simulated_dials(args.dials, args.rate, args.seed)
            ],
        }
    )


class LiveLine:
    """The dials' current values on one terminal line (a new line each second when not a terminal)."""

    def __init__(self, station: Station) -> None:
        self.station = station
        self.tty = sys.stdout.isatty()

    def render(self) -> str:
        pipes = self.station.pipelines.values()
        timecode = next((p.stats.last_timecode for p in pipes if p.stats.last_timecode), "--:--:--:--")
        values = "  ".join(
            f"{p.dial} {p.stats.last_value:+6.1f}" if p.stats.last_value is not None else f"{p.dial}   ---"
            for p in pipes
        )
        total = sum(p.seq for p in pipes)
        return f"{timecode}  {values}  | {total} samples, outbox {self.station.outbox.pending}"

    async def run(self) -> None:
        period = 0.2 if self.tty else 1.0
        while True:
            await asyncio.sleep(period)
            if self.tty:
                sys.stdout.write("\r" + self.render() + "\x1b[K")
            else:
                sys.stdout.write(self.render() + "\n")
            sys.stdout.flush()


def handle(args: argparse.Namespace) -> int:
    async def main(stop: asyncio.Event) -> int:
        embedded: EmbeddedBroker | None = None
        if args.broker:
            warn_password_in_url(args.broker)
            url, protocol = args.broker, "5"
        elif not args.embedded and is_listening("127.0.0.1", 1883):
            url, protocol = "mqtt://127.0.0.1:1883", "5"
            print("using the broker already listening on localhost:1883")
        else:
            embedded = EmbeddedBroker(args.port)
            await embedded.start()
            url, protocol = embedded.url, "3.1.1"
            print(
                f"started an embedded MQTT broker at {url} (MQTT 3.1.1: other daq commands against it "
                "need --mqtt-protocol 3.1.1)"
            )
        try:
            return await demo(url, protocol, args, stop)
        finally:
            if embedded is not None:
                await embedded.stop()

    return run_until_signal(main)


async def demo(url: str, protocol: str, args: argparse.Namespace, stop: asyncio.Event) -> int:
    config = demo_config(url, protocol, args)
    station = Station(config)
    recorder = Recorder(config.broker, args.out, config.station.root, DEMO_STATION)
    recorder_stop = asyncio.Event()
    recording = asyncio.create_task(recorder.run(recorder_stop))
    connected = asyncio.create_task(recorder.connected.wait())
    await asyncio.wait({connected, recording}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    connected.cancel()
    if recording.done():
        recording.result()  # the broker refused the recorder (BrokerRefused: exit 2)
        return 1
    if not recorder.connected.is_set():
        recorder_stop.set()
        await recording
        raise TimeoutError(f"the recorder did not connect to {config.broker.address.display()} within 10 s")
    print(
        f"{args.dials} simulated dials at {args.rate:g} Hz for {args.duration:g} s "
        f"(Ctrl-C stops early); topics {station.topics.base}/#",
        flush=True,
    )
    asyncio.get_running_loop().call_later(args.duration, stop.set)
    live = asyncio.create_task(LiveLine(station).run())
    try:
        await station.run(stop)
    finally:
        live.cancel()
        print()
    expected = {dial: p.seq for dial, p in station.pipelines.items()}
    deadline = time.monotonic() + 10
    # The recorder is another client: poll what it has written until it caught up (or 10 s passed).
    while time.monotonic() < deadline and any(  # noqa: ASYNC110
        recorder.stats.last_seq.get((DEMO_STATION, d), -1) < n - 1 for d, n in expected.items()
    ):
        await asyncio.sleep(0.05)
    recorder_stop.set()
    await recording
    return report(recorder, expected, args.out)


def report(recorder: Recorder, expected: dict[str, int], out: Path) -> int:
    ok = True
    print(f"recorded into {out.resolve()}:")
    for dial, count in expected.items():
        rows = recorder.stats.rows.get((DEMO_STATION, dial), 0)
        ok &= rows == count
        print(f"  {dial}: {rows} of {count} samples")
    for path in sorted(out.glob(f"{DEMO_STATION}/*/*.csv")):
        print(f"  {path}")
    if not ok:
        print("some samples did not reach the recorder", file=sys.stderr)
    return 0 if ok else 1
