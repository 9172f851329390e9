"""`daq lsl`: republish every dial as a Lab Streaming Layer (LSL) stream.

A subscriber like any other (it reads only the topics in CONTRACT.md). Per (station, dial) it opens
one LSL outlet: one channel (`value`, double), nominal rate `meta.rate_hz` (or irregular), the dial's
metadata (station, dial, boot, profile, transport, device, kind, scale) as child elements of the
stream's `desc`, and the stable source id `dialdaq-<station>-<dial>`, so an inlet (LabRecorder)
picks the stream up again after the bridge or the daemon restarts.

Time: each sample is stamped with its read time `t_ns` mapped onto LSL's clock
(`pylsl.local_clock()`, CLOCK_MONOTONIC on Linux), not with the time it reached the bridge:

    lsl_timestamp = t_ns / 1e9 + offset,  offset = local_clock() - time.time()

The offset is measured when the bridge starts, as the midpoint of two `local_clock()` reads
bracketing one `time.time_ns()` read (best of several tries). It is measured again every second,
but the start-up value stays in use: the daemon fixes its own wall-minus-monotonic offset at start
(`daq.readclock`) and keeps it when the wall clock is stepped, so on the same host both sides keep
agreeing to within the measurement (microseconds). A re-measured offset that moved by more than
5 ms means the host's wall clock was stepped (NTP, a user): the bridge logs it; restart the daemon
and the bridge together to realign. With the daemon on another host, the mapping is as good as the
wall-clock agreement between the hosts (NTP/PTP).

Duplicates (after an MQTT reconnect) are dropped by (boot, dial, seq). A stream is opened from the
dial's retained `meta` (its rate, scale and device). Samples that arrive before it are held: the
wait runs out after `META_WAIT_S` of the bridge having nothing else to take (a bridge that is
behind, with messages queued, has not yet seen what the broker sent after the samples, the meta
maybe among them), and only then is the stream opened with an irregular rate, said in a line. A
meta that comes after that replaces the irregular stream at once (same source id), also said.
`wait_inlet_s` lets a new stream hold its samples until an inlet connects (LSL does
not replay samples pushed before an inlet connected), so a recorder gets the stream from its first
sample; after that time the samples are pushed whether or not anybody listens.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from types import ModuleType
from typing import Any

import orjson

from daq import mqtt
from daq.config import BrokerConfig
from daq.exceptions import FatalError, MissingExtraError
from daq.seqtrack import SeqTracker
from daq.subscribers.json_body import json_body
from daq.topics import parse_topic

log = logging.getLogger(__name__)

TICK_S = 0.5
CLOCK_CHECK_S = 1.0
STEP_THRESHOLD_S = 0.005
META_WAIT_S = 5.0  # of the bridge idle, with samples held for a meta
MAX_HELD_SAMPLES = 100_000


def load_pylsl() -> ModuleType:
    """pylsl, imported on first use; MissingExtraError when the extra is not installed."""
    try:
        return importlib.import_module("pylsl")
    except ImportError as exc:
        raise MissingExtraError("pylsl", "lsl", "daq lsl") from exc
    except RuntimeError as exc:  # pylsl is there but liblsl (its C library) is not
        raise FatalError(
            f"daq lsl: pylsl is installed but cannot load liblsl: {str(exc).splitlines()[0]} "
            "Install a pylsl wheel that bundles liblsl (Linux x86_64 with glibc >= 2.35, macOS, Windows), "
            "or install liblsl (https://github.com/sccn/liblsl/releases) and set PYLSL_LIB to its path."
        ) from exc


def source_id(station: str, dial: str) -> str:
    return f"dialdaq-{station}-{dial}"


@dataclass(slots=True)
class LslClock:
    """Maps wall-clock nanoseconds (a sample's t_ns) onto LSL's clock (see the module docstring)."""

    local_clock: Callable[[], float]
    wall_ns: Callable[[], int] = time.time_ns
    tries: int = 5
    lsl_ref: float = 0.0  # local_clock() at ...
    wall_ref_ns: int = 0  # ... this wall time
    steps: int = 0
    _reported: float = 0.0

    def __post_init__(self) -> None:
        self.lsl_ref, self.wall_ref_ns = self.measure()
        self._reported = 0.0

    def measure(self) -> tuple[float, int]:
        best: tuple[float, float, int] | None = None  # (bracket width, lsl midpoint, wall)
        for _ in range(self.tries):
            l0 = self.local_clock()
            wall = self.wall_ns()
            l1 = self.local_clock()
            if best is None or l1 - l0 < best[0]:
                best = (l1 - l0, (l0 + l1) / 2, wall)
        assert best is not None
        return best[1], best[2]

    @property
    def offset(self) -> float:
        """local_clock() - time.time(), in seconds."""
        return self.lsl_ref - self.wall_ref_ns / 1e9

    def lsl_time(self, t_ns: int) -> float:
        # Same as t_ns / 1e9 + offset, without losing precision on 1.8e9-second floats.
        return self.lsl_ref + (t_ns - self.wall_ref_ns) / 1e9

    def check(self) -> float | None:
        """Measure again; return the drift (s) when it moved beyond the threshold since the last report."""
        lsl_now, wall_now = self.measure()
        drift = (lsl_now - self.lsl_ref) - (wall_now - self.wall_ref_ns) / 1e9
        if abs(drift - self._reported) > STEP_THRESHOLD_S:
            self._reported = drift
            self.steps += 1
            return drift
        return None


@dataclass(slots=True)
class Stream:
    """One dial's outlet and what it was opened with."""

    station: str
    dial: str
    outlet: Any
    identity: tuple[Any, ...]
    opened: float  # the bridge clock (LslBridge.now) when the outlet was created
    held: list[tuple[float, float]] = field(default_factory=list)  # (value, lsl time) waiting for an inlet
    waiting: bool = False
    pushed: int = 0


@dataclass(slots=True)
class BridgeStats:
    pushed: int = 0
    duplicates: int = 0
    invalid: int = 0
    streams_opened: int = 0


def _say(line: str) -> None:
    print(line, flush=True)


def _nothing_queued() -> int:
    return 0


@dataclass(slots=True, eq=False)
class LslBridge:
    broker: BrokerConfig
    root: str = "daq"
    station: str = "+"
    client_id: str | None = None
    wait_inlet_s: float = 0.0
    pylsl: InitVar[ModuleType | None] = None  # default: imported (load_pylsl)
    announce: Callable[[str], None] = _say  # a line for the terminal (a stream opened)
    lsl: ModuleType = field(init=False)
    clock: LslClock = field(init=False)
    stats: BridgeStats = field(default_factory=BridgeStats, init=False)
    metas: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, init=False)
    streams: dict[tuple[str, str], Stream] = field(default_factory=dict, init=False)
    pending: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict, init=False)  # for a meta
    pending_since: dict[tuple[str, str], float] = field(default_factory=dict, init=False)
    trackers: dict[tuple[str, str, str], SeqTracker] = field(default_factory=dict, init=False)
    without_meta: set[tuple[str, str]] = field(default_factory=set, init=False)  # opened irregular, no meta
    backlog: Callable[[], int] = field(default=_nothing_queued, init=False)  # messages held, not yet taken
    session: mqtt.Session = field(init=False)
    connected: asyncio.Event = field(init=False)  # set while connected and subscribed
    now: Callable[[], float] = field(default=time.monotonic, init=False)  # the bridge's clock (tests step it)
    _last_check: float = field(default=0.0, init=False)

    def __post_init__(self, pylsl: ModuleType | None) -> None:
        self.lsl = pylsl if pylsl is not None else load_pylsl()
        self.clock = LslClock(self.lsl.local_clock)
        self.session = mqtt.Session(
            self.broker, mqtt.ConnectOptions(self.client_id, clean=True), name="lsl", subscriptions=self.filters
        )
        self.connected = self.session.connected
        self._last_check = self.now()

    # -- the connection ---------------------------------------------------------------

    def filters(self) -> list[str]:
        base = f"{self.root}/{self.station}"
        return [f"{base}/dials/+/meta", f"{base}/dials/+/samples"]

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until `stop`. BrokerRefused / ConfigError when the broker refuses us at start."""

        async def on_connected(connection: mqtt.Connection) -> None:
            # `consume` waits on Connection.receive, which its tick can cancel without losing a message;
            # cancelling aiomqtt's own `anext(messages)` at a tick could drop the one just taken (the
            # first after an idle spell: a meta), which made a dial's stream irregular (tests/test_lsl.py).
            self.backlog = lambda: connection.queued
            await mqtt.consume(connection, stop, self.take, tick=self.tick, tick_s=TICK_S)

        try:
            await self.session.run(stop, on_connected)
        finally:
            self.close()

    def take(self, message: mqtt.Message) -> None:
        self.handle(message.topic, message.payload)

    # -- messages ---------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        station, what, dial = parse_topic(self.root, topic)
        if dial is None:
            return
        readable, body = json_body(topic, payload, self.stats, log, "lsl")
        if not readable:
            return
        key = (station, dial)
        if what == "meta" and isinstance(body, dict):
            self.metas[key] = body
            stream = self.streams.get(key)
            if stream is not None and key in self.without_meta:
                log.warning(
                    "lsl: the meta of %s/%s came after its irregular-rate stream was opened; reopening it with the "
                    "meta (rate %s)",
                    station,
                    dial,
                    body.get("rate_hz") or "irregular",
                )
                self._close_stream(key)
                self._open(key)
            elif stream is not None and stream.identity != self._identity(body):
                log.info("lsl: %s/%s changed (new boot or scale); reopening its stream", station, dial)
                self._close_stream(key)
            if key in self.pending:
                self._open(key)
        elif what == "samples":
            for sample in body if isinstance(body, list) else [body]:
                if isinstance(sample, dict):
                    self._sample(key, sample)
                else:
                    self.stats.invalid += 1

    def _sample(self, key: tuple[str, str], sample: dict[str, Any]) -> None:
        try:
            boot, seq = str(sample["boot"]), int(sample["seq"])
            value, t_ns = float(sample["value"]), int(sample["t_ns"])
        except (KeyError, TypeError, ValueError):
            self.stats.invalid += 1
            return
        accept, _ = self.trackers.setdefault((key[0], boot, key[1]), SeqTracker()).offer(seq)
        if not accept:
            self.stats.duplicates += 1
            return
        stream = self.streams.get(key)
        if stream is None:
            if key in self.metas:
                stream = self._open(key)
            else:
                self.pending.setdefault(key, []).append(sample)
                self.pending_since.setdefault(key, self.now())
                return
        self._push(stream, value, self.clock.lsl_time(t_ns))

    def _push(self, stream: Stream, value: float, stamp: float) -> None:
        if stream.waiting:
            if stream.outlet.have_consumers() or self.now() - stream.opened >= self.wait_inlet_s:
                self._release(stream)
            elif len(stream.held) < MAX_HELD_SAMPLES:
                stream.held.append((value, stamp))
                return
            else:
                self._release(stream)
        stream.outlet.push_sample([value], stamp)
        stream.pushed += 1
        self.stats.pushed += 1

    def _release(self, stream: Stream) -> None:
        stream.waiting = False
        for value, stamp in stream.held:
            stream.outlet.push_sample([value], stamp)
        stream.pushed += len(stream.held)
        self.stats.pushed += len(stream.held)
        stream.held.clear()

    def tick(self) -> None:
        """Periodic work: streams whose meta never came, inlets that connected, clock steps."""
        now = self.now()
        if self.backlog() > 0:
            # Behind: what the broker sent after the held samples (their meta, maybe) is still queued
            # here. The wait for a meta counts only time the bridge has seen everything.
            for key in self.pending_since:
                self.pending_since[key] = now
        for key, since in list(self.pending_since.items()):
            if now - since >= META_WAIT_S and key not in self.streams:
                log.warning(
                    "lsl: no meta for %s/%s after %.0f s; opening an irregular-rate stream (remade if its meta comes)",
                    *key,
                    META_WAIT_S,
                )
                self.without_meta.add(key)
                self._open(key)
        for stream in self.streams.values():
            if stream.waiting and (stream.outlet.have_consumers() or now - stream.opened >= self.wait_inlet_s):
                self._release(stream)
        if now - self._last_check >= CLOCK_CHECK_S:
            self._last_check = now
            drift = self.clock.check()
            if drift is not None:
                log.warning(
                    "lsl: the wall clock moved %.3f ms against LSL's clock since start; LSL timestamps keep the "
                    "start-up offset (as the daemon's read times do): restart the daemon and the bridge to realign",
                    drift * 1e3,
                )

    # -- streams ----------------------------------------------------------------------

    @staticmethod
    def _identity(meta: dict[str, Any]) -> tuple[Any, ...]:
        return (
            meta.get("boot"),
            meta.get("rate_hz"),
            orjson.dumps(meta.get("scale"), option=orjson.OPT_SORT_KEYS),
            meta.get("profile"),
        )

    def _open(self, key: tuple[str, str]) -> Stream:
        station, dial = key
        meta = self.metas.get(key, {})
        if meta:
            self.without_meta.discard(key)
        info = self._stream_info(station, dial, meta)
        outlet = self.lsl.StreamOutlet(info)
        stream = Stream(station, dial, outlet, self._identity(meta), self.now(), waiting=self.wait_inlet_s > 0)
        self.streams[key] = stream
        self.stats.streams_opened += 1
        rate = meta.get("rate_hz")
        self.announce(
            f"lsl: stream {source_id(station, dial)} ({f'{rate:g} Hz' if rate else 'irregular rate'}) "
            f"for {self.root}/{station}/dials/{dial}"
        )
        self.pending_since.pop(key, None)
        for sample in self.pending.pop(key, []):
            self._push(stream, float(sample["value"]), self.clock.lsl_time(int(sample["t_ns"])))
        return stream

    def _stream_info(self, station: str, dial: str, meta: dict[str, Any]) -> Any:
        lsl = self.lsl
        rate = meta.get("rate_hz")
        nominal = float(rate) if isinstance(rate, int | float) and rate > 0 else lsl.IRREGULAR_RATE
        info = lsl.StreamInfo(
            name=f"{station}/{dial}",
            type="Rating",
            channel_count=1,
            nominal_srate=nominal,
            channel_format=lsl.cf_double64,
            source_id=source_id(station, dial),
        )
        desc = info.desc()
        scale = meta.get("scale") if isinstance(meta.get("scale"), dict) else {}
        assert isinstance(scale, dict)
        channel = desc.append_child("channels").append_child("channel")
        channel.append_child_value("label", "value")
        channel.append_child_value("type", "Rating")
        channel.append_child_value("unit", str(scale.get("unit", "")))
        for name in ("station", "dial", "boot", "profile", "transport", "device", "channel", "kind"):
            fallback = {"station": station, "dial": dial}.get(name, "")
            desc.append_child_value(name, str(meta.get(name, fallback)))
        element = desc.append_child("scale")
        for name in ("min", "max", "step", "unit"):
            if name in scale:
                element.append_child_value(name, str(scale[name]))
        labels = element.append_child("labels")
        for value, text in (scale.get("labels") or {}).items():
            label = labels.append_child("label")
            label.append_child_value("value", str(value))
            label.append_child_value("text", str(text))
        clock = desc.append_child("clock")
        clock.append_child_value("timestamps", "read time t_ns mapped to LSL's clock: t_ns/1e9 + offset")
        clock.append_child_value("offset_s", repr(self.clock.offset))
        return info

    def _close_stream(self, key: tuple[str, str]) -> None:
        stream = self.streams.pop(key, None)
        if stream is not None:
            self._release(stream)  # the outlet closes when the last reference goes

    def close(self) -> None:
        for key in list(self.streams):
            self._close_stream(key)
