"""`daq status`: what a station says about itself (retained status and health)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import orjson

from daq import mqtt
from daq.commands.common import add_broker_args, config_from_args
from daq.topics import parse_topic

WAIT_S = 2.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("status", help="show stations' state, dial rates, counts, errors and outbox depth")
    add_broker_args(parser)
    parser.add_argument("--station", default="+", help="station id, or '+' for all (default)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=handle)


async def collect(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    config = config_from_args(args)
    root = config.station.root
    found: dict[str, dict[str, Any]] = {}
    try:
        async with mqtt.connect(config.broker) as connection:
            await connection.subscribe([f"{root}/{args.station}/{what}" for what in ("status", "health")])
            async with asyncio.timeout(WAIT_S):
                async for message in connection.messages():
                    station, what, _ = parse_topic(root, message.topic)
                    if message.payload:
                        found.setdefault(station, {})[what] = orjson.loads(message.payload)
    except TimeoutError:
        pass
    except mqtt.MqttError as exc:
        raise SystemExit(f"daq: cannot reach the broker {config.broker.address.display()}: {exc}") from None
    return found


def rate_text(rate: float | None) -> str:
    """The measured rate; the first health report of a run has none yet (no interval to measure over)."""
    return "rate not measured yet" if rate is None else f"{rate} Hz"


def nonzero(counts: dict[str, Any], labels: dict[str, str]) -> str:
    """`, 3 discarded, 2 media errors`: each count of `labels` that is there and not zero (old stations lack some)."""
    return "".join(f", {counts[key]} {label}" for key, label in labels.items() if counts.get(key))


DIAL_TROUBLE = {
    "discarded": "discarded",
    "device_lost": "lost by the device",
    "media_errors": "media errors",
    "unrouted": "on channels no dial reads",
}
BROKER_TROUBLE = {
    "refused": "messages refused (dropped)",
    "samples_refused": "sample refusals (kept, sent again)",
    "control_dropped": "events and replies dropped in a long outage",
}


def render(found: dict[str, dict[str, Any]]) -> str:
    if not found:
        return "No station found (none has published its status on this broker)."
    lines = []
    for station, parts in sorted(found.items()):
        status = parts.get("status", {})
        health = parts.get("health", {})
        lines.append(
            f"{station}: {status.get('state', '?')} (boot {status.get('boot', '?')}, "
            f"up {health.get('uptime_s', '?')} s)"
        )
        if health:
            box, broker = health["outbox"], health["broker"]
            lines.append(
                f"  outbox: {box['pending']} pending, {box['inflight']} in flight, {box['dropped']} dropped"
                f"{', DEGRADED (memory only)' if box.get('degraded') else ''}"
            )
            lines.append(
                f"  broker: {broker['messages']} messages, {broker['reconnects']} reconnects"
                f"{nonzero(broker, BROKER_TROUBLE)}"
                f"{', last error: ' + broker['last_error'] if broker.get('last_error') else ''}"
            )
            if health.get("media_refused"):
                lines.append(f"  media clock: {health['media_refused']} inputs refused")
            for dial, d in sorted(health["dials"].items()):
                state = "connected" if d["connected"] else "DISCONNECTED"
                lines.append(
                    f"  {dial}: {state}, {rate_text(d['rate_hz'])}, {d['samples']} samples, "
                    f"{d['garbage']} garbage{nonzero(d, DIAL_TROUBLE)}, "
                    f"{d['reconnects']} reconnects, value {d['last_value']}"
                )
    return "\n".join(lines)


def handle(args: argparse.Namespace) -> int:
    found = asyncio.run(collect(args))
    print(json.dumps(found, indent=2) if args.json else render(found))
    return 0 if found else 1
