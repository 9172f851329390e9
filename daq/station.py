"""A station: every configured dial, one media clock, one outbox, one broker connection.

Reads top to bottom as the data path: devices (transport -> decode) feed dial pipelines
(calibrate -> timestamp -> media clock -> sample -> outbox), the publisher empties the
outbox to MQTT. Each device runs under supervision: one failing dial never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping

import orjson

from daq import __version__, mqtt
from daq.builder import build_devices
from daq.builder_types import DeviceSetup
from daq.config import DaqConfig
from daq.contract import CONTRACT_VERSION
from daq.control import StationControl
from daq.device import DeviceReader
from daq.health import HEALTH_EVERY_S, HealthReporter
from daq.mediaclock.base import MediaClock
from daq.mediaclock.factory import make_clock
from daq.mediaclock.follow import OnChange
from daq.mediaclock.session import SessionClock
from daq.outbox import DiskOutbox, make_outbox
from daq.pipeline import DialPipeline
from daq.publisher import Publisher
from daq.readclock import ReadClock
from daq.session import SessionState, new_session_id
from daq.topics import Topics

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0


def dumps(obj: object) -> bytes:
    return orjson.dumps(obj)


class Station:
    def __init__(self, config: DaqConfig, boot: str | None = None) -> None:
        self.config = config
        self.station_id = config.station.id
        self.boot = boot or secrets.token_hex(8)
        self.topics = Topics(config.station.root, self.station_id)
        self.read_clock = ReadClock()
        self.outbox = make_outbox(config, self._outbox_event)
        self.session = SessionState(make_clock(config.media))
        self.control = StationControl(self)
        will = mqtt.Will(self.topics.status, self._status_payload("offline", "lost", will=True), qos=1, retain=True)
        self.publisher = Publisher(
            config.broker,
            config.publish,
            config.broker.client_id or f"daq-{self.station_id}",
            self.outbox,
            will,
            subscriptions=(*self.control.subscriptions, self.topics.status),
            on_message=self._on_message,
        )
        self.devices: list[DeviceSetup] = build_devices(
            config, self.station_id, self.boot, self.topics, self.read_clock, self.session, self.outbox
        )
        self.pipelines: dict[str, DialPipeline] = {}
        for setup in self.devices:
            for pipeline in setup.pipelines:
                self.pipelines[pipeline.dial] = pipeline
        self.readers = [
            DeviceReader(s.transport, s.decoder, s.routes, self.emit_event, self._on_connection) for s in self.devices
        ]
        self.started_mono_ns = time.monotonic_ns()
        self._online = False
        self._twin_warned = False
        self.health = HealthReporter(self)
        self._clock_task: asyncio.Task[None] | None = None
        self._running = False

    def _outbox_event(self, kind: str, message: str, data: Mapping[str, object]) -> None:
        self.emit_event(kind, None, message, data)

    # -- payloads ---------------------------------------------------------------------

    def _status_payload(self, state: str, reason: str, will: bool = False) -> bytes:
        body: dict[str, object] = {
            "v": CONTRACT_VERSION,
            "station": self.station_id,
            "boot": self.boot,
            "state": state,
            "reason": reason,
            "version": __version__,
            "dials": [d.id for d in self.config.dials],
        }
        if not will:
            body["t_ns"] = self.read_clock.now_ns()
        return dumps(body)

    def publish_meta(self, dial: str, connected: bool) -> None:
        setup = next(s for s in self.devices if dial in s.meta)
        meta = {
            "v": CONTRACT_VERSION,
            "station": self.station_id,
            "dial": dial,
            "boot": self.boot,
            "connected": connected,
            **setup.meta[dial],
            "t_ns": self.read_clock.now_ns(),
        }
        self.publisher.set_retained(self.topics.meta(dial), dumps(meta))

    def publish_session(self) -> None:
        payload = self.session.payload(self.station_id, self.boot, self.read_clock.offset_ns)
        self.publisher.set_retained(self.topics.session, dumps(payload))

    def emit_event(self, kind: str, dial: str | None, message: str, data: Mapping[str, object]) -> None:
        body = {
            "v": CONTRACT_VERSION,
            "station": self.station_id,
            "boot": self.boot,
            "t_ns": self.read_clock.now_ns(),
            "kind": kind,
            "dial": dial,
            "message": message,
            "data": data,
        }
        self.publisher.send(self.topics.events, dumps(body))

    def _on_connection(self, dial: str, connected: bool) -> None:
        self.publish_meta(dial, connected)

    async def _on_message(self, message: mqtt.Message) -> None:
        if message.topic == self.topics.status:
            if message.retain:  # an earlier run's state, handed over at subscribe; our online follows it
                return
            self._guard_status(message.payload)
            return
        await self.control.on_message(message)

    def _guard_status(self, payload: bytes) -> None:
        """A stale Last Will (an earlier connection's, delivered late) must not mark a live station offline."""
        if not self._online:
            return
        try:
            seen = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            seen = {}
        if not isinstance(seen, dict):
            return
        if seen.get("state") == "online" and seen.get("boot") != self.boot:
            # Not a stale will: another daemon publishes as this station. Answering would ping-pong.
            if not self._twin_warned:
                self._twin_warned = True
                log.error(
                    "another daemon publishes as station %s (boot %s): give each station its own id",
                    self.station_id,
                    seen.get("boot"),
                )
            return
        if seen.get("state") != "online":
            log.warning(
                "status was overwritten (%s, boot %s): publishing online again", seen.get("state"), seen.get("boot")
            )
            self.publisher.set_retained(self.topics.status, self._status_payload("online", ""))

    # -- the media clock's background job ------------------------------------------------

    def on_clock_change(self, kind: str, message: str, data: dict[str, object]) -> None:
        """A clock's background job saw a change: announce it and republish the session."""
        self.emit_event(kind, None, message, data)
        self.publish_session()

    def set_clock(self, clock: MediaClock | None) -> None:
        """Switch the media clock (control's clock.set); the old clock's job stops, the new one's starts."""
        if self._clock_task is not None:
            self._clock_task.cancel()
            self._clock_task = None
        self.session.clock = clock
        if self._running:
            self._start_clock()

    def _start_clock(self) -> None:
        clock = self.session.clock
        run: Callable[[OnChange], Awaitable[None]] | None = getattr(clock, "run", None)
        if clock is not None and run is not None:
            self._clock_task = asyncio.create_task(self._supervise_clock(clock.kind, run), name=f"clock:{clock.kind}")

    async def _supervise_clock(self, kind: str, run: Callable[[OnChange], Awaitable[None]]) -> None:
        while True:
            try:
                await run(self.on_clock_change)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("media clock %s failed; restarting it", kind)
                self.emit_event("error", None, f"media clock {kind}: {type(exc).__name__}: {exc}", {"clock": kind})
                await asyncio.sleep(1.0)

    # -- running ----------------------------------------------------------------------

    def start_session(self, timecode: str | None = None) -> None:
        clock = self.session.clock
        if isinstance(clock, SessionClock):
            clock.start(timecode)
        self.session.session_id = new_session_id(self.read_clock.now_ns())
        self.publish_session()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then stop reading, flush, publish offline and return."""
        self._online = True
        self.publisher.set_retained(self.topics.status, self._status_payload("online", ""))
        if self.config.media.autostart:
            self.start_session()
        else:
            self.publish_session()
        for dial in self.pipelines:
            self.publish_meta(dial, False)
        publisher_stop = asyncio.Event()
        publisher = asyncio.create_task(self.publisher.run(publisher_stop), name="publisher")
        workers = [asyncio.create_task(self._supervise(r), name=f"device:{r.transport.describe}") for r in self.readers]
        workers.append(asyncio.create_task(self._watch_clock(), name="read-clock"))
        workers.append(asyncio.create_task(self._report_health(), name="health"))
        self._running = True
        self._start_clock()
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({stopper, publisher}, return_when=asyncio.FIRST_COMPLETED)
            if publisher.done():
                publisher.result()  # a fatal broker error (refused credentials) ends the station
        finally:
            stopper.cancel()
            for task in workers:
                task.cancel()
            self._running = False
            if self._clock_task is not None:
                workers.append(self._clock_task)
                self._clock_task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._online = False
            if not publisher.done():
                self.publisher.set_retained(self.topics.health, dumps(self.health.payload()))
                # `offline` goes last, after the drain, so no sample follows it.
                self.publisher.final = (self.topics.status, self._status_payload("offline", "stopped"))
                publisher_stop.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(publisher, DRAIN_TIMEOUT_S)
            left = self.outbox.pending + self.outbox.inflight
            if left:
                kept = "kept in the outbox for the next start" if isinstance(self.outbox, DiskOutbox) else "LOST"
                log.error("%d samples not delivered at exit (%s)", left, kept)
            self.outbox.close()

    async def _supervise(self, reader: DeviceReader) -> None:
        while True:
            try:
                await reader.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("device %s failed; restarting it", reader.transport.describe)
                for dial in reader.dial_ids:
                    self.emit_event(
                        "error", dial, f"{type(exc).__name__}: {exc}", {"device": reader.transport.describe}
                    )
                await asyncio.sleep(1.0)

    async def _report_health(self) -> None:
        while True:
            self.publisher.set_retained(self.topics.health, dumps(self.health.payload()))
            await asyncio.sleep(HEALTH_EVERY_S)

    async def _watch_clock(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            step = self.read_clock.check()
            if step is not None:
                log.warning("wall clock stepped by %.3f ms; read times keep the start-up offset", step.step_ns / 1e6)
                self.emit_event(
                    "clock.wall_step",
                    None,
                    "the host wall clock stepped; read times are unaffected",
                    {"step_ns": step.step_ns, "offset_ns": step.offset_ns},
                )
