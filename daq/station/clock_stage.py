"""The media clock stage: the clock in use, its background job, and the MQTT messages it follows.

- A clock with a background job (`RunningClock`: mpv, MTC) has it run here, supervised: a failing
  job is reported and restarted, a clock switched away from has its job stopped.
- A clock fed by MQTT messages (`MessageFedClock`) names its topics; the station subscribes to the
  topics of every clock kind it may switch to (`input_topics`) and hands what arrives to `on_message`
  here, which passes it to the clock in use if that clock follows the topic. The last message on each
  topic is kept, so a clock switched to (`install`) starts from the player's last word.

Every change a clock reports is announced (an event, then the retained session). Every input a
clock refuses (a `ClockInputError`: not a position, or outside the bounds) is counted (`refused`,
in health as `media_refused`) and reported as a `clock.refused` event, the first at once and then
at most one per REPORT_EVERY_S with the count, so a flood of bad positions cannot flood `events`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from daq.mediaclock.base import ClockChange, ClockInputError, MediaClock, MessageFedClock, RunningClock
from daq.mediaclock.mqtt_follow import MqttFollowClock
from daq.readclock import ReadClock
from daq.station.announcer import Announcer
from daq.station.session_state import SessionState
from daq.station.supervise import restart_on_failure
from daq.station.throttle import Throttle

log = logging.getLogger(__name__)

RESTART_S = 1.0

Subscriptions = Callable[[str], tuple[str, ...]]

# The `subscriptions` of each message-fed clock kind, heard whatever clock the station starts on (so
# a clock.set to it starts from the last message). The media clock registry is where this belongs.
MESSAGE_FED_KINDS: tuple[Subscriptions, ...] = (MqttFollowClock.subscriptions,)


def input_topics(base_topic: str, kinds: Iterable[Subscriptions] = MESSAGE_FED_KINDS) -> tuple[str, ...]:
    """The topics every message-fed clock kind follows, given `<root>/<station>`; each once."""
    topics: dict[str, None] = {}
    for subscriptions in kinds:
        topics.update(dict.fromkeys(subscriptions(base_topic)))
    return tuple(topics)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (`+` one level, `#` the rest)."""
    if topic_filter == topic:
        return True
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(wanted) == len(levels)


class ClockStage:
    def __init__(
        self,
        session: SessionState,
        announcer: Announcer,
        read_clock: ReadClock,
        base_topic: str,
        topics: tuple[str, ...],
    ) -> None:
        self.session = session
        self.announcer = announcer
        self.read_clock = read_clock
        self.base_topic = base_topic
        self.topics = topics  # what the station subscribes to for its clocks
        self._last: dict[str, tuple[bytes, int]] = {}  # topic -> last payload, arrival (monotonic ns)
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._refusals = Throttle()

    @property
    def refused(self) -> int:
        """Inputs the media clocks refused so far (positions, commands)."""
        return self._refusals.count

    def refuse(self, source: str, reason: str) -> None:
        """A clock refused an input from `source` (a topic, a command): count it, log and report it (rate-limited)."""
        kind = getattr(self.session.clock, "kind", "none")
        if not self._refusals.hit():
            log.debug("media clock %s refused input from %s: %s", kind, source, reason)
            return
        count, since = self._refusals.count, self._refusals.since_report()
        log.warning("media clock %s refused input from %s: %s (%d refused so far)", kind, source, reason, count)
        self.announcer.event(
            "clock.refused",
            None,
            f"media clock {kind} refused input from {source}: {reason} ({count} refused so far)",
            {"clock": kind, "source": source, "reason": reason, "refused": count, "since_last_report": since},
        )

    @property
    def clock(self) -> MediaClock | None:
        return self.session.clock

    def follows(self, topic: str) -> bool:
        """A message on `topic` is for the clock stage."""
        return any(topic_matches(f, topic) for f in self.topics)

    # -- input messages ------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes, arrival_mono_ns: int) -> None:
        """A message on one of the clock topics: keep it, and feed the clock in use if it follows it."""
        self._last.pop(topic, None)
        self._last[topic] = (payload, arrival_mono_ns)  # kept in arrival order
        self._feed(topic, payload, arrival_mono_ns)

    def _feed(self, topic: str, payload: bytes, arrival_mono_ns: int) -> None:
        clock = self.session.clock
        if not isinstance(clock, MessageFedClock):
            return
        if not any(topic_matches(f, topic) for f in clock.subscriptions(self.base_topic)):
            return
        try:
            changes = clock.on_message(topic, payload, arrival_mono_ns, self.read_clock.offset_ns)
        except ClockInputError as exc:
            self.refuse(topic, str(exc))
            return
        self._announce(changes)

    def _announce(self, changes: Iterable[ClockChange]) -> None:
        for change in changes:
            self.announcer.session_changed(change.kind, change.message, change.data)

    # -- switching clocks ----------------------------------------------------------------

    def install(self, clock: MediaClock | None) -> None:
        """Switch the media clock (control's clock.set): the old clock's job stops, the new one's starts,
        and a clock fed by messages gets the last message heard on each of its topics."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.session.clock = clock
        if self._running:
            self._start_job()
        for topic, (payload, arrival) in list(self._last.items()):
            self._feed(topic, payload, arrival)

    # -- the clock's background job ------------------------------------------------------

    def start(self) -> None:
        """The station runs: start the clock's background job, if it has one."""
        self._running = True
        self._start_job()

    async def stop(self) -> None:
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _start_job(self) -> None:
        clock = self.session.clock
        if isinstance(clock, RunningClock):
            self._task = asyncio.create_task(self._supervise(clock), name=f"clock:{clock.kind}")

    async def _supervise(self, clock: RunningClock) -> None:
        kind = getattr(clock, "kind", "?")

        def failed(exc: Exception) -> None:
            log.exception("media clock %s failed; restarting it", kind)
            self.announcer.event("error", None, f"media clock {kind}: {type(exc).__name__}: {exc}", {"clock": kind})

        await restart_on_failure(lambda: clock.run(self.announcer.session_changed), failed, RESTART_S)
