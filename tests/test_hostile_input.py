"""Hostile input never costs a sample (issue 13, cases 1, 2, 6, 9), on the station's parts in-process.

- Media clocks bound what they are told (position, speed, t_ns) and say on `events` what they refused;
- the dial pipeline turns every reading into a sample (null media fields when the clock cannot
  place it, an `error` event rate-limited, `media_errors` counted) or counts it as garbage;
- replies go only to `cmd/<verb>/reply` or under the reply prefix, never to the station's own topics;
- a message the broker refuses costs that message, not the connection (the publisher's pump);
- a property test: arbitrary JSON to every command verb and to the position input leaves the samples
  gapless in read time and valid against the contract's schema.

The same cases against a real Mosquitto and `daq run`: tests/test_hostile_e2e.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daq.calibration import Calibrator, RawRange
from daq.config import Calibration, PublishConfig, build_config
from daq.contract import Scale, json_schemas
from daq.exceptions import ConfigError
from daq.mediaclock.base import MAX_MEDIA_S, ClockInputError, MediaPosition, Segment, check_t_ns
from daq.mediaclock.mqtt_follow import MAX_LEAD_NS, MqttFollowClock, PositionError
from daq.mediaclock.session_clock import SessionClock
from daq.outbox.memory import MemoryOutbox
from daq.readclock import ReadClock
from daq.reading import Reading
from daq.station.broker_io import Inbound
from daq.station.dial_pipeline import DialPipeline
from daq.station.publisher import Publisher
from daq.station.reply_topics import ReplyTopics
from daq.station.session_state import SessionState
from daq.station.station import Station
from daq.timecode import FrameRate
from daq.topics import Topics
from daq.url_password import hide_in_argv, warn_password_in_url
from tests.support.outlet import RecordingOutlet

S = 1_000_000_000
R25 = FrameRate.parse("25")
TOPICS = Topics("daq", "lab-a")
SAMPLES_SCHEMA = jsonschema.Draft202012Validator(json_schemas()["payloads"]["samples"])
EVENT_SCHEMA = jsonschema.Draft202012Validator(json_schemas()["payloads"]["event"])


class Events:
    """An EventSink that keeps what it is told."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str | None, str, dict[str, object]]] = []

    def __call__(self, kind: str, dial: str | None, message: str, data: Any) -> None:
        self.got.append((kind, dial, message, dict(data)))

    def kinds(self) -> list[str]:
        return [k for k, *_ in self.got]


def pipeline(session: SessionState, events: Events, outbox: MemoryOutbox | None = None) -> DialPipeline:
    calibrator = Calibrator(Scale(min=0, max=1), Calibration(), RawRange(0, 1))
    return DialPipeline("lab-a", "p01", "b", "t", calibrator, ReadClock(), session, outbox or MemoryOutbox(), events)


class WildClock:
    """A media clock that says whatever it is set to say (or raises): what a buggy clock kind might do."""

    kind = "wild"
    rate = R25

    def __init__(self, pos: MediaPosition | None = None, error: Exception | None = None) -> None:
        self.pos, self.error = pos, error

    def position_at(self, mono_ns: int) -> MediaPosition | None:
        if self.error is not None:
            raise self.error
        return self.pos

    def current(self) -> Segment:
        return Segment(0, 0, 1.0, "running")


# -- 13.1: every reading read becomes a sample --------------------------------------------------


@pytest.mark.parametrize(
    "clock",
    [
        WildClock(MediaPosition(1e18, 25 * 10**18, "00:00:00:00")),  # a frame JSON cannot carry
        WildClock(MediaPosition(float("nan"), 0, "00:00:00:00")),
        WildClock(MediaPosition(float("inf"), 0, "00:00:00:00")),
        WildClock(MediaPosition(1.0, -1, "00:00:00:00")),
        WildClock(error=OverflowError("cannot convert float infinity to integer")),
        WildClock(error=RuntimeError("a bug")),
    ],
    ids=["huge-frame", "nan", "inf", "negative-frame", "overflow", "bug"],
)
def test_a_clock_that_cannot_place_a_reading_costs_the_media_fields_only(clock: WildClock) -> None:
    session, events, outbox = SessionState(clock), Events(), MemoryOutbox()
    pipe = pipeline(session, events, outbox)
    t0 = time.monotonic_ns()
    samples = [pipe.on_reading(Reading("position", 0.5, t0 + i * 10_000_000)) for i in range(500)]
    assert all(s is not None for s in samples)
    entries = outbox.take(1000)
    assert [orjson.loads(e.payload)["seq"] for e in entries] == list(range(500))
    for entry in entries:
        body = orjson.loads(entry.payload)
        SAMPLES_SCHEMA.validate(body)
        assert (body["media_s"], body["timecode"], body["frame"]) == (None, None, None)
    assert pipe.stats.media_errors == 500 and pipe.stats.samples == 500
    assert events.kinds() == ["error"], "one event for the first, not one per sample"
    assert events.got[0][3]["media_errors"] == 1 and "null media fields" in events.got[0][2]


def test_a_reading_that_cannot_be_a_sample_is_counted_as_garbage() -> None:
    session, events, outbox = SessionState(None), Events(), MemoryOutbox()
    pipe = pipeline(session, events, outbox)
    t0 = time.monotonic_ns()
    for raw in (float("nan"), float("inf"), 1 << 70, 0.25):
        pipe.on_reading(Reading("position", raw, t0))
    [entry] = outbox.take(10)
    assert orjson.loads(entry.payload)["raw"] == 0.25 and orjson.loads(entry.payload)["seq"] == 0
    assert (pipe.stats.garbage, pipe.stats.samples) == (3, 1)
    assert events.kinds() == ["garbage"]


def test_session_seek_beyond_the_bounds_is_refused_and_samples_keep_their_media() -> None:
    clock = SessionClock(R25)
    session, events = SessionState(clock), Events()
    pipe = pipeline(session, events)
    t0 = time.monotonic_ns()
    clock.start(mono_ns=t0)
    for media_s in (1e18, -1e18, float("nan"), float("inf"), MAX_MEDIA_S * 1.01):
        with pytest.raises(ClockInputError, match="out of range"):
            clock.seek(media_s, mono_ns=t0 + S)
    clock.seek(MAX_MEDIA_S, mono_ns=t0 + S)  # the bound itself is a position
    sample = pipe.on_reading(Reading("position", 0.5, t0 + 2 * S))
    assert sample is not None and sample["media_s"] == MAX_MEDIA_S + 1 and pipe.stats.media_errors == 0


def test_a_bad_start_timecode_does_not_stick() -> None:
    clock = SessionClock(R25)
    with pytest.raises(ValueError):
        clock.start("99:99:99:99")
    assert clock.start().media_ns == 0 and clock.start_timecode == "00:00:00:00"


# -- 13.1 / 13.6: the followed clock bounds its input --------------------------------------------


def feed(clock: MqttFollowClock, body: dict[str, Any], arrival: int, offset: int) -> list[Any]:
    return clock.feed(orjson.dumps(body), arrival, offset)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"state": "playing", "position_s": 1e18}, "position_s .* out of range"),
        ({"state": "playing", "position_s": 10, "speed": 1e300}, "speed .* out of range"),
        ({"state": "playing", "position_s": 10, "speed": 0}, "speed .* out of range"),
        ({"state": "playing", "position_s": 10, "speed": -1}, "speed .* out of range"),
        ({"state": "playing", "position_s": 10, "speed": 101}, "speed .* out of range"),
        ({"state": "playing", "position_s": "10"}, "must be a number"),
        ({"state": "playing", "position_s": 10, "t_ns": 3600 * S}, "ahead of the station's clock"),
        ({"state": "playing", "position_s": 10, "t_ns": -3600 * S}, "behind the station's clock"),
    ],
)
def test_the_followed_clock_refuses_what_is_out_of_bounds(body: dict[str, Any], match: str) -> None:
    clock = MqttFollowClock(R25)
    arrival, offset = time.monotonic_ns(), time.time_ns() - time.monotonic_ns()
    if "t_ns" in body:
        body = {**body, "t_ns": arrival + offset + body["t_ns"]}
    before = clock.current()
    with pytest.raises(PositionError, match=match):
        feed(clock, body, arrival, offset)
    assert clock.current() == before


def test_a_future_dated_position_does_not_freeze_the_followed_clock() -> None:
    """13.6: one position with t_ns an hour ahead; the real player's pause at 50 s and play at 60 s still apply."""
    clock = MqttFollowClock(R25)
    offset = time.time_ns() - time.monotonic_ns()
    t = time.monotonic_ns()
    feed(clock, {"state": "playing", "position_s": 40.0, "t_ns": t + offset}, t, offset)
    with pytest.raises(PositionError, match="ahead"):
        feed(clock, {"state": "playing", "position_s": 0.0, "t_ns": t + offset + 3600 * S}, t + S, offset)
    [pause] = feed(clock, {"state": "paused", "position_s": 50.0, "t_ns": t + 2 * S + offset}, t + 2 * S, offset)
    assert pause.kind == "clock.pause"
    [play] = feed(clock, {"state": "playing", "position_s": 60.0, "t_ns": t + 3 * S + offset}, t + 3 * S, offset)
    assert play.kind in ("clock.resume", "clock.seek")
    pos = clock.position_at(t + 4 * S)
    assert pos is not None and pos.media_s == pytest.approx(61.0)


def test_a_t_ns_seconds_ahead_counts_as_the_arrival_time_plus_the_lead() -> None:
    clock = MqttFollowClock(R25)
    offset, t = time.time_ns() - time.monotonic_ns(), time.monotonic_ns()
    feed(clock, {"state": "playing", "position_s": 10.0, "t_ns": t + offset + 3 * S}, t, offset)
    assert clock.current().mono_ns == t + MAX_LEAD_NS  # never a segment far in the future
    feed(clock, {"state": "paused", "position_s": 11.0}, t + S, offset)
    assert clock.current().state == "paused"


def test_a_frame_reported_before_it_is_presented_starts_when_it_is_presented() -> None:
    """A page reports a frame with its presentation time, a few ms ahead: samples read before then keep
    the frame still on the screen (a seek from 268 to 144: the sample read 4 ms before is still on 268)."""
    clock = MqttFollowClock(R25)
    offset, t = time.time_ns() - time.monotonic_ns(), time.monotonic_ns()
    feed(clock, {"state": "playing", "position_s": 268 / 25, "t_ns": t + offset}, t, offset)
    feed(clock, {"state": "playing", "position_s": 144 / 25, "t_ns": t + offset + 50_000_000}, t + 46_000_000, offset)
    assert clock.current().mono_ns == t + 50_000_000
    before, at = clock.position_at(t + 46_000_000), clock.position_at(t + 50_000_000)
    assert before is not None and before.frame == 269  # 46 ms on from 268 at 25 fps: still the old run
    assert at is not None and at.frame == 144


def test_a_stale_paused_position_is_stamped_on_arrival() -> None:
    """A retained "paused" from long ago is the player's last word: the time does not move a paused position."""
    clock = MqttFollowClock(R25)
    offset, t = time.time_ns() - time.monotonic_ns(), time.monotonic_ns()
    feed(clock, {"state": "paused", "position_s": 12.0, "t_ns": t + offset - 86_400 * S}, t, offset)
    assert (clock.current().state, clock.current().mono_ns) == ("paused", t)


def test_check_t_ns_allows_the_skew_bound() -> None:
    assert check_t_ns(5 * S, 0) == 5 * S
    with pytest.raises(ClockInputError):
        check_t_ns(5 * S + 1, 0)


def test_refused_positions_are_reported_on_events_rate_limited() -> None:
    config = build_config({"station": {"id": "lab-a"}, "media": {"clock": "mqtt"}, "outbox": {"memory": True}})
    station = Station(config)
    outlet = RecordingOutlet()
    station.announcer.outlet = outlet

    async def flood() -> None:
        for _ in range(200):
            bad = orjson.dumps({"state": "playing", "position_s": 1e18})
            await station.route(Inbound("daq/lab-a/media/position", bad, None, retained=False))

    asyncio.run(flood())
    refused = [e for e in outlet.bodies(TOPICS.events) if e["kind"] == "clock.refused"]
    assert len(refused) == 1 and "position_s" in str(refused[0]["message"])
    assert station.clocks.refused == 200 and station.health.payload()["media_refused"] == 200
    station.outbox.close()


# -- 13.2: where replies go ------------------------------------------------------------------------


def test_reply_topics() -> None:
    replies = ReplyTopics(TOPICS)
    assert replies.choose("mark", None) == ("daq/lab-a/cmd/mark/reply", None)
    for fine in ("daq/lab-a/cmd/mark/reply", "daq/lab-a/cmd/mark/reply/42", "daq/lab-a/replies/app/1"):
        assert replies.choose("mark", fine) == (fine, None)
    for bad in (
        "daq/lab-a/status",
        "daq/lab-a/session",
        "daq/lab-a/health",
        "daq/lab-a/events",
        "daq/lab-a/dials/sim-01/samples",
        "daq/lab-a/dials/sim-01/meta",
        "daq/lab-a/media/position",
        "daq/lab-a/cmd/session.start",
        "daq/lab-a/cmd/session.start/reply",  # another verb's reply topic
        "daq/lab-b/cmd/mark/reply",
        "app/replies",
        "daq/lab-a/replies/+",
        "daq/lab-a/replies/#",
        "$SYS/x",
        "",
        "daq/lab-a/replies/" + "x" * 70_000,
    ):
        topic, why = replies.choose("mark", bad)
        assert topic == "daq/lab-a/cmd/mark/reply" and why, bad
    custom = ReplyTopics(TOPICS, "app/replies/")
    assert custom.choose("mark", "app/replies/x") == ("app/replies/x", None)
    assert custom.choose("mark", "app/repliesx")[1] is not None  # by levels, not characters
    for covering in ("daq/", "daq/lab-a/", "daq/lab-a/dials/"):
        with pytest.raises(ConfigError, match="covers the station's own topics"):
            ReplyTopics(TOPICS, covering)


def test_a_command_with_a_forbidden_response_topic_is_not_carried_out() -> None:
    config = build_config({"station": {"id": "lab-a"}, "outbox": {"memory": True}})
    station = Station(config)
    outlet = RecordingOutlet()
    station.announcer.outlet = outlet
    request = b'{"id": 7}'
    for target in ("daq/lab-a/status", "daq/lab-a/dials/sim-01/samples", "elsewhere/x"):
        asyncio.run(station.route(Inbound("daq/lab-a/cmd/session.start", request, target, retained=False)))
    assert station.session.session_id is None, "not carried out"
    replies = outlet.bodies("daq/lab-a/cmd/session.start/reply")
    assert len(replies) == 3 and all(r["ok"] is False and r["id"] == 7 for r in replies)
    assert "one of the station's own topics" in str(replies[0]["error"]) and "not allowed" in str(replies[2]["error"])
    assert {t for t, _ in outlet.sent} == {"daq/lab-a/cmd/session.start/reply"}
    asyncio.run(station.route(Inbound("daq/lab-a/cmd/session.start", request, "daq/lab-a/replies/me", False)))
    [ok] = outlet.bodies("daq/lab-a/replies/me")
    assert ok["ok"] is True and station.session.session_id == ok["session"]
    station.outbox.close()


def test_the_shipped_acl_lets_a_station_write_its_default_reply_topics() -> None:
    from tests.test_security import acl_lines, covered

    writes = [t.replace("%u", "lab-a") for t in acl_lines("write")]
    for topic in ("daq/lab-a/replies/app/1", "daq/lab-a/cmd/mark/reply", "daq/lab-a/cmd/mark/reply/42"):
        assert any(covered(topic, acl) for acl in writes), topic


def test_reply_prefix_is_a_config_key() -> None:
    config = build_config({"station": {"id": "lab-a"}, "control": {"reply_prefix": "app/replies"}})
    assert config.control.reply_prefix == "app/replies/"
    for bad in ("", "/", "app/+", "app/#", "$SYS/x", "/app", "a//b"):
        with pytest.raises(ConfigError, match="reply_prefix"):
            build_config({"control": {"reply_prefix": bad}})


# -- 13.2: a message the broker refuses costs that message only ------------------------------------


class RefusingConnection:
    """Stands in for `mqtt.Connection` in the publisher's pump: PUBACKs come soon, refused for some topics."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.published: list[tuple[str, bytes]] = []

    def publish_nowait(self, topic: str, payload: bytes, on_ack: Any, retain: bool = False) -> None:
        if "+" in topic or "#" in topic:
            raise ValueError("Publish topic cannot contain wildcards.")
        self.published.append((topic, payload))
        asyncio.get_running_loop().call_soon(on_ack, "Not authorized" if topic in self.refuse else None)


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("daq.station.publisher.REFUSED_RETRY_S", 0.05)


def test_a_refused_message_costs_that_message_not_the_connection(fast_retry: None) -> None:
    config = build_config({"station": {"id": "lab-a"}})
    outbox = MemoryOutbox()
    publisher = Publisher(config.broker, PublishConfig(), "c", outbox, will=None)  # type: ignore[arg-type]
    told: list[tuple[str, str, int]] = []
    publisher.on_refused = lambda topic, reason, count: told.append((topic, reason, count))
    connection = RefusingConnection({"app/forbidden", "daq/lab-a/dials/d2/samples"})

    async def main() -> None:
        stop = asyncio.Event()
        publisher.send("app/forbidden", b"{}")  # a reply the ACL forbids
        publisher.send("bad/+", b"{}")  # not even a topic
        for i in range(50):
            outbox.put("d1", "daq/lab-a/dials/d1/samples", b'{"seq":%d}' % i)
            outbox.put("d2", "daq/lab-a/dials/d2/samples", b'{"seq":%d}' % i)
        publisher.send("daq/lab-a/events", b'{"after": true}')
        pump = asyncio.create_task(publisher._pump(connection, stop))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)  # a few retries of the refused samples
        stop.set()
        assert await asyncio.wait_for(pump, 5) is True

    asyncio.run(main())
    topics = [t for t, _ in connection.published]
    assert "daq/lab-a/events" in topics, "the message behind the refused ones went out"
    assert topics.count("app/forbidden") == 1, "a refused control message is not retried"
    assert publisher.stats.refused == 2 and sorted(t for t, *_ in told) == ["app/forbidden", "bad/+"]
    assert publisher.stats.samples == 50, "every sample of the allowed dial was delivered"
    assert outbox.inflight == 50 and outbox.pending == 0, "the refused samples are kept"
    assert publisher.stats.samples_refused >= 100, "and sent again after REFUSED_RETRY_S"


# -- 13.9: a password on the command line ----------------------------------------------------------


def test_a_password_in_the_broker_url_gets_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="daq"):
        assert warn_password_in_url("mqtt://lab-a:not-in-argv-xyz@broker:1883") is True
        assert warn_password_in_url("mqtt://lab-a@broker:1883") is False
    [record] = caplog.records
    assert "DAQ_BROKER_PASSWORD" in record.getMessage() and "password_file" in record.getMessage()
    assert "not-in-argv-xyz" not in caplog.text
    assert hide_in_argv("not-in-argv-xyz") is False  # nothing to mask: argv left as it is


# -- the property: arbitrary JSON anywhere, the samples stay gapless and valid ----------------------

VERBS = ("session.start", "session.stop", "session.pause", "session.resume", "session.seek", "mark", "clock.set")
KEYS = ("media_s", "position_s", "speed", "t_ns", "state", "clock", "timecode", "rate", "label", "dial", "id")
HOSTILE_NUMBERS = st.sampled_from([1e18, -1e18, 1e300, -1e300, 1e-320, 0, -1, 2**63, 2**64, 10**30, 5e-324])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | HOSTILE_NUMBERS
    | st.text(max_size=12)
    | st.sampled_from(["playing", "paused", "stopped", "session", "mqtt", "mpv", "none", "25", "00:00:10:00"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)
# Requests and positions with the keys the station reads, each value likely to be hostile.
FIELDS = HOSTILE_NUMBERS | SCALARS
TARGETED = st.sampled_from(KEYS).flatmap(lambda key: st.fixed_dictionaries({key: HOSTILE_NUMBERS}))
BODIES = st.one_of(
    TARGETED,
    st.fixed_dictionaries({"state": st.just("playing"), "position_s": HOSTILE_NUMBERS}),
    st.fixed_dictionaries({"state": st.just("playing"), "position_s": st.just(1.0), "speed": HOSTILE_NUMBERS}),
    JSON,
    st.dictionaries(st.sampled_from(KEYS), FIELDS | JSON, max_size=5),
    st.fixed_dictionaries({}, optional={key: FIELDS for key in KEYS}),
    st.fixed_dictionaries(
        {"state": st.sampled_from(["playing", "paused", "stopped"]), "position_s": FIELDS},
        optional={"speed": FIELDS, "t_ns": FIELDS | st.sampled_from([3600 * 10**9, -(3600 * 10**9)])},
    ),
)
RESPONSE_TOPICS = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.sampled_from(["daq/lab-a/status", "daq/lab-a/dials/p01/samples", "daq/lab-a/replies/x", "daq/lab-a/events"]),
)


def payload_of(body: object, mangle: int) -> bytes:
    if mangle == 1:
        return json.dumps(body, allow_nan=True).encode()[:-1]  # cut short: not JSON
    if mangle == 2:
        return b"\xff\xfe" + json.dumps(body).encode()  # not UTF-8
    return json.dumps(body, allow_nan=True).encode()  # floats may be NaN/Infinity: not JSON either


# What each target reads: a request made of those keys, each value likely hostile, hits the deep paths.
READS = {
    "session.start": ("timecode", "id"),
    "session.seek": ("media_s",),
    "mark": ("label", "dial"),
    "clock.set": ("clock", "rate", "socket", "port", "timecode"),
    "position": ("state", "position_s", "speed", "t_ns"),
}


def aimed(target: str) -> st.SearchStrategy[object]:
    keys = READS.get(target, KEYS)
    fields = st.fixed_dictionaries({}, optional={key: FIELDS for key in keys})
    if target == "position":
        fields = st.fixed_dictionaries(
            {"state": st.sampled_from(["playing", "paused", "stopped"]), "position_s": FIELDS},
            optional={"speed": FIELDS, "t_ns": FIELDS},
        )
    one_hostile: list[st.SearchStrategy[object]] = [st.fixed_dictionaries({key: HOSTILE_NUMBERS}) for key in keys]
    return st.one_of([*one_hostile, fields, BODIES])


MESSAGES = st.lists(
    st.sampled_from([*VERBS, "position", "position", "unknown.verb"]).flatmap(
        lambda target: st.tuples(
            st.just(target),
            aimed(target),
            RESPONSE_TOPICS,
            st.integers(min_value=0, max_value=5),  # 1, 2: mangled
            st.integers(min_value=1, max_value=5),  # readings before the next message
        )
    ),
    min_size=3,
    max_size=25,
)
START = st.sampled_from(["session", "mqtt", "none"])
SPACING_NS = 10_000_000  # a simulated 100 Hz dial


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=START, messages=MESSAGES)
def test_arbitrary_json_to_every_verb_and_the_position_keeps_samples_gapless_and_valid(
    start: str, messages: list[tuple[str, object, str | None, int, int]]
) -> None:
    config = build_config(
        {
            "station": {"id": "lab-a"},
            "media": {"clock": start},
            "outbox": {"memory": True},
            "dials": [{"id": "p01", "simulate": {}}],
        }
    )
    station = Station(config, boot="prop")
    outlet = RecordingOutlet()
    station.announcer.outlet = outlet
    pipe = station.pipelines["p01"]
    reads = 0
    t0 = time.monotonic_ns()

    def read(n: int) -> None:
        nonlocal reads
        for _ in range(n):
            pipe.on_reading(Reading("position", 500, t0 + reads * SPACING_NS))
            reads += 1

    async def attack() -> None:
        read(3)
        for target, body, response_topic, mangle, then in messages:
            payload = payload_of(body, mangle)
            if target == "position":
                topic, response_topic = "daq/lab-a/media/position", None
            else:
                topic = f"daq/lab-a/cmd/{target}"
            await station.route(Inbound(topic, payload, response_topic, retained=False))
            read(then)

    try:
        asyncio.run(attack())
        entries = station.outbox.take(10**6)
    finally:
        station.outbox.close()
    samples = [orjson.loads(e.payload) for e in entries]
    for sample in samples:
        SAMPLES_SCHEMA.validate(sample)
    assert [s["seq"] for s in samples] == list(range(reads)), "every reading read became one sample, no gap"
    t_ns = [s["t_ns"] for s in samples]
    assert all(b - a == SPACING_NS for a, b in itertools.pairwise(t_ns)), "read times keep their spacing"
    assert pipe.stats.garbage == 0
    for topic, payload in outlet.sent:
        assert topic == "daq/lab-a/events" or "/cmd/" in topic or topic.startswith("daq/lab-a/replies/"), topic
        assert topic not in ("daq/lab-a/status", "daq/lab-a/session") and "/dials/" not in topic, topic
        if topic == "daq/lab-a/events":
            EVENT_SCHEMA.validate(orjson.loads(payload))


def test_a_full_control_queue_drops_the_oldest_and_counts_it(caplog: pytest.LogCaptureFixture) -> None:
    """A long outage fills the queue of events and replies: the oldest go, counted and logged, never silently."""
    config = build_config({"station": {"id": "lab-a"}})
    publisher = Publisher(config.broker, PublishConfig(), "c", MemoryOutbox(), will=None)  # type: ignore[arg-type]
    room = publisher._control.maxlen
    assert room is not None
    with caplog.at_level("WARNING", logger="daq.station.publisher"):
        for i in range(room + 3):
            publisher.send("daq/lab-a/events", str(i).encode())
    assert publisher.stats.control_dropped == 3
    assert publisher._control[0][1] == b"3"  # the three oldest went
    assert [r for r in caplog.records if "control messages wait" in r.getMessage()]
