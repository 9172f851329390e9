"""The profile format's shared parts: the spec version, name and id patterns, the integer
types binary fields and lengths are stored as, USB ids, regexes and hex bytes, and
`ProfileProblem`, the error a check spanning several keys raises (it carries the dotted key,
so the loader can say 'file: channels.position.field: ...').
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator

from daq.profiles.linear_regex import PatternRefused, compile_linear

SPEC_VERSION = 1
"""The profile spec version this dialdaq reads."""

ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
USB_ID_RE = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")

IntType = Literal[
    "int8",
    "uint8",
    "int16le",
    "int16be",
    "uint16le",
    "uint16be",
    "int32le",
    "int32be",
    "uint32le",
    "uint32be",
]

# type -> (struct format, size in bytes, signed)
INT_TYPES: dict[str, tuple[str, int, bool]] = {
    "int8": ("b", 1, True),
    "uint8": ("B", 1, False),
    "int16le": ("<h", 2, True),
    "int16be": (">h", 2, True),
    "uint16le": ("<H", 2, False),
    "uint16be": (">H", 2, False),
    "int32le": ("<i", 4, True),
    "int32be": (">i", 4, True),
    "uint32le": ("<I", 4, False),
    "uint32be": (">I", 4, False),
}


class ProfileProblem(ValueError):
    """A profile is wrong at `key` (dotted, relative to the model that raised it)."""

    def __init__(self, key: str | None, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


def _usb_id(value: str) -> str:
    if not USB_ID_RE.match(value):
        raise ProfileProblem(
            None,
            f"write a USB id as four hex digits, a colon, four hex digits, e.g. '2341:0043' (got {value!r})",
        )
    return value.lower()


def _regex(value: str) -> str:
    """A pattern RE2 runs (daq.profiles.linear_regex: linear time on any line)."""
    try:
        compile_linear(value)
    except PatternRefused as exc:
        raise ProfileProblem(None, str(exc)) from None
    return value


UsbId = Annotated[str, AfterValidator(_usb_id)]
Regex = Annotated[str, AfterValidator(_regex)]


def parse_hex(text: str) -> bytes:
    """'AA 55' / 'aa55' / '0xAA 0x55' / 'AA:55' -> b'\\xaa\\x55'. Raises ValueError."""
    cleaned = re.sub(r"0[xX]", "", text)
    cleaned = re.sub(r"[\s:,]", "", cleaned)
    if not cleaned or len(cleaned) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", cleaned):
        raise ValueError(f"write bytes as pairs of hex digits, e.g. 'AA 55' (got {text!r})")
    return bytes.fromhex(cleaned)
