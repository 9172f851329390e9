"""`daq session`: control a running station's session and media clock over MQTT.

Each action publishes one request on `<root>/<station>/cmd/<verb>` with an MQTT 5 response topic
(`.../cmd/<verb>/reply/<id>`; with --mqtt-protocol 3.1.1 the station answers on `.../cmd/<verb>/reply`),
waits for the reply that carries the request's id and prints it as one JSON line.
Exit status: 0 the station did it, 1 it refused (the reply says why), 2 the broker refused us
(a wrong password, a certificate that does not verify, a subscription the ACL denies), 3 no reply
in time, 4 the broker could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from typing import Any

import orjson

from daq import mqtt
from daq.commands.common import add_broker_args, config_data_from_args
from daq.config import DaqConfig, build_config
from daq.mediaclock.factory import CLOCK_KINDS
from daq.topics import Topics

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_TIMEOUT = 3
EXIT_NO_BROKER = 4


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    add_broker_args(common)
    common.add_argument("--station", help="station id (default: config, else the host name)")
    common.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="seconds to wait for the reply (default 5)"
    )
    parser = sub.add_parser(
        "session",
        help="start, stop, pause, resume, seek or mark a running station's session; switch its clock",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser("start", parents=[common], help="start a new session (new session id)")
    start.add_argument("--timecode", help="session clock: start at this timecode (default: config)")
    actions.add_parser("stop", parents=[common], help="end the session")
    actions.add_parser("pause", parents=[common], help="pause the session clock")
    actions.add_parser("resume", parents=[common], help="resume the session clock")
    seek = actions.add_parser("seek", parents=[common], help="move the session clock to SECONDS")
    seek.add_argument("seconds", type=float, metavar="SECONDS", help="media position in seconds")
    mark = actions.add_parser("mark", parents=[common], help="put a labelled mark on events")
    mark.add_argument("label", metavar="LABEL")
    mark.add_argument("--dial", help="the dial the mark is about, if any")
    clock = actions.add_parser("clock", parents=[common], help="switch the media clock")
    clock.add_argument("kind", choices=CLOCK_KINDS, metavar="KIND", help=" | ".join(CLOCK_KINDS))
    clock.add_argument("--socket", metavar="PATH", help="mpv: the path given to mpv --input-ipc-server")
    clock.add_argument("--port", metavar="NAME", help="mtc: MIDI input port name")
    clock.add_argument("--rate", help="frame rate of the new clock (default: unchanged)")
    clock.add_argument("--timecode", help="session: start the new clock at this timecode")
    parser.set_defaults(func=handle)


def request_of(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The verb and request body an action stands for."""
    action = args.action
    if action in ("start", "stop", "pause", "resume"):
        body: dict[str, Any] = {}
        if action == "start" and args.timecode:
            body["timecode"] = args.timecode
        return f"session.{action}", body
    if action == "seek":
        return "session.seek", {"media_s": args.seconds}
    if action == "mark":
        return "mark", {"label": args.label, **({"dial": args.dial} if args.dial else {})}
    body = {"clock": args.kind}
    for key in ("socket", "port", "rate", "timecode"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    return "clock.set", body


def handle(args: argparse.Namespace) -> int:
    verb, request = request_of(args)
    data = config_data_from_args(args)
    if args.station:
        data.setdefault("station", {})["id"] = args.station
    config = build_config(data, args.config)
    return asyncio.run(send(config, verb, request, args.timeout))


async def send(config: DaqConfig, verb: str, request: dict[str, Any], wait_s: float) -> int:
    """Send one request, print the reply; the exit status."""
    topics = Topics(config.station.root, config.station.id)
    request_id = secrets.token_hex(6)
    request = {**request, "id": request_id}
    try:
        reply = await asyncio.wait_for(_exchange(config, topics, verb, request), wait_s)
    except TimeoutError:
        print(
            f"daq session: no reply from station {config.station.id!r} within {wait_s:g} s on "
            f"{topics.cmd(verb)}: is `daq run` running there, with this broker and root?",
            file=sys.stderr,
        )
        return EXIT_TIMEOUT
    except mqtt.MqttError as exc:
        print(f"daq session: broker {config.broker.address.display()}: {exc}", file=sys.stderr)
        return EXIT_NO_BROKER
    print(orjson.dumps(reply).decode())
    return EXIT_OK if reply.get("ok") is True else EXIT_REFUSED


async def _exchange(config: DaqConfig, topics: Topics, verb: str, request: dict[str, Any]) -> dict[str, Any]:
    v5 = config.broker.protocol == "5"
    reply_topic = f"{topics.cmd_reply(verb)}/{request['id']}" if v5 else topics.cmd_reply(verb)
    options = mqtt.ConnectOptions(f"daq-session-{request['id']}")
    async with mqtt.connect(config.broker, options) as connection:
        await connection.subscribe([reply_topic])
        await connection.publish(topics.cmd(verb), orjson.dumps(request), response_topic=reply_topic if v5 else None)
        async for message in connection.messages():
            try:
                reply = orjson.loads(message.payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(reply, dict) and reply.get("id") == request["id"]:
                return reply
    raise mqtt.MqttError("the connection closed before the reply came")
