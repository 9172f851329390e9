"""What `daq watch` knows of each station and sends its pages; no network (tested on its own).

Per station it keeps the retained status, session and dial metas, the last `window_s` seconds
(by read time) of every dial's trace and of the group mean (`daq.subscribers.watch.trace`), and
recent events with the media position they refer to. `WatchState.handle` takes one MQTT message
(topic and payload) as any subscriber reads it from CONTRACT.md.

Changes are collected and taken as one JSON-able update (`take_update`), which the bridge
pushes to every page about every 100 ms; `snapshot` is the whole state for a page that just
connected. Both use the same wire form, so a page applies them the same way:

- a dial's points: `{"first": F, "from": K, "points": [[media_s, value, brk], ...]}` — drop
  points before absolute index F, cut the list at index K, append `points`;
- the mean: `{"set": [[bin, media_s, mean, sd, n], ...], "del": [bin, ...]}`;
- events: a list of `{"id", "kind", "dial", "message", "label", "t_ns", "media_s"}`, ids rising.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from daq.subscribers.json_body import json_body
from daq.subscribers.watch.trace import BIN_S, DialTrace, GroupMean, Json
from daq.timecode import FrameRate, TimecodeError
from daq.topics import parse_topic

log = logging.getLogger(__name__)

WINDOW_S = 600.0
"""How much to keep, by read time: the last ten minutes."""
MAX_EVENTS = 500
EVENT_KINDS_WITH_POSITION = ("mark", "clock.pause", "clock.resume", "clock.seek")


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


@dataclass
class WatchState:
    """All stations seen, and what a page is sent of them; no network (tested on its own)."""

    root: str = "daq"
    station_filter: str = "+"
    bin_s: float = BIN_S
    window_s: float = WINDOW_S
    page: Json = field(default_factory=dict)  # more for the page's config (the video's address)
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
        readable, body = json_body(topic, payload, self.stats, log, "watch", logging.DEBUG)
        if not readable:  # a retained message cleared, or not JSON (counted in stats.invalid)
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
            **self.page,
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
