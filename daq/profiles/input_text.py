"""Device input shown to a person: as text where it is printable, else as hex; and what a
profile expects, in words. Used by the garbage warning of `daq run`, the `garbage` event,
`daq doctor --listen` and `daq profiles decode`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daq.profiles.model import Profile

TEXT_CHARS = 60  # quoted input is cut to this many characters
HEX_BYTES = 32


def printable_text(data: bytes, limit: int = TEXT_CHARS) -> str | None:
    """`data` as text when it is printable UTF-8 (a trailing line end dropped), cut to `limit`
    characters ('...' added); None when it is not text (binary, control bytes)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.rstrip("\r\n")
    if not all(c.isprintable() or c == "\t" for c in text):
        return None
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(data: bytes, limit: int = TEXT_CHARS) -> str:
    """'"abc"' for printable input, else 'hex 01 02 ...' (at most HEX_BYTES bytes)."""
    text = printable_text(data, limit)
    if text is not None:
        return repr(text)
    more = " ..." if len(data) > HEX_BYTES else ""
    return f"hex {data[:HEX_BYTES].hex(' ')}{more}" if data else "nothing"


def expectation(profile: Profile) -> str:
    """What the profile's framing expects a device to send, in words, e.g.
    "lines matching the pattern '(?P<position>[0-9]{1,4})'"."""
    framing = profile.framing
    kind = framing.kind
    pattern = getattr(framing, "pattern", None)
    if kind == "line" and pattern is not None:
        return f"lines matching the pattern {pattern!r}"
    if kind == "line":
        fields = getattr(framing, "fields", None) or {}
        columns = ", ".join(f"{name}={column}" for name, column in fields.items())
        return f"lines of columns split by {getattr(framing, 'delimiter', '')!r} ({columns})"
    if kind == "binary":
        length = getattr(framing, "length", None)
        size = f" of {length} bytes" if length else ""
        checksum = getattr(getattr(framing, "checksum", None), "kind", "none")
        return f"frames{size} starting with {getattr(framing, 'sync', '')} (checksum {checksum})"
    if kind == "report":
        length = getattr(framing, "length", None)
        report_id = getattr(framing, "report_id", None)
        rid = f", report id {report_id}" if report_id is not None else ""
        return f"HID reports{f' of {length} bytes' if length else ''}{rid}"
    return f"{kind} input"
