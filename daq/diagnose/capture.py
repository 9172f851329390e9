"""Captures: exactly what a device sent, with each read's time, in a file a decoder can replay.

`daq profiles capture DIAL --seconds S --out FILE` writes one; `daq profiles decode PROFILE
--capture FILE` replays it to the readings the daemon would publish (daq.diagnose.replay). The file is
JSON lines, UTF-8, one object per line, written as the chunks arrive (an interrupted capture
is still a valid file, just without its `end` line):

    {"format": "dialdaq-capture", "version": 1, "profile": "arduino-pot", "transport": "serial",
     "framing": "line", "device": "serial:/dev/ttyACM0", "started": "2026-12-01T20:30:00.123456+00:00",
     "wall_offset_ns": 1796070000123456789, "guided": false,
     "dial": {"id": "p1", "channel": "position", "scale": {...}, "calibration": {...}}}
    {"t_ns": 81234567890, "hex": "3531320d0a"}          one chunk: the bytes of one read (one HID
                                                         report, one MIDI message) as they came
    {"t_ns": 81240000000, "gone": "serial:...: unplugged"}   the device went away (the daemon
                                                         resets its decoder here), and
    {"t_ns": 81990000000, "opened": "serial:/dev/ttyACM0"}   was opened again
    {"t_ns": 82000000000, "mark": "low"}                 guided mode: the user said the dial is at
                                                         its low end ("low", "high", "button")
    {"t_ns": 84000000000, "end": true, "chunks": 412, "bytes": 2060}

`t_ns` is the read time on this host's monotonic clock (time.monotonic_ns(), as the transports
stamp chunks); add `wall_offset_ns` for wall-clock (Unix epoch) nanoseconds, as a sample's
`t_ns`. The first chunk is the first read after the port was opened (a serial transport has
waited the profile's settle_s and dropped what arrived meanwhile, as the daemon does), so a
replay decodes it as the daemon would: the first line after opening is dropped when the profile
says `discard_first_line`. Readers ignore keys they do not know; `version` changes only when a
key's meaning does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from daq.exceptions import DeviceGone, DeviceUnavailable, ProfileError
from daq.reading import Chunk
from daq.transports.base import Transport

FORMAT = "dialdaq-capture"
VERSION = 1


@dataclass
class Capture:
    """A capture file read back: its header and its records, in file order."""

    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    def chunks(self) -> Iterator[Chunk]:
        for record in self.records:
            if "hex" in record:
                yield Chunk(bytes.fromhex(record["hex"]), int(record["t_ns"]))


class CaptureWriter:
    """Writes a capture as it happens: the header at once, then one line per record, flushed."""

    def __init__(self, out: IO[str], header: dict[str, Any]) -> None:
        self.out = out
        self.chunks = 0
        self.bytes = 0
        offset = time.time_ns() - time.monotonic_ns()
        started = datetime.datetime.now(datetime.UTC).isoformat()
        self._write({"format": FORMAT, "version": VERSION, **header, "started": started, "wall_offset_ns": offset})

    def _write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.out.flush()

    def chunk(self, chunk: Chunk) -> None:
        self.chunks += 1
        self.bytes += len(chunk.data)
        self._write({"t_ns": chunk.mono_ns, "hex": chunk.data.hex()})

    def note(self, key: str, value: object, t_ns: int | None = None) -> None:
        """A record other than a chunk: gone, opened, mark."""
        self._write({"t_ns": time.monotonic_ns() if t_ns is None else t_ns, key: value})

    def end(self) -> None:
        self._write({"t_ns": time.monotonic_ns(), "end": True, "chunks": self.chunks, "bytes": self.bytes})


def read_capture(path: Path) -> Capture:
    """Read a capture file; ProfileError (with the line) when it is not one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ProfileError(path, None, f"cannot read the capture: {exc.strerror}") from None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ProfileError(path, f"line {number}", f"not JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise ProfileError(path, f"line {number}", "not a JSON object")
        records.append(record)
    if not records or records[0].get("format") != FORMAT:
        raise ProfileError(path, "line 1", f'not a {FORMAT} file (its first line has no "format": "{FORMAT}")')
    header = records.pop(0)
    if int(header.get("version", 0)) > VERSION:
        raise ProfileError(
            path, "version", f"capture format {header['version']} is newer than this dialdaq's {VERSION}"
        )
    for number, record in enumerate(records, 2):
        if "hex" in record:
            try:
                bytes.fromhex(record["hex"])
                int(record["t_ns"])
            except (KeyError, TypeError, ValueError):
                raise ProfileError(path, f"line {number}", 'a chunk needs "t_ns" (int) and "hex"') from None
    return Capture(header, records)


async def read_until(
    transport: Transport,
    done: asyncio.Event,
    on_chunk: Callable[[Chunk], None],
    on_gone: Callable[[str], None] | None = None,
    on_opened: Callable[[], None] | None = None,
) -> None:
    """Read the open `transport` into `on_chunk` until `done` is set.

    After an unplug: `on_gone(why)` is told, and with `on_opened` the device is opened again
    (retrying) and `on_opened()` told; without it, reading ends. Closes the transport at the end.
    """
    stop = asyncio.create_task(done.wait())
    try:
        while not done.is_set():
            read = asyncio.create_task(transport.read())
            finished, _ = await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
            if read not in finished:
                read.cancel()
                break
            try:
                chunks = read.result()
            except DeviceGone as exc:
                if on_gone is not None:
                    on_gone(str(exc))
                await transport.close()
                if on_opened is None or not await _reopen(transport, done):
                    return
                on_opened()
                continue
            for chunk in chunks:
                on_chunk(chunk)
    finally:
        stop.cancel()
        await transport.close()


async def _reopen(transport: Transport, done: asyncio.Event) -> bool:
    while not done.is_set():
        try:
            await transport.open()
            return True
        except DeviceUnavailable:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.25)
    return False


def deadline_event(seconds: float) -> asyncio.Event:
    """An event set `seconds` from now."""
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, done.set)
    return done
