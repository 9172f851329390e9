"""`daq schema`: the JSON Schema of every payload on the wire."""

from __future__ import annotations

import argparse
import json

from daq.contract import json_schemas


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("schema", help="print the JSON Schema of every MQTT payload")
    parser.add_argument(
        "--payload",
        choices=("sample", "samples", "status", "meta", "session", "event"),
        help="print only this payload's schema",
    )
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    schemas = json_schemas()
    out = schemas["payloads"][args.payload] if args.payload else schemas
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0
