"""Run one device: open it (retrying), read, decode, hand readings to its dials' pipelines.

A device may feed several dials (a ShuttleXpress's jog wheel and ring): readings are routed
by channel. A reading on a channel no dial is configured for is counted per device as
`unrouted` (in health; the first one of each channel is logged once). An unplug (`DeviceGone`)
closes the device and opens it again when it is back; the dial pipelines live on, so dial ids
and `seq` run on without a gap. The decoder is reset then (a cut line is not a sample); what it
held undecoded (the start of a line or frame) is discarded, counted and said (input.discarded).
After `ReaderDied` the reader process died but the port and its byte stream live on: the dead
process's last round may be missing (read, never sent: nothing can count it; its message, logged
and the device.disconnected event's, says so), so the stream has a possible gap. The decoder
decides what that cuts (`Decoder.reset(after_gap=True)`): a line decoder discards the next line
with the start it held, as one cut line, counted once (spliced or read as whole, it would be a
value the dial never sent); a frame decoder drops the start of a frame it held (counted here) and
hunts its next sync; counter and sequence baselines are kept (a sequence counts what the gap
lost). Whole reports and events (HID, input events, MIDI) read on as they are.

A device that has sent only garbage for GARBAGE_WARN_S (nothing decoded since the first bad
input) gets one warning line on the terminal, quoting its last input and what the profile
expects (`DeviceSetup.expects`); a reading re-arms it.

The common dial (a line framing with a pattern, one absolute channel, no buttons or sequence:
arduino-pot, teensy-fast, the benchmark's) takes a shortcut: a chunk that is one whole line whose
value is in range goes from `LineDecoder.quick` straight to its pipeline's `on_value`, without the
decoder's item list, a Reading or the routing; anything else (a cut line, several lines, garbage,
a banner, the first line after opening) goes through `feed` as before. The same sample, the same
counts (tests/test_station_parts.py, tests/test_decode_edges.py hold the two paths to that).

`DeviceSetup` is what the assembly (daq.station.assembly) builds for one device and what a
reader runs: transport, decoder, the pipelines its channels feed, and each dial's static meta.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daq.exceptions import DeviceGone, DeviceUnavailable
from daq.profiles.decode import Decoder
from daq.profiles.fields import Value
from daq.profiles.input_text import HEX_BYTES, printable_text, shown
from daq.profiles.losses import LossCounter, LossNotice
from daq.reading import ButtonEvent, Chunk, DeviceLoss, Discarded, Garbage, Reading
from daq.station.dial_pipeline import DialPipeline
from daq.transports.base import Transport
from daq.transports.reader_host import ReaderDied

log = logging.getLogger(__name__)

GARBAGE_WARN_S = 5.0
HELD_WHEN_GONE = "the start of a line or frame the device sent before it went away"
"""Why what a decoder held at an unplug is discarded (daq.diagnose.replay says the same of a capture)."""


@dataclass
class DeviceSetup:
    """One device: its transport and decoder, and the dial pipelines its channels feed."""

    transport: Transport
    decoder: Decoder
    routes: dict[str, DialPipeline] = field(default_factory=dict)  # channel -> pipeline
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # dial -> static part of its meta
    expects: str = ""  # what the profile expects, in words (daq.profiles.input_text.expectation)

    @property
    def pipelines(self) -> list[DialPipeline]:
        return list(self.routes.values())


# kind, dial id (or None), message, data
EventSink = Callable[[str, str | None, str, Mapping[str, object]], None]
# dial id, connected
ConnectionSink = Callable[[str, bool], None]


@dataclass(slots=True, eq=False)
class DeviceReader:
    transport: Transport
    decoder: Decoder
    routes: dict[str, DialPipeline]  # channel -> pipeline
    on_event: EventSink
    on_connection: ConnectionSink
    retry_s: tuple[float, float] = (0.25, 5.0)  # the first wait to reopen an unavailable device, the longest
    expects: str = ""  # what the profile expects, in words (the garbage warning quotes it)
    garbage: int = field(default=0, init=False)
    _garbage_reported: int = field(default=0, init=False)
    losses: LossCounter = field(default_factory=LossCounter, init=False)  # discarded lines, device-side loss
    _loss_timer: asyncio.TimerHandle | None = field(default=None, init=False)
    _unavailable_said: str = field(default="", init=False)
    _garbage_watch: bool = field(default=False, init=False)  # garbage came since the last reading: armed or said
    _garbage_timer: asyncio.TimerHandle | None = field(default=None, init=False)
    _garbage_since: int = field(default=0, init=False)
    _last_garbage: Garbage | None = field(default=None, init=False)
    _unrouted_said: set[str] = field(default_factory=set, init=False)  # channels whose first reading was logged
    # The common dial's shortcut: (the decoder's `quick`, the pipeline of its channel, the channel), or
    # None. Bound at construction: `decoder` and `routes` are not replaced afterwards (reset() keeps them).
    _quick: tuple[Callable[[bytes], Value | None], DialPipeline, str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        channel = getattr(self.decoder, "quick_channel", None)
        quick = getattr(self.decoder, "quick", None)
        pipeline = self.routes.get(channel) if channel is not None else None
        if quick is not None and pipeline is not None and channel is not None:
            self._quick = (quick, pipeline, channel)

    @property
    def dial_ids(self) -> list[str]:
        return sorted({p.dial for p in self.routes.values()})

    def _set_connected(self, connected: bool, why: str) -> None:
        for pipeline in {id(p): p for p in self.routes.values()}.values():
            pipeline.stats.connected = connected
            if connected:
                pipeline.stats.reconnects += 1
            self.on_connection(pipeline.dial, connected)
        kind = "device.connected" if connected else "device.disconnected"
        for dial in self.dial_ids:
            self.on_event(kind, dial, why, {"device": self.transport.describe})

    async def run(self) -> None:
        """Open, read, reopen after an unplug, until cancelled. Cancelled (the station stops), what the
        transport still hands over as it closes is decoded (daq.transports.inbox: `end`), and what
        the decoder then holds (a line's start) is discarded, counted and said."""
        try:
            await self._run()
        except asyncio.CancelledError:
            self._start_afresh("the start of a line or frame read as the station stopped")
            raise
        finally:
            self._decoded()

    async def _run(self) -> None:
        first, longest = self.retry_s
        delay = first
        while True:
            try:
                await self.transport.open()
            except DeviceUnavailable as exc:
                if str(exc) != self._unavailable_said:  # say it once, not every retry
                    self._unavailable_said = str(exc)
                    log.warning("%s: %s (retrying)", ",".join(self.dial_ids), exc)
                    for dial in self.dial_ids:
                        self.on_event("device.unavailable", dial, str(exc), {"device": self.transport.describe})
                await asyncio.sleep(delay)
                delay = min(longest, delay * 2)
                continue
            except BaseException:  # a kept stream (after ReaderDied) may end here: the next open starts afresh
                self._start_afresh("the start of a line or frame read before the reader process died")
                raise
            delay = first
            self._unavailable_said = ""
            self._set_connected(True, f"opened {self.transport.describe}")
            try:
                await self._read_until_gone()
            except ReaderDied as exc:  # the port and its stream live on, but its last round may be missing
                log.warning("%s: %s", ",".join(self.dial_ids), exc)  # it says what may be lost uncounted
                self._set_connected(False, str(exc))
                self._start_afresh("the start of a line or frame read before the reader process died", gap=True)
            except DeviceGone as exc:
                log.warning("%s: %s", ",".join(self.dial_ids), exc)
                self._set_connected(False, str(exc))
                self._start_afresh(HELD_WHEN_GONE)
            except Exception as exc:  # a bug below us: the supervisor restarts this reader; say so first
                self._set_connected(False, f"{type(exc).__name__}: {exc}")
                self._start_afresh("the start of a line or frame read before the reader failed")
                raise
            finally:
                await self.transport.close()

    def _start_afresh(self, what: str, *, gap: bool = False) -> None:
        """Reset the decoder; what it dropped undecoded (a cut line, a partial frame) is discarded,
        counted and said as `what`. `gap`: the stream goes on after a gap (a reader process died
        with a round unsent, ReaderDied): the decoder decides what that cuts (Decoder.reset)."""
        data = self.decoder.reset(after_gap=gap)
        if data:
            self._count_loss(self.losses.count(Discarded(what, data, time.monotonic_ns())))

    async def _read_until_gone(self) -> None:
        deliver = getattr(self.transport, "deliver_to", None)
        if deliver is not None:  # it calls _take as chunks arrive (daq.transports.inbox): no wake-up per read
            await deliver(self._take)
            return
        read, take = self.transport.read, self._take
        while True:
            take(await read())

    def _take(self, chunks: list[Chunk]) -> None:
        quick = self._quick
        for chunk in chunks:
            if quick is not None:  # one whole line, one in-range value: straight to its dial's pipeline
                try:
                    raw = quick[0](chunk.data)
                except Exception as exc:  # a bug in the shortcut: said once, and the full path from now on
                    self._quick_failed(exc)
                    quick = None
                    self._feed(chunk)
                    continue
                if raw is not None:
                    if self._garbage_watch:
                        self._decoded()
                    quick[1].on_value(raw, chunk.mono_ns, quick[2])
                    continue
            self._feed(chunk)
        self._flush_losses()

    def _quick_failed(self, exc: Exception) -> None:
        self._quick = None
        log.error(
            "%s: the line shortcut failed (%s: %s); %s's chunks take the decoder's full path from now on",
            ",".join(self.dial_ids),
            type(exc).__name__,
            exc,
            self.transport.describe,
        )

    def _feed(self, chunk: Chunk) -> None:
        """One chunk through the decoder: readings to their pipelines, the rest counted."""
        routes = self.routes
        for item in self.decoder.feed(chunk):
            if isinstance(item, Reading):
                if self._garbage_watch:
                    self._decoded()
                pipeline = routes.get(item.channel)
                if pipeline is not None:
                    pipeline.on_reading(item)
                else:
                    self._unrouted(item)
            elif isinstance(item, Garbage):
                self._count_garbage(item)
            elif isinstance(item, ButtonEvent):
                if self._garbage_watch:
                    self._decoded()
                self._button(item)
            elif isinstance(item, Discarded | DeviceLoss):
                self._count_loss(self.losses.count(item))

    def _unrouted(self, item: Reading) -> None:
        """A reading on a channel no dial is configured for: counted (health's `unrouted`), the first logged."""
        for pipeline in self.routes.values():
            pipeline.stats.extra["unrouted"] = pipeline.stats.extra.get("unrouted", 0) + 1
            break
        if item.channel not in self._unrouted_said:
            self._unrouted_said.add(item.channel)
            log.info(
                "%s: readings on channel %r of %s go to no dial (none is configured for it): counted as unrouted",
                ",".join(self.dial_ids),
                item.channel,
                self.transport.describe,
            )

    def _flush_losses(self) -> None:
        """Announce device-side loss held back by the throttle; a timer makes sure it is said
        even when the device sends nothing more."""
        if not self.losses.jumps_unsaid:  # nothing held back (after nearly every read)
            return
        if (held := self.losses.flush()) is not None:
            self._count_loss(held)
        elif self._loss_timer is None and (wait := self.losses.held_for()) is not None:
            self._loss_timer = asyncio.get_running_loop().call_later(wait + 0.01, self._loss_timer_fired)

    def _loss_timer_fired(self) -> None:
        self._loss_timer = None
        self._flush_losses()

    def _count_loss(self, notice: LossNotice) -> None:
        """Input lost before it became a reading: counted in health, announced on events."""
        for pipeline in self.routes.values():
            pipeline.stats.extra[notice.key] = pipeline.stats.extra.get(notice.key, 0) + notice.amount
            break
        if notice.kind is not None:
            dials = self.dial_ids
            data = {**notice.data, "device": self.transport.describe}
            self.on_event(notice.kind, dials[0] if len(dials) == 1 else None, notice.message, data)

    def _decoded(self) -> None:
        """Something decoded: the garbage warning is called off, and armed again by the next garbage."""
        self._garbage_watch = False
        if self._garbage_timer is not None:
            self._garbage_timer.cancel()
            self._garbage_timer = None

    def _warn_garbage(self) -> None:
        """GARBAGE_WARN_S of garbage and nothing else: one line on the terminal, quoting the input."""
        self._garbage_timer = None
        item = self._last_garbage
        if item is None:
            return
        count = self.garbage - self._garbage_since
        expects = f"; the profile expects {self.expects}" if self.expects else ""
        log.warning(
            "%s: nothing decoded for %.0f s, only garbage from %s (%d inputs): last %s (%s)%s",
            ",".join(self.dial_ids),
            GARBAGE_WARN_S,
            self.transport.describe,
            count,
            shown(item.data),
            item.reason,
            expects,
        )

    def _count_garbage(self, item: Garbage) -> None:
        if item.continues:
            return  # more of a run counted already: one count per undecodable run, not per read
        self.garbage += 1
        self._last_garbage = item
        if not self._garbage_watch:
            self._garbage_watch = True
            self._garbage_since = self.garbage - 1
            self._garbage_timer = asyncio.get_running_loop().call_later(GARBAGE_WARN_S, self._warn_garbage)
        for pipeline in self.routes.values():
            pipeline.stats.garbage += 1
            break
        # Report the first one at once, then at most one event per 100 so noise cannot flood the broker.
        if self.garbage == 1 or self.garbage - self._garbage_reported >= 100:
            self._garbage_reported = self.garbage
            dials = self.dial_ids
            self.on_event(
                "garbage",
                dials[0] if len(dials) == 1 else None,
                f"{item.reason} ({self.garbage} so far from {self.transport.describe})",
                {
                    "count": self.garbage,
                    "sample_hex": item.data[:HEX_BYTES].hex(" "),
                    "sample_text": printable_text(item.data),
                    "device": self.transport.describe,
                },
            )

    def _button(self, item: ButtonEvent) -> None:
        dials = self.dial_ids
        for pipeline in self.routes.values():
            pipeline.stats.buttons += 1
            break
        self.on_event(
            "button",
            dials[0] if len(dials) == 1 else None,
            f"{item.button} {'pressed' if item.pressed else 'released'}",
            {"button": item.button, "pressed": item.pressed, "mono_ns": item.mono_ns},
        )
