"""`daq profiles`: list, check and try out firmware profiles.

    daq profiles list [--dir DIR ...]
    daq profiles check FILE...
    daq profiles decode PROFILE (--hex HEX | --line TEXT | --file RAW | --capture FILE) [--dir DIR ...]
    daq profiles capture DIAL (--seconds S | --guided) --out FILE [--config FILE]
    daq profiles schema

`decode` is how a lab tests a new profile before it has the device on the desk: feed it the
bytes the firmware sends and see the readings (or why they are garbage). `capture` records
exactly what a configured dial sends, with read times (daq.diagnose.capture has the file format), and
`decode --capture` replays it to the samples the daemon would publish (daq.diagnose.replay); a guided
capture also checks the dial's range, direction and button (PASS/FAIL).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from daq.commands.args import Subcommands, add_command, add_profile_dirs
from daq.config import build_config, read_config_data
from daq.diagnose.capture import read_capture
from daq.diagnose.replay import Check, guided_checks, public, replay
from daq.exceptions import ConfigError, DeviceUnavailable, ProfileError
from daq.profiles.decode import make_decoder
from daq.profiles.loader import LoadedProfile, ProfileRegistry, load_profile
from daq.profiles.model import LineFraming, Profile, ReportFraming, parse_hex
from daq.reading import ButtonEvent, Chunk, Decoded, DeviceLoss, Discarded, Reading

EXIT_OK = 0
EXIT_NO_READING = 1
EXIT_BAD = 2

DIRS_HELP = "also load the *.toml profiles in DIR (repeatable)"


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "profiles",
        help="list, check and try firmware profiles",
        description="Firmware profiles describe what a dial says. A new dial is a new .toml file.",
    )
    actions = parser.add_subparsers(dest="profiles_command", metavar="ACTION", required=True)

    p = add_command(actions, "list", None, cmd_list, help="list the known profiles")
    add_profile_dirs(p, DIRS_HELP)

    p = add_command(actions, "check", None, cmd_check, help="validate profile files")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="profile .toml files")

    p = add_command(
        actions, "decode", cmd_decode.__doc__, cmd_decode, help="decode bytes with a profile and print what comes out"
    )
    p.add_argument("profile", metavar="PROFILE", help="a profile id, or the path of a .toml file")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument(
        "--hex",
        action="append",
        metavar="HEX",
        help="bytes in hex, e.g. 'AA 55 00 02 01 FC'; repeat for several reads (each --hex is one HID report)",
    )
    given.add_argument(
        "--line",
        action="append",
        metavar="TEXT",
        help="a text line; the profile's terminator is added; repeatable",
    )
    given.add_argument(
        "--file",
        type=Path,
        metavar="CAPTURE",
        help="a raw byte capture (for a report profile: reports of framing.length bytes one after another)",
    )
    given.add_argument(
        "--capture",
        type=Path,
        metavar="FILE",
        help="a capture made by `daq profiles capture`: prints the samples the daemon would publish "
        "(raw and calibrated value, with read times) and, for a guided capture, its checks",
    )
    add_profile_dirs(p, DIRS_HELP)

    p = add_command(
        actions,
        "capture",
        cmd_capture.__doc__,
        cmd_capture,
        help="record exactly what a configured dial sends, with read times, to a capture file",
    )
    p.add_argument("dial", metavar="DIAL", help="the dial's id in the config")
    p.add_argument("--config", "-c", type=Path, required=True, help="station config file (TOML)")
    p.add_argument("--out", "-o", type=Path, required=True, metavar="FILE", help="the capture file to write")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--seconds", type=float, metavar="S", help="record for S seconds")
    how.add_argument("--guided", action="store_true", help="step by step on the terminal, then check")

    add_command(actions, "schema", None, cmd_schema, help="print the JSON Schema of the profile format")


def _shown(path: Path | None) -> str:
    if path is None:
        return "<memory>"
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_list(args: argparse.Namespace) -> int:
    registry = ProfileRegistry.load(args.dir)
    rows = [("ID", "TRANSPORT", "NAME", "USB", "FILE")]
    for loaded in registry.all():
        p = loaded.profile
        rows.append((p.id, p.transport, p.name, ",".join(p.match.usb) or "-", _shown(loaded.path)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    bad = 0
    bundled = ProfileRegistry.load()
    seen: dict[str, Path] = {}
    for path in args.files:
        try:
            loaded = load_profile(path)
            _check_unique(loaded, bundled, seen)
        except ProfileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            bad += 1
            continue
        print(f"ok {path} ({loaded.id})")
    return EXIT_BAD if bad else EXIT_OK


def _check_unique(loaded: LoadedProfile, bundled: ProfileRegistry, seen: dict[str, Path]) -> None:
    """An id must be unique among the files checked and the bundled profiles."""
    assert loaded.path is not None
    here = loaded.path.resolve()
    other = seen.get(loaded.id)
    if other is None and loaded.id in bundled:
        other = bundled.get(loaded.id).path
    if other is not None and other.resolve() != here:
        raise ProfileError(loaded.path, "id", f"the id {loaded.id!r} is used by {other} already: choose another id")
    seen[loaded.id] = loaded.path


def _resolve(spec: str, dirs: list[Path]) -> Profile:
    path = Path(spec)
    if spec.endswith(".toml") or path.is_file():
        return load_profile(path).profile
    return ProfileRegistry.load(dirs).get(spec).profile


def _chunks(args: argparse.Namespace, profile: Profile) -> list[bytes]:
    framing = profile.framing
    if args.line is not None:
        if not isinstance(framing, LineFraming):
            raise ProfileError(None, "--line", f"{profile.id} has {framing.kind} framing: give --hex or --file")
        term = framing.terminator
        return [(text + term).encode(framing.encoding, errors="replace") for text in args.line]
    if args.hex is not None:
        out = []
        for text in args.hex:
            try:
                out.append(parse_hex(text))
            except ValueError as exc:
                raise ProfileError(None, "--hex", str(exc)) from None
        return out
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise ProfileError(args.file, None, f"cannot read the capture: {exc}") from None
    if isinstance(framing, ReportFraming):
        if not framing.length:
            raise ProfileError(None, "--file", "a report profile without framing.length: give each report as --hex")
        return [data[i : i + framing.length] for i in range(0, len(data), framing.length)]
    return [data]


def _as_json(item: Decoded) -> dict[str, Any]:
    if isinstance(item, Reading):
        return {"channel": item.channel, "raw": item.raw}
    if isinstance(item, ButtonEvent):
        return {"button": item.button, "pressed": item.pressed}
    if isinstance(item, DeviceLoss):
        return {"device_lost": item.lost, "expected": item.expected, "got": item.got}
    if isinstance(item, Discarded):
        return {"discarded": item.reason, "hex": item.data.hex(" "), "readings": item.count}
    return {"garbage": item.reason, "hex": item.data.hex(" ")}


def cmd_decode(args: argparse.Namespace) -> int:
    """`daq profiles decode`: decode bytes with a profile and print what comes out.

    Decode input as if a device sent it, starting at a line or frame boundary. Prints one JSON object
    per decoded item. Exit 0 if a reading or button event came out, 1 if only garbage or nothing.
    """
    profile = _resolve(args.profile, args.dir)
    if args.capture is not None:
        return _decode_capture(profile, args.capture)
    decoder = make_decoder(profile, synced=True)
    items: list[Decoded] = []
    for i, data in enumerate(_chunks(args, profile)):
        items += decoder.feed(Chunk(data, i))
    for item in items:
        print(json.dumps(_as_json(item)))
    if decoder.ignored:
        print(f"({decoder.ignored} ignored: empty lines, banners, comments or other reports)", file=sys.stderr)
    if not items and not decoder.ignored:
        print("(nothing decoded: an incomplete line or frame? a line needs its terminator)", file=sys.stderr)
    return EXIT_OK if any(isinstance(i, Reading | ButtonEvent) for i in items) else EXIT_NO_READING


def _decode_capture(profile: Profile, path: Path) -> int:
    capture = read_capture(path)
    if capture.header.get("profile") not in (None, profile.id):
        print(f"(captured with the profile {capture.header['profile']}, decoded with {profile.id})", file=sys.stderr)
    result = replay(capture, profile)
    for item in result.items:
        print(json.dumps(public(item)))
    samples = result.samples()
    discarded = f", {result.discarded} discarded" if result.discarded else ""
    print(
        f"({len(samples)} samples of {result.channel}, {result.garbage} garbage, {result.ignored} ignored{discarded})",
        file=sys.stderr,
    )
    if capture.header.get("guided"):
        checks = guided_checks(result, bool(profile.buttons))
        print(_render_checks(checks), file=sys.stderr)
        return EXIT_OK if all(c.passed for c in checks) else EXIT_NO_READING
    return EXIT_OK if samples else EXIT_NO_READING


def _render_checks(checks: list[Check]) -> str:
    lines = [f"  {'PASS' if c.passed else 'FAIL'}  {c.name:<10} {c.message}" for c in checks]
    passed = sum(c.passed for c in checks)
    verdict = "PASS" if passed == len(checks) else "FAIL"
    return "\n".join([*lines, f"{verdict}: {passed} of {len(checks)} checks passed"])


def cmd_capture(args: argparse.Namespace) -> int:
    """`daq profiles capture`: record what a configured dial sends, with read times, to a capture file.

    Record what a dial of the station config sends (bytes or reports, each with its read time) to a
    JSON-lines capture file that `daq profiles decode PROFILE --capture FILE` replays. --guided asks
    you to turn the dial to each end and press its button, and checks that the profile's range and
    direction come out (exit 0 when every check passes).
    """
    import asyncio

    from daq.diagnose.capture_session import capture, terminal_ask

    if args.seconds is not None and not 0 < args.seconds <= 86400:
        raise ConfigError(None, "--seconds", "give seconds above 0")
    config = build_config(read_config_data(args.config), args.config)
    try:
        outcome = asyncio.run(capture(config, args.dial, args.out, args.seconds, args.guided, terminal_ask))
    except DeviceUnavailable as exc:
        print(f"daq: error: {exc} (`daq doctor --config {args.config}` says why)", file=sys.stderr)
        return EXIT_NO_READING
    print(f"captured {outcome.chunks} reads, {outcome.bytes} bytes to {args.out}")
    if args.guided:
        print(_render_checks(outcome.checks))
    dial = next(d for d in config.dials if d.id == args.dial)
    print(f"replay it: daq profiles decode {dial.profile} --capture {args.out}")
    if args.guided:
        return EXIT_OK if all(c.passed for c in outcome.checks) else EXIT_NO_READING
    return EXIT_OK if outcome.chunks else EXIT_NO_READING


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(Profile.model_json_schema(), indent=2))
    return EXIT_OK
