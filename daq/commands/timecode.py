"""`daq timecode`: convert between frame counts, SMPTE timecode and real seconds.

Convert one position between a frame count (0 = 00:00:00:00), SMPTE timecode and real seconds
(frame / exact fps, so 29.97 timecode runs 3.6 s an hour slow against the clock).
"""

from __future__ import annotations

import argparse
import json
from fractions import Fraction

from daq.commands.args import Subcommands, add_command
from daq.exceptions import ConfigError
from daq.timecode import (
    FrameRate,
    TimecodeError,
    frame_to_seconds,
    frame_to_timecode,
    seconds_to_frame,
    timecode_to_frame,
)

_MICRO = 1_000_000


def register(sub: Subcommands) -> None:
    """Add the `timecode` subcommand."""
    parser = add_command(sub, "timecode", __doc__, run, help="convert between frames, SMPTE timecode and seconds")
    parser.add_argument(
        "--rate",
        default="25",
        metavar="RATE",
        help="frame rate: 23.976, 24, 25, 29.97, 29.97df, 30, 47.952, 48, 50, 59.94, 59.94df, 60 "
        "or a fraction such as 30000/1001df (default: 25)",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--frame", type=int, metavar="N", help="frame count, from 0")
    what.add_argument("--tc", metavar="TIMECODE", help="HH:MM:SS:FF (HH:MM:SS;FF for drop-frame)")
    what.add_argument("--seconds", metavar="S", help="real seconds, e.g. 600.6 or 3003/5: the frame showing then")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")


def run(args: argparse.Namespace) -> int:
    """Print the position given on the command line in all three forms."""
    try:
        rate = FrameRate.parse(args.rate)
    except TimecodeError as exc:
        raise ConfigError(None, "--rate", str(exc)) from exc
    key = "--frame" if args.frame is not None else "--tc" if args.tc is not None else "--seconds"
    try:
        if args.frame is not None:
            frame: int = args.frame
        elif args.tc is not None:
            frame = timecode_to_frame(args.tc, rate)
        else:
            frame = seconds_to_frame(_parse_seconds(args.seconds), rate)
            if frame >= rate.frames_per_day:
                raise TimecodeError(
                    f"{args.seconds} s is frame {frame}, past the last timecode of the day at {rate.label} "
                    f"(frame {rate.frames_per_day - 1})"
                )
        # Re-labelled even for --tc, so ":" typed at a drop-frame rate comes back as ";".
        timecode = frame_to_timecode(frame, rate)
    except TimecodeError as exc:
        raise ConfigError(None, key, str(exc)) from exc
    seconds = frame_to_seconds(frame, rate)
    if args.json:
        record = {"rate": rate.label, "frame": frame, "timecode": timecode, "seconds": float(seconds)}
        print(json.dumps(record))
    else:
        print(f"frame: {frame}")
        print(f"timecode: {timecode}")
        print(f"seconds: {_format_seconds(seconds)}")
    return 0


def _parse_seconds(text: str) -> Fraction:
    # Fraction(str) reads the decimal exactly ("0.12" is 3/25), unlike float("0.12").
    try:
        return Fraction(text.strip())
    except (ValueError, ZeroDivisionError) as exc:
        raise TimecodeError(f"{text!r} is not a number of seconds: write e.g. 600.6 or 3003/5") from exc


def _format_seconds(seconds: Fraction) -> str:
    """Six decimal places, plus the exact fraction when six places do not hold it."""
    micro = round(seconds * _MICRO)
    text = f"{micro // _MICRO}.{micro % _MICRO:06d}"
    if seconds * _MICRO != micro:
        text += f" ({seconds.numerator}/{seconds.denominator})"
    return text
