"""Follow mpv over its JSON IPC socket (`mpv --input-ipc-server=PATH`).

mpv sends `property-change` messages for what we observe (time-pos, pause, speed, seeking,
eof-reached, idle-active) and `seek` / `playback-restart` events. Positions carry no timestamp, so
each message is stamped (monotonic) as it arrives and the position between messages is modelled from
the speed (see `daq.mediaclock.follow`).

How mpv's messages become segments:

- playing, a time-pos within half a frame of the model: nothing (plain progress);
- paused, or a seek under way: frozen at the last reported time-pos, the frame on screen;
- unpaused, or the seek done: the clock runs from the first *new* time-pos, stamped on arrival
  (mpv shows that frame then); if none comes within HOLD_NS it runs from the moment mpv said so;
- speed changed: a new segment at the modelled position;
- eof, idle or no file: "stopped"; the socket closed or absent: "lost". Samples then carry null
  media fields, never stale ones. The clock reconnects every RETRY_S while the socket is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path

import orjson

from daq.mediaclock.base import MAX_MEDIA_S, MAX_SPEED, ClockChange, OnChange
from daq.mediaclock.follow import FollowedClock, seconds_to_ns
from daq.timecode import FrameRate

log = logging.getLogger(__name__)

OBSERVED = ("time-pos", "pause", "speed", "seeking", "eof-reached", "idle-active")
RETRY_S = 0.5
HOLD_NS = 250_000_000  # longest wait for the first frame after a resume or a seek
_LINE_LIMIT = 1 << 20


def observe_commands() -> bytes:
    """The requests that make mpv report every observed property now and on each change."""
    return b"".join(
        orjson.dumps({"command": ["observe_property", i, name]}) + b"\n" for i, name in enumerate(OBSERVED, 1)
    )


class MpvClock(FollowedClock):
    kind = "mpv"
    source = "mpv"

    def __init__(self, rate: FrameRate, socket_path: str | Path, start_mono_ns: int = 0) -> None:
        super().__init__(rate, start_mono_ns)
        self.socket_path = Path(socket_path)
        self._reset()

    def _reset(self) -> None:
        self._props: dict[str, object] = {}  # latest value of each observed property; None = unavailable
        self._pos_ns: int | None = None  # last reported time-pos
        self._pos_mono = 0  # when it arrived
        self._fresh_pos = False  # a time-pos arrived that no settle has used yet
        self._seek_active = False  # between a `seek` event and `playback-restart`
        self._seek_from: int | None = None  # where a seek not yet announced started
        self._end_reason: str | None = None  # of the last end-file event
        self._want_since: int | None = None  # mpv plays, but has shown no new frame yet
        self._quiet_since: int | None = None  # the paused position moved without a seek (frame-step)

    # -- the model: fed one message at a time, with its arrival time -----------------------

    @property
    def ready(self) -> bool:
        """mpv has reported every observed property at least once since we connected."""
        return len(self._props) == len(OBSERVED)

    @property
    def deadline(self) -> int | None:
        """The monotonic time at which `tick` has something to decide, if any."""
        waits = [t + HOLD_NS for t in (self._want_since, self._quiet_since) if t is not None]
        return min(waits) if waits else None

    def connected(self) -> None:
        self._reset()

    def disconnected(self, mono_ns: int, reason: str = "the mpv socket closed") -> list[ClockChange]:
        self._reset()
        change = self.follow(mono_ns, "lost")
        if change is None:
            return []
        return [ClockChange(change.kind, f"lost mpv ({reason}): no media position", change.data)]

    def feed(self, msg: Mapping[str, object], mono_ns: int) -> list[ClockChange]:
        """Apply one message from mpv that arrived at `mono_ns`; return what to announce."""
        event = msg.get("event")
        if event == "property-change":
            name = msg.get("name")
            if name not in OBSERVED:
                return []
            data = msg.get("data")
            if name == "time-pos":
                if isinstance(data, int | float) and not isinstance(data, bool):
                    if not math.isfinite(data) or abs(data) > MAX_MEDIA_S:
                        log.warning("mpv reported time-pos %r, out of range: ignored", data)
                        return []
                    self._pos_ns = seconds_to_ns(data)
                    self._pos_mono = mono_ns
                    self._fresh_pos = True
                else:
                    self._pos_ns = None
            elif name == "seeking" and data is False and self._props.get("seeking") is True:
                self._seek_active = False
            self._props[str(name)] = data
        elif event == "seek":
            if self._seek_from is None:
                self._seek_from = self.media_ns_at(mono_ns)
            self._seek_active = True
        elif event == "playback-restart":
            self._seek_active = False
        elif event == "end-file":
            reason = msg.get("reason")
            self._end_reason = reason if isinstance(reason, str) else None
        elif event == "start-file":
            self._end_reason = None
            self._seek_active = False
        else:
            return []
        return self._settle(mono_ns)

    def tick(self, mono_ns: int) -> list[ClockChange]:
        """Decide what waited for a deadline: a resume with no new frame, a quiet paused move."""
        out: list[ClockChange] = []
        if self._want_since is not None and mono_ns >= self._want_since + HOLD_NS:
            # No frame came: take mpv's word that it has been playing since it said so.
            out.append(self._run_from(self._want_since))
        if self._quiet_since is not None and mono_ns >= self._quiet_since + HOLD_NS:
            self._quiet_since = None
            out.append(self._change("clock.seek", f"moved while paused to {self._pos_s()}"))
        return out

    def _pos_s(self) -> str:
        return f"{self._pos_ns / 1e9:.3f} s" if self._pos_ns is not None else "no position"

    def _run_from(self, mono_ns: int) -> ClockChange:
        """Start running from the last reported position at `mono_ns`; announce why."""
        before = self.current()
        self._add(mono_ns, "running", self._pos_ns or 0, self._speed(before.speed))
        self._want_since = self._quiet_since = None
        if self._seek_from is not None and before.state == "paused":
            from_s = self._seek_from / 1e9
            self._seek_from = None
            return self._change("clock.seek", f"sought to {self._pos_s()}, playing", from_s=from_s)
        self._seek_from = None
        return self._transition(before)

    def _speed(self, default: float) -> float:
        speed = self._props.get("speed")
        if isinstance(speed, int | float) and not isinstance(speed, bool) and 0 < speed <= MAX_SPEED:
            return float(speed)
        return default

    def _settle(self, mono_ns: int) -> list[ClockChange]:
        if not self.ready:
            return []
        fresh, self._fresh_pos = self._fresh_pos, False
        props = self._props
        last = self.current()
        speed = self._speed(last.speed)
        eof = props["eof-reached"] is True or self._end_reason == "eof"
        if eof or props["idle-active"] is True or self._pos_ns is None:
            self._want_since = self._quiet_since = self._seek_from = None
            change = self.follow(mono_ns, "stopped")
            if change is None:
                return []
            if eof and last.state != "lost":
                return [ClockChange("clock.eof", "mpv reached the end of the file: no media position", change.data)]
            return [change]
        pos = self._pos_ns
        seeking = props["seeking"] is True or self._seek_active
        if props["pause"] is True or seeking:
            return self._frozen(mono_ns, pos, speed, fresh, seeking)
        # mpv is playing.
        self._quiet_since = None
        if last.state == "running":
            if speed != last.speed:
                media = self.media_ns_at(mono_ns)
                self._add(mono_ns, "running", media if media is not None else pos, speed)
                return [self._transition(last)]
            if fresh:
                change = self.follow(self._pos_mono, "running", pos, speed)
                return [change] if change is not None else []
            return []
        if fresh:
            return [self._run_from(self._pos_mono)]
        if self._want_since is None:
            self._want_since = mono_ns  # wait for the first new frame (or HOLD_NS)
        return []

    def _frozen(self, mono_ns: int, pos: int, speed: float, fresh: bool, seeking: bool) -> list[ClockChange]:
        """Paused, or a seek under way: the clock holds the frame on screen."""
        self._want_since = None
        last = self.current()
        out: list[ClockChange] = []
        if last.state != "paused" or last.media_ns != pos:
            model = self.media_ns_at(mono_ns)
            self._add(self._pos_mono if fresh else mono_ns, "paused", pos, speed)
            if last.state == "running":
                if not seeking:
                    out.append(self._transition(last))  # clock.pause
                elif self._seek_from is None:
                    self._seek_from = model  # a seek without a `seek` event
            elif last.state in ("lost", "stopped"):
                self._seek_from = None
                out.append(self._transition(last))
            elif not seeking and self._seek_from is None:
                self._quiet_since = mono_ns  # frame-step, or the first frame of a resume on its way
        if not seeking and self._seek_from is not None:
            from_s = self._seek_from / 1e9
            self._seek_from = self._quiet_since = None
            out.append(self._change("clock.seek", f"sought to {self._pos_s()}, paused", from_s=from_s))
        return out

    # -- the connection ---------------------------------------------------------------------

    async def run(self, on_change: OnChange) -> None:
        """Follow mpv until cancelled: connect, observe, model; reconnect while the socket is absent."""
        absent_logged = False
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.socket_path), limit=_LINE_LIMIT)
            except OSError as exc:
                if not absent_logged:
                    log.info("mpv socket %s: %s; retrying every %.1f s", self.socket_path, exc, RETRY_S)
                    absent_logged = True
                await asyncio.sleep(RETRY_S)
                continue
            absent_logged = False
            log.info("connected to mpv at %s", self.socket_path)
            reason = "mpv closed the socket"
            try:
                await self._follow(reader, writer, on_change)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            for change in self.disconnected(time.monotonic_ns(), reason):
                on_change(change.kind, change.message, change.data)
            await asyncio.sleep(RETRY_S)

    async def _follow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, on_change: OnChange) -> None:
        self.connected()
        writer.write(observe_commands())
        await writer.drain()
        while True:
            deadline = self.deadline
            timeout = None if deadline is None else max(0.0, (deadline - time.monotonic_ns()) / 1e9)
            try:
                line = await asyncio.wait_for(reader.readline(), timeout)
            except TimeoutError:
                changes = self.tick(time.monotonic_ns())
            else:
                mono_ns = time.monotonic_ns()
                if not line:
                    return
                try:
                    msg = orjson.loads(line)
                except orjson.JSONDecodeError:
                    log.warning("mpv sent a line that is not JSON: %r", line[:200])
                    continue
                changes = self.feed(msg, mono_ns) if isinstance(msg, dict) else []
            for change in changes:
                on_change(change.kind, change.message, change.data)
