"""MIDI controllers (knob boxes, fader banks) through mido and python-rtmidi: the `midi` extra.

A MIDI input port delivers whole messages; rtmidi calls back from its own input thread for
each one, and the callback stamps time.monotonic_ns() first thing and hands the message's
bytes to the loop with call_soon_threadsafe (one chunk a message), into the port's Inbox
(daq.transports.inbox), taken with `read()` or `deliver_to(sink)`. rtmidi says nothing when
a port disappears, so while a port is open a watcher checks every `poll_s` that it is
still listed (enumerating in a worker thread, under one lock) and turns its absence into
DeviceGone, after the messages received before; the next open() looks for the port again
(ALSA may give it another number). Messages received but not handed over at `close()` are
counted in `read_at_close` and logged.

Which port: the station's `port`, a part of the port's name ('nanoKONTROL2'), else the
profile's [match] product strings. A name that equals a port's whole name wins.

Read times are the callback's (`stamp` "read" in the dial's `meta`), not the backend's: mido's
rtmidi backend drops the one time rtmidi gives (its callback's `msg_data[1]` is never passed on),
and that time is a delta to the previous message, not a clock reading: absolute times would be
the first message's read time plus a running sum of deltas, which carries that first stamp's
error into every later one and drifts with the backend's clock (ALSA sequencer or CoreMIDI
host time) against CLOCK_MONOTONIC for as long as the port stays open. The stamp taken first
thing in rtmidi's own input thread, before any of our code, waits only for the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Collection
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

from daq.exceptions import DeviceGone, DeviceUnavailable, FatalError, MissingExtraError
from daq.reading import Chunk
from daq.transports.attachment import Attachment
from daq.transports.inbox import Inbox, Sink, taking_from

if TYPE_CHECKING:
    from daq.profiles.model import Profile

log = logging.getLogger(__name__)

POLL_S = 1.0
MIDI_LOCK = threading.Lock()  # one enumerate or open at a time: backends keep global state


def import_mido(needed_by: str) -> ModuleType:
    """mido with its rtmidi backend, or MissingExtraError naming the extra."""
    for library in ("mido", "rtmidi"):
        try:
            module = importlib.import_module(library)
        except ImportError:
            raise MissingExtraError("python-rtmidi" if library == "rtmidi" else library, "midi", needed_by) from None
        if library == "mido":
            mido = module
    return mido


def input_names(mido: ModuleType) -> list[str]:
    """The MIDI input ports present. Raises DeviceUnavailable when there is no MIDI system."""
    try:
        with MIDI_LOCK:
            return [str(n) for n in mido.get_input_names()]
    except Exception as exc:  # rtmidi raises SystemError/RuntimeError without an ALSA sequencer
        raise DeviceUnavailable(
            f"cannot list MIDI ports: {exc} (is the ALSA sequencer available: /dev/snd/seq?)"
        ) from exc


def pick_port(names: list[str], wanted: Collection[str]) -> str:
    """The one port whose name contains one of `wanted` (case-insensitive); an exact name wins."""
    exact = [n for n in names if n in wanted]
    if len(exact) == 1:
        return exact[0]
    folded = [w.casefold() for w in wanted]
    hits = [n for n in names if any(w in n.casefold() for w in folded)]
    shown = " or ".join(repr(w) for w in wanted)
    if len(hits) == 1:
        return hits[0]
    if not hits:
        listed = "; ".join(repr(n) for n in names) or "none"
        raise DeviceUnavailable(
            f"no MIDI input port named like {shown}: is the controller plugged in? Present: {listed}. "
            "`daq devices` lists them"
        )
    listed = "; ".join(repr(n) for n in hits)
    raise DeviceUnavailable(
        f"{len(hits)} MIDI input ports match {shown}: set `port` to the whole name of one ({listed})"
    )


class MidiTransport:
    """A MIDI controller's input port. Reusable: after close() (or DeviceGone) open() finds it again."""

    def __init__(
        self,
        attachment: Attachment,
        *,
        products: Collection[str] = (),
        needed_by: str = "a MIDI profile",
        poll_s: float | None = None,
    ) -> None:
        self.attachment = attachment
        self._mido = import_mido(needed_by)
        self._wanted: tuple[str, ...] = (attachment.port,) if attachment.port else tuple(products)
        if not self._wanted:
            raise FatalError(
                f"{needed_by} has no [match] product names, so the dial needs `port` = a part of the MIDI "
                "port's name (`daq devices` lists the ports)"
            )
        self._poll_s = POLL_S if poll_s is None else poll_s
        self._port: Any = None
        self._inbox: Inbox | None = None  # where the callback puts the messages, while open
        self._watcher: asyncio.Task[None] | None = None
        self.read_at_close = 0  # messages received but not handed over when it was closed
        self.name: str | None = None

    stamp = "read"  # the callback's time (see the module's docstring), as the dial's `meta` says

    @property
    def describe(self) -> str:
        return "midi:" + ",".join(self._wanted)

    async def open(self) -> None:
        """Find the port and open it with a callback. Raises DeviceUnavailable."""
        if self._port is not None:
            raise RuntimeError(f"{self.describe} is open already")
        names = await asyncio.to_thread(input_names, self._mido)
        name = pick_port(names, self._wanted)
        inbox = Inbox()
        to_loop, put = asyncio.get_running_loop().call_soon_threadsafe, inbox.put

        def on_message(message: Any) -> None:  # in rtmidi's thread
            mono_ns = time.monotonic_ns()
            with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody is left to read
                to_loop(put, Chunk(bytes(message.bytes()), mono_ns))

        self._port = await asyncio.to_thread(self._open_port, name, on_message)
        self._inbox, self.name = inbox, name
        self._watcher = asyncio.create_task(self._watch(name, inbox), name=f"watch {self.describe}")
        log.info("opened %s: port %r", self.describe, name)

    def _open_port(self, name: str, callback: Any) -> Any:
        try:
            with MIDI_LOCK:
                return self._mido.open_input(name, callback=callback)
        except Exception as exc:  # rtmidi: OSError/SystemError; mido: IOError for an unknown name
            raise DeviceUnavailable(f"cannot open MIDI port {name!r}: {exc}") from exc

    async def _watch(self, name: str, inbox: Inbox) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                names = await asyncio.to_thread(input_names, self._mido)
            except DeviceUnavailable as exc:
                inbox.put(DeviceGone(f"{self.describe}: {exc}"))
                return
            if name not in names:
                inbox.put(DeviceGone(f"{self.describe}: port {name!r} disappeared (unplugged?)"))
                return

    async def read(self) -> list[Chunk]:
        """The messages received since the last call (waiting for one); DeviceGone after the last."""
        return await self._open_inbox().read()

    async def deliver_to(self, sink: Sink) -> NoReturn:
        """Hand every message (one Chunk each) to `sink` as it arrives, from the event loop's callback
        that received it (daq.transports.inbox), until the port is gone: then raise DeviceGone, as
        `read()` would."""
        await self._open_inbox().deliver_to(sink)

    def _open_inbox(self) -> Inbox:
        return taking_from(self._inbox, None, self.describe)

    async def close(self) -> None:
        """Stop watching, close the port (rtmidi stops calling back). Idempotent."""
        port, watcher, inbox = self._port, self._watcher, self._inbox
        self._port = self._watcher = self._inbox = None
        try:
            if watcher is not None:
                watcher.cancel()
                await asyncio.wait({watcher})  # not `await watcher`: its CancelledError is not ours
            if port is not None:
                await asyncio.to_thread(_close_port, port)
        finally:
            if inbox is not None:
                self.read_at_close += inbox.end(self.describe, "messages")  # counts what is left, wakes a read()


def _close_port(port: Any) -> None:
    try:
        with MIDI_LOCK:
            port.close()
    except Exception as exc:  # a port whose device is gone may fail to close; it is released anyway
        log.debug("closing MIDI port: %s", exc)


def open_midi(profile: Profile, attachment: Attachment) -> MidiTransport:
    """The MIDI transport of `profile` (its registry entry's `open`, daq.transports.registry)."""
    return MidiTransport(attachment, products=profile.match.product, needed_by=f"profile {profile.id}")
