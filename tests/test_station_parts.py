"""The station's parts on their own: session ids by read time, message routing, health, the wiring rule."""

from __future__ import annotations

import ast
import asyncio
import logging
import time
from pathlib import Path

import orjson
import pytest

from daq.calibration import Calibrator, RawRange
from daq.commands.status import render
from daq.config import Calibration, build_config
from daq.contract import Event, Meta, Scale, Session, Status
from daq.exceptions import DeviceGone
from daq.mediaclock.base import ClockChange, ClockInputError, MediaPosition, Segment
from daq.mediaclock.mqtt_follow import MqttFollowClock
from daq.mediaclock.session_clock import SessionClock
from daq.outbox.disk import DiskOutbox
from daq.outbox.memory import MemoryOutbox
from daq.profiles.decode import make_decoder
from daq.profiles.loader import ProfileRegistry
from daq.readclock import ReadClock
from daq.reading import Chunk, Decoded, Reading
from daq.station.announcer import Announcer
from daq.station.broker_io import Inbound
from daq.station.clock_stage import ClockStage, topic_matches
from daq.station.control import StationControl
from daq.station.device_reader import DeviceReader
from daq.station.dial_pipeline import DialPipeline, DialStats
from daq.station.health import HealthReporter
from daq.station.payloads import StationIdentity
from daq.station.session_state import SessionState
from daq.station.station import Station
from daq.timecode import FrameRate
from daq.topics import Topics
from daq.transports.inbox import Inbox, Sink
from daq.transports.reader_host import ReaderDied
from tests.support.outlet import RecordingOutlet
from tests.support.polling import until
from tests.support.scripted import ScriptedTransport

S = 1_000_000_000
R25 = FrameRate.parse("25")
WHO = StationIdentity("lab-a", "b", ("p01",))
TOPICS = Topics("daq", "lab-a")
DAQ = Path(__file__).resolve().parent.parent / "daq"


def pipeline(session: SessionState, outbox: MemoryOutbox | None = None) -> DialPipeline:
    calibrator = Calibrator(Scale(min=0, max=1), Calibration(), RawRange(0, 1))
    return DialPipeline("lab-a", "p01", "b", "t", calibrator, ReadClock(), session, outbox or MemoryOutbox())


def sample_of(pipe: DialPipeline, reading: Reading) -> dict[str, object]:
    """The sample `reading` became (every reading here is a good one: none is garbage)."""
    sample = pipe.on_reading(reading)
    assert sample is not None
    return sample


# -- the session a sample carries: that of its read time ----------------------------------


def test_a_reading_keeps_the_session_it_was_read_in() -> None:
    session = SessionState(SessionClock(R25))
    pipe = pipeline(session)
    t0 = time.monotonic_ns()
    first = session.start(time.time_ns(), mono_ns=t0 + S)
    before_start = sample_of(pipe, Reading("position", 0.5, t0))  # read before the start, processed after
    in_first = sample_of(pipe, Reading("position", 0.5, t0 + 2 * S))
    session.stop(mono_ns=t0 + 3 * S)
    second = session.start(time.time_ns(), mono_ns=t0 + 4 * S)
    late = sample_of(pipe, Reading("position", 0.5, t0 + 3 * S - 1))  # read in the first, processed in the second
    between = sample_of(pipe, Reading("position", 0.5, t0 + 3 * S + 1))
    now = sample_of(pipe, Reading("position", 0.5, t0 + 5 * S))
    assert (before_start["session"], before_start["media_s"]) == (None, None)
    assert (in_first["session"], in_first["media_s"]) == (first, 1.0)
    assert (late["session"], late["media_s"]) == (first, 2.0 - 1e-9)
    assert (between["session"], between["media_s"]) == (None, None)
    assert (now["session"], now["media_s"]) == (second, 1.0)
    assert first != second and session.session_id == second


def test_a_reading_taken_before_session_start_is_not_in_the_session() -> None:
    """The bug this guards: the session id was read when a sample was processed, not when it was read."""
    config = build_config({"station": {"id": "lab-a"}})
    outlet, read_clock = RecordingOutlet(), ReadClock()
    session = SessionState(SessionClock(R25))
    announcer = Announcer(outlet, WHO, TOPICS, read_clock, session, {})
    control = StationControl(announcer, session, read_clock, config.media, lambda clock: None)
    pipe = pipeline(session)
    read_before = Reading("position", 0.5, time.monotonic_ns())
    reply = asyncio.run(control.handle("session.start", {}))
    read_after = Reading("position", 0.5, time.monotonic_ns())
    assert reply["ok"] and reply["session"]
    assert sample_of(pipe, read_before)["session"] is None
    assert sample_of(pipe, read_after)["session"] == reply["session"]
    read_in_session = Reading("position", 0.5, time.monotonic_ns())
    assert asyncio.run(control.handle("session.stop", {}))["session"] == reply["session"]
    assert sample_of(pipe, read_in_session)["session"] == reply["session"]
    assert sample_of(pipe, Reading("position", 0.5, time.monotonic_ns()))["session"] is None


# -- what the announcer publishes: the contract's payloads ---------------------------------


def test_announcer_payloads_are_the_contract_models() -> None:
    outlet, read_clock = RecordingOutlet(), ReadClock()
    session = SessionState(SessionClock(R25))
    meta = {"p01": {"profile": "simulated", "transport": "simulated", "scale": {"min": 0, "max": 1}, "rate_hz": None}}
    announcer = Announcer(outlet, WHO, TOPICS, read_clock, session, meta)
    session.start(read_clock.now_ns())
    announcer.session_changed("session.start", "session started", {"timecode": None})
    announcer.meta("p01", True)
    announcer.reply("mark", {"ok": True}, None)
    announcer.reply("mark", {"ok": True}, "app/replies/1")
    [event] = outlet.bodies(TOPICS.events)
    Event.model_validate(event)
    assert (event["kind"], event["dial"], event["data"]) == ("session.start", None, {"timecode": None})
    body = Session.model_validate_json(outlet.retained[TOPICS.session])
    assert body.session == session.session_id and body.clock.state == "running"
    dial = Meta.model_validate_json(outlet.retained[TOPICS.meta("p01")])
    assert dial.connected and dial.rate_hz is None and dial.scale.max == 1
    assert [t for t, _ in outlet.sent[1:]] == [TOPICS.cmd_reply("mark"), "app/replies/1"]


def test_status_will_has_no_time_and_the_guard_puts_online_back() -> None:
    config = build_config({"station": {"id": "lab-a"}, "dials": [{"id": "p01", "simulate": {}}]})
    station = Station(config, boot="b1")
    outlet = RecordingOutlet()
    station.status.outlet = outlet
    will = orjson.loads(station.publisher.will.payload)
    assert "t_ns" not in will and (will["state"], will["reason"], will["dials"]) == ("offline", "lost", ["p01"])
    Status.model_validate(will)
    station.status.go_online()
    lost = {**will, "boot": "b0"}
    asyncio.run(station.route(Inbound(TOPICS.status, orjson.dumps(lost), None, retained=True)))  # an earlier run's
    assert len(outlet.retained) == 1
    outlet.retained.clear()
    asyncio.run(station.route(Inbound(TOPICS.status, orjson.dumps(lost), None, retained=False)))  # a late will
    assert orjson.loads(outlet.retained[TOPICS.status])["state"] == "online"


# -- routing: commands to control, a clock's topics to the clock ---------------------------


def test_station_routes_positions_to_the_clock_and_commands_to_control() -> None:
    config = build_config(
        {"station": {"id": "lab-a"}, "media": {"clock": "mqtt"}, "dials": [{"id": "p01", "simulate": {}}]}
    )
    station = Station(config)
    assert station.publisher.subscriptions == ("daq/lab-a/cmd/+", "daq/lab-a/media/position", "daq/lab-a/status")
    outlet = RecordingOutlet()
    station.announcer.outlet = outlet
    position = orjson.dumps({"position_s": 10.0, "state": "playing"})
    asyncio.run(station.route(Inbound("daq/lab-a/media/position", position, None, retained=False)))
    clock = station.session.clock
    assert isinstance(clock, MqttFollowClock) and clock.current().state == "running"
    assert [e["kind"] for e in outlet.bodies(TOPICS.events)] == ["clock.found"]
    mark = b'{"label": "x", "id": 3}'
    asyncio.run(station.route(Inbound("daq/lab-a/cmd/mark", mark, "daq/lab-a/replies/r", retained=False)))
    [reply] = outlet.bodies("daq/lab-a/replies/r")
    assert reply["ok"] and reply["id"] == 3 and reply["media_s"] is not None


class ToyClock:
    """A clock that follows two topics of its own: what a new message-fed clock kind declares."""

    kind = "toy"

    def __init__(self) -> None:
        self.heard: list[tuple[str, bytes]] = []
        self.rate = R25

    def subscriptions(self, base_topic: str) -> tuple[str, ...]:
        return (f"{base_topic}/toy/+", f"{base_topic}/toy-all/#")

    def on_message(self, topic: str, payload: bytes, arrival_mono_ns: int, wall_offset_ns: int) -> list[ClockChange]:
        if payload == b"bad":
            raise ClockInputError("bad")
        self.heard.append((topic, payload))
        return [ClockChange("clock.toy", topic)]

    def position_at(self, mono_ns: int) -> MediaPosition | None:
        return None

    def current(self) -> Segment:
        return Segment(0, 0, 1.0, "lost")


def test_clock_stage_routes_by_the_clocks_subscriptions_and_replays_on_switch() -> None:
    outlet, read_clock = RecordingOutlet(), ReadClock()
    session = SessionState(SessionClock(R25))
    announcer = Announcer(outlet, WHO, TOPICS, read_clock, session, {})
    toy_topics = ToyClock().subscriptions(TOPICS.base)
    stage = ClockStage(session, announcer, read_clock, TOPICS.base, toy_topics)
    assert stage.follows("daq/lab-a/toy/a") and stage.follows("daq/lab-a/toy-all/x/y")
    assert not stage.follows("daq/lab-a/toy/a/b") and not stage.follows("daq/lab-a/cmd/mark")
    stage.on_message("daq/lab-a/toy/a", b"1", 1)  # heard on the session clock: kept
    stage.on_message("daq/lab-a/toy/b", b"2", 2)
    stage.on_message("daq/lab-a/toy/a", b"3", 3)
    toy = ToyClock()
    stage.install(toy)  # a clock by its shape alone: no base class
    assert toy.heard == [("daq/lab-a/toy/b", b"2"), ("daq/lab-a/toy/a", b"3")]  # the last of each, in order
    stage.on_message("daq/lab-a/toy-all/x", b"bad", 4)  # refused: counted and reported, not raised
    stage.on_message("daq/lab-a/toy-all/x", b"4", 5)
    assert toy.heard[-1] == ("daq/lab-a/toy-all/x", b"4")
    kinds = [e["kind"] for e in outlet.bodies(TOPICS.events)]
    assert kinds == ["clock.toy", "clock.toy", "clock.refused", "clock.toy"]
    assert stage.refused == 1
    assert TOPICS.session in outlet.retained


def test_topic_matches() -> None:
    assert topic_matches("a/+/c", "a/b/c") and topic_matches("a/#", "a/b/c") and topic_matches("a/#", "a")
    assert not topic_matches("a/+", "a/b/c") and not topic_matches("a/b", "a/c")


# -- health: the outbox through its protocol -----------------------------------------------


class Broker:
    connected, connects, messages, samples, last_error = True, 3, 10, 8, ""
    refused, samples_refused, control_dropped = 1, 2, 0


def test_health_reads_the_outbox_through_its_stats(tmp_path: Path) -> None:
    stats = {"p01": DialStats(samples=4, connected=True, reconnects=1)}
    memory = MemoryOutbox()
    memory.put("p01", "t", b"{}")
    outlet = RecordingOutlet()
    health = HealthReporter(WHO, ReadClock(), stats, memory, Broker(), outlet, TOPICS.health)
    body = health.payload()
    assert body["outbox"] == {
        "kind": "memory",
        "pending": 1,
        "inflight": 0,
        "dropped": 0,
        "degraded": False,
        "bytes_on_disk": 0,
        "recovered": 0,
    }
    assert body["broker"]["reconnects"] == 2 and body["dials"]["p01"]["samples"] == 4
    assert (body["broker"]["refused"], body["broker"]["samples_refused"]) == (1, 2)
    assert body["dials"]["p01"]["media_errors"] == 0 and body["media_refused"] == 0
    disk = DiskOutbox(tmp_path / "outbox")
    try:
        disk.put("p01", "t", b"{}")
        health.outbox = disk
        health.publish()
        outbox = orjson.loads(outlet.retained[TOPICS.health])["outbox"]
        assert (outbox["kind"], outbox["pending"]) == ("disk", 1) and outbox["bytes_on_disk"] > 0
    finally:
        disk.close()


def test_a_failing_station_job_is_logged_announced_and_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The health and read-clock jobs run under supervision: a failure never ends them silently."""
    monkeypatch.setattr("daq.station.station.RESTART_S", 0.01)
    config = build_config({"station": {"id": "lab-a"}, "dials": [{"id": "p01", "simulate": {}}]})
    station = Station(config, boot="b1")
    outlet = RecordingOutlet()
    station.announcer.outlet = outlet
    runs = []

    async def job() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("disk on fire")

    asyncio.run(station._keep_running("health", job))
    assert len(runs) == 2  # restarted after the failure, then ended normally
    events = [orjson.loads(p) for t, p in outlet.sent if t == TOPICS.events]
    assert [(e["kind"], e["message"]) for e in events] == [("error", "health: RuntimeError: disk on fire")]
    station.outbox.close()


class BothChannels:
    """The decoder of a device with a jog wheel and a ring: every chunk is one reading of each."""

    def feed(self, chunk: Chunk) -> list[Decoded]:
        return [Reading("jog", 1, chunk.mono_ns), Reading("ring", 2, chunk.mono_ns)]

    ignored = 0

    def reset(self, *, after_gap: bool = False) -> bytes:
        return b""


def test_readings_on_a_channel_no_dial_is_configured_for_are_counted_in_health(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only the jog wheel has a dial: the ring's readings are counted per device (`unrouted`), the first logged."""
    jog = pipeline(SessionState(SessionClock(R25)))

    async def main() -> None:
        events: list[str] = []
        reader = DeviceReader(
            ScriptedTransport([[Chunk(b"x", k)] for k in range(3)], "fake:shuttle"),
            BothChannels(),
            {"jog": jog},
            lambda k, d, m, data: events.append(k),
            lambda d, c: None,
        )
        task = asyncio.create_task(reader.run())
        while jog.stats.samples < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="daq.station.device_reader"):
        asyncio.run(asyncio.wait_for(main(), 5))
    assert (jog.stats.samples, jog.stats.extra["unrouted"]) == (3, 3)
    said = [r.getMessage() for r in caplog.records if "unrouted" in r.getMessage()]
    assert len(said) == 1 and "'ring'" in said[0] and "fake:shuttle" in said[0]
    health = HealthReporter(WHO, ReadClock(), {"p01": jog.stats}, MemoryOutbox(), Broker(), RecordingOutlet(), "t")
    assert health.payload()["dials"]["p01"]["unrouted"] == 3


def test_the_common_line_shortcut_makes_the_samples_and_counts_feed_makes() -> None:
    """A device reader hands a chunk that is one whole good line straight to its pipeline
    (LineDecoder.quick, DialPipeline.on_value); everything else goes through feed. The samples
    (bytes), garbage, discards and counts must be what feed alone gives, and the shortcut taken."""
    chunks = [b"12", b"\n", b"100\n", b"t,5,200\r\n", b"300\n400\n", b"50", b"0\n", b"Ready\n"]
    chunks += [b"9999\n", b"\xff\n", b"12a\n", b"601\n", b"\n", b"t,1,4095\n", b"4096\n", b"7\n"]

    base = time.monotonic_ns()
    session = SessionState(SessionClock(R25))
    session.start(time.time_ns(), mono_ns=base)
    read_clock = ReadClock()

    def run(shortcut: bool) -> tuple[list[bytes], DialStats, int, int]:
        outbox = MemoryOutbox()
        calibrator = Calibrator(Scale(min=0, max=1), Calibration(), RawRange(0, 4095))
        pipe = DialPipeline("lab-a", "p01", "b", "t", calibrator, read_clock, session, outbox)
        decoder = make_decoder(ProfileRegistry.load([]).get("teensy-fast"))  # discards its first line
        feeds = 0
        feed = decoder.feed

        def counted(chunk: Chunk) -> list[Decoded]:
            nonlocal feeds
            feeds += 1
            return feed(chunk)

        decoder.feed = counted  # type: ignore[method-assign]
        reader = DeviceReader(
            ScriptedTransport([], "fake:teensy"), decoder, {"position": pipe}, lambda *a: None, lambda *a: None
        )
        assert reader._quick is not None
        if not shortcut:
            reader._quick = None

        async def main() -> None:
            for i, data in enumerate(chunks):
                reader._take([Chunk(data, base + 41_000_000 * i)])

        asyncio.run(main())
        return [e.payload for e in outbox.take(100)], pipe.stats, reader.losses.discarded, feeds

    quick, slow = run(True), run(False)
    assert quick[0] == slow[0] and len(quick[0]) == 8  # 100, 200, 300, 400, 500, 601, 4095, 7
    samples = [orjson.loads(p) for p in quick[0]]
    assert [s["raw"] for s in samples] == [100, 200, 300, 400, 500, 601, 4095, 7]
    assert [s["frame"] for s in samples] == [2, 3, 4, 4, 6, 11, 13, 15]  # placed by each chunk's read time
    assert (quick[1].samples, quick[1].garbage) == (slow[1].samples, slow[1].garbage) == (8, 4)  # 9999 \xff 12a 4096
    assert quick[2] == slow[2] == 1  # the first line ("12"), discarded and counted both ways
    assert slow[3] == len(chunks) and quick[3] == len(chunks) - 5  # 100, 200, 601, 4095, 7 took the shortcut


def test_a_shortcut_that_raises_is_said_once_and_its_chunks_still_become_samples(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipe = pipeline(SessionState(SessionClock(R25)))
    decoder = make_decoder(ProfileRegistry.load([]).get("teensy-fast"), synced=True)

    def broken(data: bytes) -> int | None:
        raise IndexError("a bug")

    decoder.quick = broken
    reader = DeviceReader(
        ScriptedTransport([], "fake:teensy"), decoder, {"position": pipe}, lambda *a: None, lambda *a: None
    )
    assert reader._quick is not None

    async def main() -> None:
        for i in range(3):
            reader._take([Chunk(b"%d\n" % i, time.monotonic_ns())])

    with caplog.at_level(logging.ERROR, logger="daq.station.device_reader"):
        asyncio.run(main())
    assert pipe.stats.samples == 3 and pipe.stats.garbage == 0  # fed instead: nothing lost
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "IndexError: a bug" in said[0] and "fake:teensy" in said[0]
    assert reader._quick is None


class Resets:
    ignored = 0

    def __init__(self) -> None:
        self.resets = 0  # afresh (an open)
        self.gaps = 0  # after a gap (the stream goes on)

    def feed(self, chunk: Chunk) -> list[Decoded]:
        return []

    def reset(self, *, after_gap: bool = False) -> bytes:
        if after_gap:
            self.gaps += 1
        else:
            self.resets += 1
        return b""


class DiesThenFails:
    """Its reader process dies (ReaderDied); reopening it then fails with something unexpected."""

    describe = "fake:serial"

    def __init__(self, decoder: Resets) -> None:
        self.decoder = decoder
        self.opens: list[int] = []  # the decoder's resets at each open

    async def open(self) -> None:
        self.opens.append(self.decoder.resets)
        if len(self.opens) > 1:
            raise OSError("no more")

    async def read(self) -> list[Chunk]:
        raise ReaderDied("fake:serial: the serial reader process was killed by SIGKILL")

    async def close(self) -> None:
        pass


def test_reader_died_keeps_the_decoder_until_a_reopen_fails() -> None:
    """ReaderDied: the stream lives on, the decoder is told of a gap, not reset afresh; an open that
    fails otherwise (the port may be opened afresh next time) resets it."""
    decoder = Resets()
    transport = DiesThenFails(decoder)
    reader = DeviceReader(transport, decoder, {}, lambda k, d, m, data: None, lambda d, c: None)
    with pytest.raises(OSError, match="no more"):
        asyncio.run(asyncio.wait_for(reader.run(), 5))
    assert transport.opens == [0, 0] and decoder.resets == 1 and decoder.gaps == 1


class GoesAway(ScriptedTransport):
    """Hands over its reads, then the device is gone (once); after that it waits, as ScriptedTransport."""

    gone = False

    async def read(self) -> list[Chunk]:
        if not self.reads and not self.gone:
            self.gone = True
            raise DeviceGone("fake:teensy: unplugged")
        return await super().read()


def test_a_line_cut_by_an_unplug_is_discarded_and_counted_not_dropped_unsaid() -> None:
    """The device goes away after "100\n5": the decoder starts afresh at the reopen, and the "5" it
    held is discarded, counted (health's `discarded`) and said (input.discarded), not dropped."""
    pipe = pipeline(SessionState(SessionClock(R25)))
    events: list[tuple[str, str]] = []
    now = time.monotonic_ns()
    transport = GoesAway([[Chunk(b"100\n", now), Chunk(b"5", now + 1)]], "fake:teensy")
    decoder = make_decoder(ProfileRegistry.load([]).get("teensy-fast"), synced=True)

    async def main() -> None:
        discarded = asyncio.Event()

        def on_event(kind: str, dial: str | None, message: str, data: object) -> None:
            events.append((kind, message))
            if kind == "input.discarded":
                discarded.set()

        reader = DeviceReader(transport, decoder, {"position": pipe}, on_event, lambda *a: None)
        task = asyncio.create_task(reader.run())
        try:
            await asyncio.wait_for(discarded.wait(), 5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert pipe.stats.samples == 1 and pipe.stats.extra.get("discarded") == 1
    (said,) = [message for kind, message in events if kind == "input.discarded"]
    assert "before it went away" in said


class ClosesWithMore(ScriptedTransport):
    """Its chunks come through a real Inbox; as it closes, its reader hands over two more lines and a
    line's start (as the reader process does, letting go of the port), then the inbox ends."""

    def __init__(self) -> None:
        super().__init__([], "fake:teensy")
        self.inbox: Inbox | None = None
        self.read_at_close = 0

    async def open(self) -> None:
        self.inbox = Inbox()
        self.inbox.put(Chunk(b"100\n", time.monotonic_ns()))

    async def deliver_to(self, sink: Sink) -> None:
        assert self.inbox is not None
        await self.inbox.deliver_to(sink)

    async def close(self) -> None:
        if self.inbox is not None:
            for data in (b"200\n", b"300\n", b"4"):
                self.inbox.put(Chunk(data, time.monotonic_ns()))
            self.read_at_close += self.inbox.end(self.describe)
            self.inbox = None


def test_what_a_stopping_reader_hands_over_at_close_becomes_samples() -> None:
    """The station stops (the reader task is cancelled): the lines the transport hands over as it
    closes are decoded, not counted as lost unread; the line's start left is discarded and said."""
    pipe = pipeline(SessionState(SessionClock(R25)))
    transport = ClosesWithMore()
    events: list[tuple[str, str]] = []
    decoder = make_decoder(ProfileRegistry.load([]).get("teensy-fast"), synced=True)
    reader = DeviceReader(
        transport, decoder, {"position": pipe}, lambda k, d, m, data: events.append((k, m)), lambda *a: None
    )

    async def main() -> None:
        task = asyncio.create_task(reader.run())
        await until(lambda: pipe.stats.samples >= 1, "the first sample")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(main(), 5))
    assert pipe.stats.samples == 3 and transport.read_at_close == 0
    assert pipe.stats.extra.get("discarded") == 1
    assert any(k == "input.discarded" and "as the station stopped" in m for k, m in events)


class QuietBroker(Broker):
    refused, samples_refused, control_dropped = 0, 0, 0


def test_daq_status_shows_the_trouble_counters_of_health_only_when_not_zero() -> None:
    quiet = DialStats(samples=4, connected=True, reconnects=1)
    noisy = DialStats(samples=9, connected=True, reconnects=1, media_errors=2, extra={"discarded": 3, "device_lost": 4})
    outlet = RecordingOutlet()
    health = HealthReporter(WHO, ReadClock(), {"p01": quiet}, MemoryOutbox(), QuietBroker(), outlet, TOPICS.health)
    text = render({"lab-a": {"status": {"state": "online", "boot": "b"}, "health": health.payload()}})
    for word in ("discarded", "lost by the device", "media errors", "refused"):
        assert word not in text
    health = HealthReporter(
        WHO, ReadClock(), {"p01": quiet, "p02": noisy}, MemoryOutbox(), Broker(), outlet, TOPICS.health, lambda: 5
    )
    lines = render({"lab-a": {"status": {"state": "online", "boot": "b"}, "health": health.payload()}}).splitlines()
    broker = next(line for line in lines if line.startswith("  broker:"))
    assert "1 messages refused (dropped), 2 sample refusals (kept, sent again)" in broker
    assert "  media clock: 5 inputs refused" in lines
    p01, p02 = (next(line for line in lines if line.startswith(f"  {d}:")) for d in ("p01", "p02"))
    assert "discarded" not in p01 and "media errors" not in p01
    assert "0 garbage, 3 discarded, 4 lost by the device, 2 media errors, 0 reconnects" in p02


# -- the wiring rule: no part holds a Station ------------------------------------------------


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_part_of_the_station_imports_the_station() -> None:
    holders = sorted(str(p.relative_to(DAQ)) for p in DAQ.rglob("*.py") if "daq.station.station" in imports_of(p))
    # the commands that run one, and the rating sitting (daq rate) that drives its session and clock
    assert holders == ["commands/demo.py", "commands/rate.py", "commands/run.py", "study/rate.py"]


def test_simulated_dials_read_on_one_grid_whatever_their_open_times(monkeypatch: pytest.MonkeyPatch) -> None:
    # Opened 7 ms apart, two 50 Hz simulated dials read at the same instants (their period's grid),
    # so a station wakes once a period for both; each on its own open time, the second came 7 ms later.
    # On a clock of the test's own (each sleep 0.2 ms late, as a loaded machine's), so no load moves it.
    from types import SimpleNamespace

    import daq.transports.simulated as simulated

    period, late = 20_000_000, 200_000
    now = [1_000_000_000_000 + 3_000_000]  # 3 ms past a grid point

    async def sleep(seconds: float) -> None:
        now[0] += round(seconds * 1e9) + late
        await asyncio.sleep(0)

    monkeypatch.setattr(simulated, "time", SimpleNamespace(monotonic_ns=lambda: now[0]))
    monkeypatch.setattr(simulated, "asyncio", SimpleNamespace(sleep=sleep))

    async def go() -> list[int]:
        a, b = simulated.SimulatedTransport("a", 50.0), simulated.SimulatedTransport("b", 50.0)
        await a.open()
        now[0] += 7_000_000
        await b.open()
        await a.read()
        await b.read()  # each the grid point it opened in (at once)
        stamps = []
        for _ in range(3):
            stamps += [(await a.read())[0].mono_ns, (await b.read())[0].mono_ns]
        return stamps

    stamps = asyncio.run(go())
    assert len(set(stamps[0::2])) == 3, stamps  # three periods read
    for i in range(0, len(stamps), 2):
        assert stamps[i + 1] == stamps[i], stamps  # b read at a's instant, not 7 ms later
        assert abs(stamps[i] % period - late) <= 1_000, stamps  # on the 20 ms grid, as late as the sleep
