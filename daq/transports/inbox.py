"""What a device's reader (the reader process's host, a serial poller thread, a HID dial's hidapi
thread, an input device's poller thread, rtmidi's callback) hands the event loop: the chunks read,
in order, and the end of the device (DeviceGone) behind them. Every transport that reads in a
thread or another process uses it: serial ports, HID dials, input (evdev) and MIDI devices.

Two ways to take them, both in the event loop:

- `read()`: every chunk waiting (waiting for one), then DeviceGone once all the chunks read before
  the end were taken; the task awaiting it is woken once per delivery.
- `deliver_to(sink)`: every chunk is handed to `sink` at once, by the callback that received it
  (one call per chunk, in order), until the port ends: then it raises the DeviceGone, after every
  chunk read before it went to `sink`. No task is woken per delivery: with 64 ports written in the
  same tick, one callback of the loop decodes all 64 chunks instead of waking 64 tasks (each wake
  an asyncio.Queue get and put, a task step, a future). An exception of `sink` ends it with that
  exception; the chunks not handed over then stay here, for `unread()` to count.

`close(gone)` ends it (a `read()` or `deliver_to()` still waiting raises `gone`); what is left is
`unread()`; `end(describe)` is a transport's close: both, the count logged and returned. After a
cancelled `deliver_to()` (a station stopping) `end` first hands what came meanwhile to its sink. `raised`
is the end a taker was told of (the transport parks its port after ReaderDied).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NoReturn

from daq.exceptions import DeviceGone
from daq.reading import Chunk

Sink = Callable[[list[Chunk]], None]

log = logging.getLogger(__name__)


class Inbox:
    """Made in the event loop; `put` there (the poller thread hops in with call_soon_threadsafe)."""

    __slots__ = ("_chunks", "_done", "_failure", "_final_sink", "_gone", "_loop", "_sink", "_waiter", "raised")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._chunks: list[Chunk] = []
        self._gone: DeviceGone | None = None
        self._waiter: asyncio.Future[None] | None = None  # a read() waiting
        self._sink: Sink | None = None
        self._done: asyncio.Future[None] | None = None  # a deliver_to() running
        self._failure: Exception | None = None  # what its sink raised
        self._final_sink: Sink | None = None  # a cancelled deliver_to()'s sink: `end` hands it what is left
        self.raised: DeviceGone | None = None  # the end read() or deliver_to() raised

    def put(self, item: Chunk | DeviceGone) -> None:
        """A chunk read, or the end of the port (the first end counts; a chunk after it is kept, unread)."""
        if isinstance(item, DeviceGone):
            if self._gone is None:
                self._gone = item
                self._wake()
            return
        sink = self._sink
        if sink is None or self._gone is not None:
            self._chunks.append(item)
            self._wake()
            return
        try:
            sink([item])
        except Exception as exc:  # a bug below the reader: deliver_to() raises it, in its task
            self._sink = None
            self._failure = exc
            self._wake()

    def _wake(self) -> None:
        for future in (self._waiter, self._done):
            if future is not None and not future.done():
                future.set_result(None)

    async def read(self) -> list[Chunk]:
        """The chunks waiting (waiting for one); DeviceGone after the last."""
        while not self._chunks:
            if self._gone is not None:
                self._raise_gone()
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        chunks, self._chunks = self._chunks, []
        return chunks

    async def deliver_to(self, sink: Sink) -> NoReturn:
        """Hand every chunk to `sink` as it arrives until the port ends; raise its DeviceGone then
        (or what `sink` raised). Cancelled, it hands nothing more over until `end`, which hands
        `sink` what came meanwhile."""
        if self._sink is not None or self._done is not None:
            raise RuntimeError("chunks are delivered to one sink at a time")
        if self._chunks and self._failure is None:
            chunks, self._chunks = self._chunks, []
            sink(chunks)  # what came before: at once, in this task (an exception ends this here)
        done = self._done = self._loop.create_future()
        if self._gone is None and self._failure is None:
            self._sink = sink
        else:
            done.set_result(None)
        try:
            await done
        except asyncio.CancelledError:  # the station stops: what the reader still hands over is its too
            self._final_sink = sink
            raise
        finally:
            self._sink = self._done = None
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        self._raise_gone()

    def _raise_gone(self) -> NoReturn:
        gone = self.raised = self._gone
        assert gone is not None
        raise type(gone)(str(gone))  # a new one each time; ReaderDied stays ReaderDied

    def close(self, gone: DeviceGone) -> None:
        """The port is closed: a `read()` or `deliver_to()` waiting raises `gone` (unless it ended before)."""
        self.put(gone)

    def end(self, describe: str, unit: str = "chunks") -> int:
        """A transport's close(), once its reader stopped: what was read and never taken is counted and
        logged (as `unit`: "chunks", "reports", "messages"), then the inbox is closed with DeviceGone
        '<describe>: closed' (waking a `read()` still waiting). Returns the count, for the transport's
        `read_at_close`: every reading counts, none is dropped unsaid.

        After a `deliver_to` was cancelled (a station stopping), what came meanwhile (the reader
        process's last rounds, sent as it let go of the port; a thread's last reads) goes to its sink
        first: decoded into samples, not counted as lost."""
        sink, self._final_sink = self._final_sink, None
        if sink is not None:
            taken = 0
            try:
                for chunk in self._chunks:
                    sink([chunk])
                    taken += 1
            except Exception:  # a bug below the reader: this one and the rest are counted below, as unread
                log.exception("%s: handing over the last %s at close failed", describe, unit)
            del self._chunks[:taken]
        chunks, size = self.unread()
        if chunks:
            log.warning("%s: closed with %d %s (%d bytes) read but not decoded", describe, chunks, unit, size)
        self.close(DeviceGone(f"{describe}: closed"))
        return chunks

    @property
    def waiting_bytes(self) -> int:
        """Bytes read from the port and not taken yet (by `read()`; `deliver_to` takes each at once)."""
        return sum(len(c.data) for c in self._chunks)

    def unread(self) -> tuple[int, int]:
        """The chunks left (read, never taken) and their bytes; they are dropped."""
        chunks, self._chunks = self._chunks, []
        return len(chunks), sum(len(c.data) for c in chunks)


def taking_from(inbox: Inbox | None, last: Inbox | None, describe: str) -> Inbox:
    """A transport's inbox for `read()` / `deliver_to()`: the open one; once closed, the end the last
    one raised is raised again (ReaderDied stays ReaderDied: the station then reopens a parked
    port), else RuntimeError('<describe> is not open')."""
    if inbox is not None:
        return inbox
    gone = last.raised if last is not None else None
    if gone is not None:
        raise type(gone)(str(gone))
    raise RuntimeError(f"{describe} is not open")
