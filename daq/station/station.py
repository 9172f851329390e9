"""A station: every configured dial, one media clock, one outbox, one broker connection.

This module only wires. It builds the parts, connects them and runs them:

    devices (transport -> decode)      daq.station.device_reader, .assembly, .profiled_dials
      -> dial pipelines (calibrate -> timestamp -> media clock -> sample)   .dial_pipeline
      -> outbox -> publisher -> MQTT   daq.outbox, .publisher

beside them the session state (.session_state), the media clock stage (.clock_stage), control
(.control), health (.health), the retained status (.status_guard) and the announcer that all of
them speak through (.announcer). No part holds the station. Each device runs under supervision:
one failing dial never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from daq.cadence import HOUSEKEEPING_S, sleep_to_grid
from daq.config import DaqConfig
from daq.mediaclock.factory import make_clock
from daq.outbox import make_outbox
from daq.readclock import ReadClock
from daq.station.announcer import Announcer
from daq.station.assembly import PipelineParts, build_devices
from daq.station.broker_io import Inbound, last_will, message_handler
from daq.station.clock_stage import ClockStage, input_topics, topic_matches
from daq.station.control import StationControl
from daq.station.device_reader import DeviceReader, DeviceSetup
from daq.station.dial_pipeline import DialPipeline
from daq.station.health import HealthReporter
from daq.station.payloads import StationIdentity
from daq.station.publisher import Publisher
from daq.station.reply_topics import ReplyTopics
from daq.station.session_state import SessionState
from daq.station.status_guard import StatusGuard
from daq.station.supervise import restart_on_failure
from daq.station.throttle import Throttle
from daq.topics import Topics

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0
RESTART_S = 1.0


class Station:
    def __init__(self, config: DaqConfig, boot: str | None = None) -> None:
        self.config = config
        self.station_id = config.station.id
        self.boot = boot or secrets.token_hex(8)
        self.who = StationIdentity(self.station_id, self.boot, tuple(d.id for d in config.dials))
        self.topics = topics = Topics(config.station.root, self.station_id)
        self.read_clock = ReadClock()
        self.session = SessionState(make_clock(config.media))
        # The outbox reports through the announcer, which needs the publisher, which needs the outbox.
        self.outbox = make_outbox(config, lambda kind, message, data: self.announcer.station_event(kind, message, data))
        parts = PipelineParts(
            self.station_id,
            self.boot,
            topics,
            self.read_clock,
            self.session,
            self.outbox,
            lambda kind, dial, message, data: self.announcer.event(kind, dial, message, data),
        )
        self.devices: list[DeviceSetup] = build_devices(config, parts)
        self.pipelines: dict[str, DialPipeline] = {p.dial: p for s in self.devices for p in s.pipelines}
        clock_topics = input_topics(topics.base)
        self.publisher = Publisher(
            config.broker,
            config.publish,
            config.broker.client_id or f"daq-{self.station_id}",
            self.outbox,
            last_will(topics.status, StatusGuard.will_of(self.who)),
            subscriptions=(topics.cmd_filter, *clock_topics, topics.status),
            on_message=message_handler(self.route),
        )
        self._refusals = Throttle()
        self.publisher.on_refused = self._message_refused
        dial_meta = {dial: meta for s in self.devices for dial, meta in s.meta.items()}
        self.announcer = Announcer(self.publisher, self.who, topics, self.read_clock, self.session, dial_meta)
        self.status = StatusGuard(self.publisher, self.who, topics.status, self.read_clock)
        self.clocks = ClockStage(self.session, self.announcer, self.read_clock, topics.base, clock_topics)
        self.control = StationControl(
            self.announcer,
            self.session,
            self.read_clock,
            config.media,
            self.clocks.install,
            self.clocks.refuse,
            ReplyTopics(topics, config.control.reply_prefix),
        )
        self.health = HealthReporter(
            self.who,
            self.read_clock,
            {dial: p.stats for dial, p in self.pipelines.items()},
            self.outbox,
            self.publisher.stats,
            self.publisher,
            topics.health,
            lambda: self.clocks.refused,
        )
        self.readers = [
            DeviceReader(s.transport, s.decoder, s.routes, self.announcer.event, self.announcer.meta, expects=s.expects)
            for s in self.devices
        ]

    async def route(self, msg: Inbound) -> None:
        """Hand a message the broker delivered to its part: our status, a media clock's input, a command."""
        if msg.topic == self.topics.status:
            self.status.on_message(msg.payload, msg.retained)
        elif self.clocks.follows(msg.topic):
            self.clocks.on_message(msg.topic, msg.payload, time.monotonic_ns())
        elif topic_matches(self.topics.cmd_filter, msg.topic):
            await self.control.on_command(msg.topic, msg.payload, msg.response_topic)
        else:
            log.debug("no part takes messages on %s", msg.topic)

    def _message_refused(self, topic: str, reason: str, count: int) -> None:
        """The broker refused a control message (a reply, an event): it is gone; say so (rate-limited).

        Not for a refused event: the report would be refused in turn (the log and health have it)."""
        if topic == self.topics.events or not self._refusals.hit():
            return
        self.announcer.event(
            "error",
            None,
            f"the broker refused a message on {topic}: {reason}; it was dropped ({count} refused so far)",
            {"topic": topic, "reason": reason, "refused": count},
        )

    # -- running ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then stop reading, flush, publish offline and return."""
        self.status.go_online()
        if self.config.media.autostart:
            self.session.start(self.read_clock.now_ns())
        self.announcer.session()
        for dial in self.pipelines:
            self.announcer.meta(dial, False)
        publisher_stop = asyncio.Event()
        publisher = asyncio.create_task(self.publisher.run(publisher_stop), name="publisher")
        jobs: list[tuple[str, Coroutine[Any, Any, None]]] = [
            (f"device:{r.transport.describe}", self._supervise(r)) for r in self.readers
        ]
        jobs += [("read-clock", self._keep_running("read clock", self._watch_read_clock))]
        jobs += [("health", self._keep_running("health", self.health.run))]
        workers = [asyncio.create_task(job, name=name) for name, job in jobs]
        self.clocks.start()
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({stopper, publisher}, return_when=asyncio.FIRST_COMPLETED)
            if publisher.done():
                publisher.result()  # a fatal broker error (refused credentials) ends the station
        finally:
            stopper.cancel()
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, self.clocks.stop(), return_exceptions=True)
            offline = self.status.go_offline()
            if not publisher.done():
                self.health.publish()
                # `offline` goes last, after the drain, so no sample follows it.
                self.publisher.final = (self.topics.status, offline)
                publisher_stop.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(publisher, DRAIN_TIMEOUT_S)
            left = self.outbox.pending + self.outbox.inflight
            if left:
                folder = getattr(self.outbox, "path", None)
                if self.outbox.stats().kind == "disk":
                    kept = f"(kept in the outbox for the next start): {folder}"
                else:
                    kept = "(LOST: the outbox is in memory)"
                log.error("%d samples not delivered at exit %s", left, kept)
            self.outbox.close()

    async def _supervise(self, reader: DeviceReader) -> None:
        def failed(exc: Exception) -> None:
            log.exception("device %s failed; restarting it", reader.transport.describe)
            for dial in reader.dial_ids:
                self.announcer.event(
                    "error", dial, f"{type(exc).__name__}: {exc}", {"device": reader.transport.describe}
                )

        while True:  # a device reader that returns is run again: it ends only when cancelled
            await restart_on_failure(reader.run, failed, RESTART_S)

    async def _keep_running(self, what: str, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A station job that must not end: a failure is logged, announced and the job restarted."""

        def failed(exc: Exception) -> None:
            log.exception("the station's %s job failed; restarting it", what)
            self.announcer.event("error", None, f"{what}: {type(exc).__name__}: {exc}", {"job": what})

        await restart_on_failure(job, failed, RESTART_S)

    async def _watch_read_clock(self) -> None:
        while True:
            await sleep_to_grid(HOUSEKEEPING_S)
            step = self.read_clock.check()
            if step is not None:
                log.warning("wall clock stepped by %.3f ms; read times keep the start-up offset", step.step_ns / 1e6)
                self.announcer.event(
                    "clock.wall_step",
                    None,
                    "the host wall clock stepped; read times are unaffected",
                    {"step_ns": step.step_ns, "offset_ns": step.offset_ns},
                )
