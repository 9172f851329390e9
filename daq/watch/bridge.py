"""The watch bridge: one MQTT subscriber that keeps what a live display needs.

It reads only the topics in CONTRACT.md, as any subscriber may. Per station it keeps the
retained status, session and dial metas, the last `window_s` seconds (by read time) of every
dial's samples decimated into media-time bins of `bin_s` seconds (a display point is the mean
of the samples that fell into one bin), the group mean and standard deviation across dials at
each bin, and recent events with the media position they refer to.

A trace breaks (the point carries `brk`) where the data does not join up: a `seq` jump (lost
samples), a new `boot`, the dial disconnected in between, the station went offline, samples
without a media clock, or the media position jumped (a seek). Duplicates are dropped by
(`boot`, `dial`, `seq`).

Changes are collected and taken as one JSON-able update (`take_update`), which the server
pushes to every page about every 100 ms; `snapshot` is the whole state for a page that just
connected. Both use the same wire form, so a page applies them the same way:

- a dial's points: `{"first": F, "from": K, "points": [[media_s, value, brk], ...]}` — drop
  points before absolute index F, cut the list at index K, append `points`;
- the mean: `{"set": [[bin, media_s, mean, sd, n], ...], "del": [bin, ...]}`;
- events: a list of `{"id", "kind", "dial", "message", "label", "t_ns", "media_s"}`, ids rising.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson

from daq.config import BrokerConfig
from daq.mqtt_client import make_client, refusal
from daq.publisher import Backoff
from daq.timecode import FrameRate, TimecodeError
from daq.topics import parse_topic, subscriber_filters

log = logging.getLogger(__name__)

Json = dict[str, Any]

BIN_S = 0.25
"""Width of a display bin in media seconds."""
WINDOW_S = 600.0
"""How much to keep, by read time: the last ten minutes."""
PUSH_EVERY_S = 0.1
HEARTBEAT_S = 1.0
MAX_EVENTS = 500
SEEK_SLACK_S = 1.0
"""A media position that moved more than this beyond what the read times allow is a seek."""
EVENT_KINDS_WITH_POSITION = ("mark", "clock.pause", "clock.resume", "clock.seek")


@dataclass(slots=True)
class Point:
    """One display point of one dial: the mean of its samples in one media-time bin."""

    bin: int
    x: float
    y: float
    n: int
    brk: bool
    t_ns: int

    def wire(self) -> list[Any]:
        return [round(self.x, 3), round(self.y, 4), 1 if self.brk else 0]


@dataclass(slots=True)
class Gap:
    boot: str
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class DialTrace:
    """One dial's decimated trace, in arrival order, with absolute point indices."""

    def __init__(self, bin_s: float = BIN_S) -> None:
        self.bin_s = bin_s
        self.points: deque[Point] = deque()
        self.first = 0  # absolute index of points[0]
        self.dirty_from: int | None = None
        self.boot: str | None = None
        self.last_seq = -1
        self.last_media_s: float | None = None
        self.last_t_ns: int | None = None
        self.last_value: float | None = None
        self.pending_break = False
        self.gaps: list[Gap] = []
        self.samples = 0
        self.duplicates = 0

    @property
    def end(self) -> int:
        """Absolute index one past the last point."""
        return self.first + len(self.points)

    @property
    def missing(self) -> int:
        return sum(g.count for g in self.gaps)

    def bin_of(self, media_s: float) -> int:
        return math.floor(media_s / self.bin_s + 1e-9)

    def mark_break(self) -> None:
        """The next point starts a new stretch (the dial was disconnected, the station went away)."""
        self.pending_break = True

    def _touch(self, index: int) -> None:
        if self.dirty_from is None or index < self.dirty_from:
            self.dirty_from = index

    def add(self, boot: str, seq: int, t_ns: int, media_s: float | None, value: float) -> Point | None:
        """Take one sample; the point it went into (None: a duplicate, or no media position)."""
        brk = self.pending_break
        if boot != self.boot:
            if self.boot is not None:
                brk = True
            self.boot = boot
            self.last_seq = seq - 1
        if seq <= self.last_seq:
            self.duplicates += 1
            return None
        if seq > self.last_seq + 1:
            self.gaps.append(Gap(boot, self.last_seq + 1, seq - 1))
            brk = True
        self.last_seq = seq
        self.samples += 1
        self.last_value = value
        if media_s is None or not math.isfinite(media_s):
            self.pending_break = True  # nothing to place on the media axis; the trace resumes apart
            self.last_media_s = None
            self.last_t_ns = t_ns
            return None
        self.pending_break = False
        if not brk and self.last_media_s is not None and self.last_t_ns is not None:
            moved = media_s - self.last_media_s
            allowed = max(0.0, (t_ns - self.last_t_ns) / 1e9) * 4.0 + SEEK_SLACK_S
            if moved < -self.bin_s or moved > allowed:
                brk = True
        self.last_media_s = media_s
        self.last_t_ns = t_ns
        b = self.bin_of(media_s)
        last = self.points[-1] if self.points else None
        if last is not None and not brk and last.bin == b:
            last.n += 1
            last.y += (value - last.y) / last.n
            last.t_ns = t_ns
            self._touch(self.end - 1)
            return last
        point = Point(b, (b + 0.5) * self.bin_s, value, 1, brk and last is not None, t_ns)
        self.points.append(point)
        self._touch(self.end - 1)
        return point

    def prune(self, cutoff_ns: int) -> int:
        """Drop points last touched before `cutoff_ns`; how many went."""
        dropped = 0
        while self.points and self.points[0].t_ns < cutoff_ns:
            self.points.popleft()
            self.first += 1
            dropped += 1
        if dropped and self.dirty_from is not None and self.dirty_from < self.first:
            self.dirty_from = self.first
        return dropped

    def wire(self, since: int | None = None) -> Json:
        """Points from absolute index `since` (default: all), in the page's form."""
        start = self.first if since is None else max(since, self.first)
        items = list(self.points)[start - self.first :]
        return {
            "first": self.first,
            "from": start,
            "points": [p.wire() for p in items],
            "samples": self.samples,
            "missing": self.missing,
            "gaps": len(self.gaps),
            "last_value": self.last_value,
        }

    def take(self) -> Json | None:
        """What changed since the last take, or None."""
        if self.dirty_from is None:
            return None
        out = self.wire(self.dirty_from)
        self.dirty_from = None
        return out


@dataclass(slots=True)
class BinStats:
    mean: float
    sd: float
    n: int


def mean_sd(values: list[float]) -> BinStats:
    """Mean and population SD (the spread of this group of raters, ddof 0)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / n
    return BinStats(mean, math.sqrt(var), n)


class GroupMean:
    """Per media-time bin, each dial's latest point value there; mean and SD across the dials present."""

    def __init__(self, bin_s: float = BIN_S) -> None:
        self.bin_s = bin_s
        self.bins: dict[int, dict[str, tuple[float, int]]] = {}
        self.dirty: set[int] = set()

    def put(self, dial: str, point: Point) -> None:
        self.bins.setdefault(point.bin, {})[dial] = (point.y, point.t_ns)
        self.dirty.add(point.bin)

    def stats(self, b: int) -> BinStats | None:
        entries = self.bins.get(b)
        if not entries:
            return None
        return mean_sd([v for v, _ in entries.values()])

    def prune(self, cutoff_ns: int) -> None:
        for b in list(self.bins):
            entries = self.bins[b]
            stale = [d for d, (_, t) in entries.items() if t < cutoff_ns]
            for d in stale:
                del entries[d]
            if stale:
                self.dirty.add(b)
            if not entries:
                del self.bins[b]

    def _row(self, b: int) -> list[Any] | None:
        s = self.stats(b)
        if s is None:
            return None
        return [b, round((b + 0.5) * self.bin_s, 3), round(s.mean, 4), round(s.sd, 4), s.n]

    def series(self) -> list[list[Any]]:
        """Every bin in media order: [bin, media_s, mean, sd, n]."""
        return [row for b in sorted(self.bins) if (row := self._row(b)) is not None]

    def wire(self) -> Json:
        return {"reset": True, "set": self.series(), "del": []}

    def take(self) -> Json | None:
        if not self.dirty:
            return None
        rows: list[list[Any]] = []
        gone: list[int] = []
        for b in sorted(self.dirty):
            row = self._row(b)
            if row is None:
                gone.append(b)
            else:
                rows.append(row)
        self.dirty.clear()
        return {"set": rows, "del": gone}


def timebase(rate_label: str) -> Json | None:
    """What the page needs to label media seconds with SMPTE timecode at `rate_label`."""
    try:
        rate = FrameRate.parse(rate_label)
    except (TimecodeError, ValueError):
        return None
    nominal = round(float(rate.fps))
    return {
        "label": rate.label,
        "num": rate.fps.numerator,
        "den": rate.fps.denominator,
        "nominal": nominal,
        "drop": nominal // 15 if rate.drop_frame else 0,
    }


def media_at(clock: Json | None, t_ns: int) -> float | None:
    """Media seconds of the session clock at wall time `t_ns` (None when no media clock runs)."""
    if not clock:
        return None
    position, anchor = clock.get("position_s"), clock.get("anchor_t_ns")
    if not isinstance(position, int | float) or not isinstance(anchor, int):
        return None
    state = clock.get("state")
    if state == "paused":
        return float(position)
    if state != "running":
        return None
    speed = clock.get("speed", 1.0)
    speed = float(speed) if isinstance(speed, int | float) else 1.0
    return float(position) + speed * (t_ns - anchor) / 1e9


class StationState:
    """Everything the page shows of one station."""

    def __init__(self, station: str, bin_s: float = BIN_S) -> None:
        self.station = station
        self.bin_s = bin_s
        self.status: Json | None = None
        self.session: Json | None = None
        self.timebase: Json | None = None
        self.metas: dict[str, Json] = {}
        self.traces: dict[str, DialTrace] = {}
        self.mean = GroupMean(bin_s)
        self.events: deque[Json] = deque(maxlen=MAX_EVENTS)
        self._dirty_status = False
        self._dirty_session = False
        self._dirty_metas: set[str] = set()
        self._new_events: list[Json] = []

    def trace(self, dial: str) -> DialTrace:
        found = self.traces.get(dial)
        if found is None:
            found = self.traces[dial] = DialTrace(self.bin_s)
        return found

    # -- messages ---------------------------------------------------------------------

    def on_status(self, body: Json) -> None:
        self.status = body
        self._dirty_status = True
        if body.get("state") != "online":
            for trace in self.traces.values():
                trace.mark_break()

    def on_session(self, body: Json) -> None:
        self.session = body
        clock = body.get("clock")
        rate = clock.get("rate") if isinstance(clock, dict) else None
        self.timebase = timebase(str(rate)) if rate is not None else None
        self._dirty_session = True

    def on_meta(self, dial: str, body: Json) -> None:
        self.metas[dial] = body
        self._dirty_metas.add(dial)
        if body.get("connected") is not True:
            self.trace(dial).mark_break()

    def on_samples(self, dial: str, body: Any) -> int:
        """Take one samples message (an object or an array); how many were malformed."""
        bad = 0
        trace = self.trace(dial)
        for sample in body if isinstance(body, list) else [body]:
            if not isinstance(sample, dict):
                bad += 1
                continue
            try:
                boot = str(sample["boot"])
                seq = int(sample["seq"])
                t_ns = int(sample["t_ns"])
                value = float(sample["value"])
                media = sample.get("media_s")
                media_s = float(media) if media is not None else None
            except (KeyError, TypeError, ValueError):
                bad += 1
                continue
            point = trace.add(boot, seq, t_ns, media_s, value)
            if point is not None:
                self.mean.put(dial, point)
        return bad

    def on_event(self, body: Json, event_id: int) -> None:
        kind = str(body.get("kind", ""))
        dial = body.get("dial")
        raw_data, raw_t = body.get("data"), body.get("t_ns")
        data: Json = raw_data if isinstance(raw_data, dict) else {}
        t_ns = raw_t if isinstance(raw_t, int) else time.time_ns()
        media_s: float | None = None
        if kind in EVENT_KINDS_WITH_POSITION and isinstance(data.get("media_s"), int | float):
            media_s = float(data["media_s"])
        else:
            clock = self.session.get("clock") if self.session else None
            media_s = media_at(clock if isinstance(clock, dict) else None, t_ns)
        if kind == "device.disconnected" and isinstance(dial, str):
            self.trace(dial).mark_break()
        label = data.get("label") if kind == "mark" else None
        event = {
            "id": event_id,
            "kind": kind,
            "dial": dial if isinstance(dial, str) else None,
            "message": str(body.get("message", "")),
            "label": str(label if label is not None else body.get("message", "")) if kind == "mark" else None,
            "t_ns": t_ns,
            "media_s": round(media_s, 3) if media_s is not None else None,
        }
        self.events.append(event)
        self._new_events.append(event)

    def prune(self, cutoff_ns: int) -> None:
        for trace in self.traces.values():
            trace.prune(cutoff_ns)
        self.mean.prune(cutoff_ns)

    # -- the page's view --------------------------------------------------------------

    def _session_wire(self) -> Json | None:
        if self.session is None:
            return None
        return {**self.session, "timebase": self.timebase}

    def full(self) -> Json:
        return {
            "status": self.status,
            "session": self._session_wire(),
            "metas": dict(self.metas),
            "dials": {d: t.wire() for d, t in self.traces.items()},
            "mean": self.mean.wire(),
            "events": list(self.events),
        }

    def take(self) -> Json | None:
        out: Json = {}
        if self._dirty_status:
            out["status"] = self.status
        if self._dirty_session:
            out["session"] = self._session_wire()
        if self._dirty_metas:
            out["metas"] = {d: self.metas[d] for d in sorted(self._dirty_metas)}
        dials = {d: change for d, t in self.traces.items() if (change := t.take()) is not None}
        if dials:
            out["dials"] = dials
        mean = self.mean.take()
        if mean is not None:
            out["mean"] = mean
        if self._new_events:
            out["events"] = self._new_events
        self._dirty_status = self._dirty_session = False
        self._dirty_metas = set()
        self._new_events = []
        return out or None


@dataclass
class BridgeStats:
    messages: int = 0
    invalid: int = 0
    pushes: int = 0


Listener = Callable[[bytes], None]


@dataclass
class WatchState:
    """All stations seen; the part of the bridge that needs no network (tested on its own)."""

    root: str = "daq"
    station_filter: str = "+"
    bin_s: float = BIN_S
    window_s: float = WINDOW_S
    stations: dict[str, StationState] = field(default_factory=dict)
    stats: BridgeStats = field(default_factory=BridgeStats)
    broker: Json = field(default_factory=lambda: {"connected": False, "address": "", "error": ""})
    _broker_dirty: bool = False
    _event_id: int = 0

    def station(self, station: str) -> StationState:
        found = self.stations.get(station)
        if found is None:
            found = self.stations[station] = StationState(station, self.bin_s)
        return found

    def set_broker(self, connected: bool, error: str = "") -> None:
        if self.broker.get("connected") != connected or self.broker.get("error") != error:
            self.broker = {**self.broker, "connected": connected, "error": error}
            self._broker_dirty = True

    def handle(self, topic: str, payload: bytes) -> None:
        self.stats.messages += 1
        station, what, dial = parse_topic(self.root, topic)
        if not payload:  # a retained message cleared
            return
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.stats.invalid += 1
            log.debug("watch: %s is not JSON; ignored", topic)
            return
        state = self.station(station)
        if what == "samples" and dial is not None:
            self.stats.invalid += state.on_samples(dial, body)
        elif not isinstance(body, dict):
            self.stats.invalid += 1
        elif what == "meta" and dial is not None:
            state.on_meta(dial, body)
        elif what == "session":
            state.on_session(body)
        elif what == "status":
            state.on_status(body)
        elif what == "events":
            self._event_id += 1
            state.on_event(body, self._event_id)

    def prune(self, now_ns: int) -> None:
        cutoff = now_ns - int(self.window_s * 1e9)
        for state in self.stations.values():
            state.prune(cutoff)

    def config(self) -> Json:
        return {
            "root": self.root,
            "station": self.station_filter,
            "bin_s": self.bin_s,
            "window_s": self.window_s,
        }

    def snapshot(self, now_ns: int | None = None) -> Json:
        return {
            "type": "snapshot",
            "t_ns": now_ns if now_ns is not None else time.time_ns(),
            "config": self.config(),
            "broker": self.broker,
            "stations": {s: st.full() for s, st in sorted(self.stations.items())},
        }

    def take_update(self, now_ns: int | None = None) -> Json | None:
        stations = {s: change for s, st in sorted(self.stations.items()) if (change := st.take()) is not None}
        if not stations and not self._broker_dirty:
            return None
        out: Json = {
            "type": "update",
            "t_ns": now_ns if now_ns is not None else time.time_ns(),
            "stations": stations,
        }
        if self._broker_dirty:
            out["broker"] = self.broker
            self._broker_dirty = False
        return out


class WatchBridge:
    """The MQTT side: subscribe, feed `state`, push updates to listeners every `PUSH_EVERY_S`."""

    def __init__(
        self,
        broker: BrokerConfig,
        root: str = "daq",
        station: str = "+",
        client_id: str | None = None,
        bin_s: float = BIN_S,
        window_s: float = WINDOW_S,
        extra_meta: Json | None = None,
    ) -> None:
        self.broker_config = broker
        self.client_id = client_id
        self.state = WatchState(root, station, bin_s, window_s)
        self.state.broker["address"] = broker.address.display()
        self.extra_meta = extra_meta or {}
        self.listeners: set[Listener] = set()
        self.connected = asyncio.Event()
        self.fatal: str | None = None

    def snapshot_bytes(self) -> bytes:
        snap = self.state.snapshot()
        snap["config"].update(self.extra_meta)
        return orjson.dumps(snap)

    def add_listener(self, listener: Listener) -> None:
        self.listeners.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def push(self) -> None:
        """Take what changed and hand it to every listener (a heartbeat goes out anyway, now and then)."""
        update = self.state.take_update()
        if update is None:
            return
        self._send(orjson.dumps(update))

    def _send(self, data: bytes) -> None:
        self.state.stats.pushes += 1
        for listener in list(self.listeners):
            listener(data)

    async def run(self, stop: asyncio.Event) -> None:
        pusher = asyncio.create_task(self._push_loop(stop), name="watch-push")
        try:
            await self._mqtt_loop(stop)
        finally:
            pusher.cancel()
            await asyncio.gather(pusher, return_exceptions=True)

    async def _push_loop(self, stop: asyncio.Event) -> None:
        last_beat = last_prune = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(PUSH_EVERY_S)
            now = time.monotonic()
            if now - last_prune >= 1.0:
                last_prune = now
                self.state.prune(time.time_ns())
            before = self.state.stats.pushes
            self.push()
            if self.state.stats.pushes != before:
                last_beat = now
            elif now - last_beat >= HEARTBEAT_S:
                last_beat = now
                self._send(orjson.dumps({"type": "tick", "t_ns": time.time_ns()}))

    async def _mqtt_loop(self, stop: asyncio.Event) -> None:
        attempt = 0
        backoff = Backoff()
        while not stop.is_set():
            try:
                async with make_client(self.broker_config, self.client_id, clean=True) as client:
                    attempt = 0
                    for topic in subscriber_filters(self.state.root, self.state.station_filter):
                        await client.subscribe(topic, qos=1)
                    self.state.set_broker(True)
                    self.connected.set()
                    await self._consume(client, stop)
                    return
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                why = refusal(exc)
                self.state.set_broker(False, why or str(exc))
                if why is not None:
                    self.fatal = f"broker {self.broker_config.address.display()} refused the connection: {why}"
                    log.error("watch: %s", self.fatal)
                    return
                delay = backoff.delay(attempt)
                attempt += 1
                log.warning("watch: broker unreachable (%s); retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _consume(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        messages = aiter(client.messages)
        try:
            while True:
                getter = asyncio.ensure_future(anext(messages))
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    message = getter.result()
                    payload = message.payload
                    data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                    self.state.handle(str(message.topic), data)
                else:
                    getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
                if stopper in done:
                    return
        finally:
            stopper.cancel()
