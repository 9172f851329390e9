"""Unit tests of the small parts of the data path."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daq.calibration import Calibrator, RawRange
from daq.config import Calibration, parse_broker_url
from daq.contract import Scale
from daq.ids import check_id, check_root, sanitize_id
from daq.mediaclock.session_clock import SessionClock
from daq.mqtt import Backoff
from daq.outbox.memory import MemoryOutbox
from daq.readclock import ReadClock
from daq.seqtrack import SeqTracker
from daq.station.gather import by_topic
from daq.station.publisher import REPLAY_MARK, bodies
from daq.timecode import FrameRate
from tests.support.outboxes import until_pending


def cal(scale: Scale, raw: RawRange = RawRange(0, 1000), **kw: object) -> Calibrator:
    return Calibrator(scale, Calibration.model_validate(kw), raw)


class TestCalibration:
    def test_linear_ends_and_middle(self) -> None:
        c = cal(Scale(min=-50, max=50))
        assert (c(0), c(500), c(1000)) == (-50.0, 0.0, 50.0)

    def test_invert_clamp_step(self) -> None:
        c = cal(Scale(min=1, max=9, step=1), invert=True)
        assert c(0) == 9 and c(1000) == 1 and c(1200) == 1 and c(-5) == 9
        assert cal(Scale(min=1, max=9, step=1))(560) == 5  # 5.48 snaps to 5

    def test_unclamped_goes_beyond(self) -> None:
        assert cal(Scale(min=0, max=100), clamp=False)(1100) == 110.0

    def test_center_is_mid_scale(self) -> None:
        c = cal(Scale(min=-50, max=50), center=400)
        assert (c(0), c(400), c(1000), c(700)) == (-50.0, 0.0, 50.0, 25.0)

    def test_deadband_holds_small_changes(self) -> None:
        c = cal(Scale(min=0, max=100), deadband=1.0)
        assert [c(r) for r in (500, 505, 509, 520)] == [50.0, 50.0, 50.0, 52.0]

    def test_raw_range_override_and_rounding(self) -> None:
        c = cal(Scale(min=0, max=1, step=0.1), raw_min=100, raw_max=200)
        assert c(130) == 0.3  # not 0.30000000000000004

    @given(st.integers(-5000, 5000))
    def test_clamped_values_stay_on_scale(self, raw: int) -> None:
        value = cal(Scale(min=-3, max=3))(raw)
        assert -3 <= value <= 3


class TestSeqTracker:
    def test_in_order_duplicates_gaps_and_late_fill(self) -> None:
        t = SeqTracker()
        results = [t.offer(s) for s in (0, 1, 1, 4, 2, 2, 5)]
        assert [r[0] for r in results] == [True, True, False, True, True, False, True]
        assert results[3][1] == (2, 3)
        assert t.missing == [[3, 3]] and t.missing_count == 1 and t.duplicates == 2

    @given(st.permutations(list(range(30))))
    def test_any_order_accepts_each_once(self, order: list[int]) -> None:
        t = SeqTracker()
        accepted = [s for s in order + order if t.offer(s)[0]]
        assert sorted(accepted) == list(range(30)) and t.missing == []


class TestMemoryOutbox:
    def test_requeue_puts_inflight_back_in_order_marked(self) -> None:
        async def go() -> None:
            box = MemoryOutbox()
            for i in range(5):
                box.put("d", "t", b'{"seq":%d}' % i)
            first = box.take(3)
            box.ack(first[:1])
            assert box.requeue() == 2
            again = box.take(10)
            assert [e.payload for e in again] == [b'{"seq":%d}' % i for i in (1, 2, 3, 4)]
            assert [e.replay for e in again] == [True, True, False, False]

        asyncio.run(go())

    def test_stats_count_pending_and_in_flight_and_say_not_durable(self) -> None:
        async def go() -> None:
            box = MemoryOutbox()
            for _ in range(3):
                box.put("d", "t", b"{}")
            box.take(1)
            stats = box.stats()
            assert (stats.kind, stats.pending, stats.inflight, stats.durable) == ("memory", 2, 1, False)
            assert stats.as_dict()["bytes_on_disk"] == 0

        asyncio.run(go())

    def test_notify_wakes_when_something_is_put(self) -> None:
        async def go() -> float:
            box = MemoryOutbox()
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, box.put, "d", "t", b"{}")
            t0 = time.monotonic()
            await asyncio.wait_for(until_pending(box), 2)
            return time.monotonic() - t0

        assert asyncio.run(go()) < 1.0


class TestPublisherParts:
    def test_batches_group_by_topic_keep_order_and_mark_replays(self) -> None:
        box = MemoryOutbox()
        for i in range(5):
            box.put("a", "ta", b'{"s":%d}' % i)
            box.put("b", "tb", b'{"s":%d}' % i)
        entries = box.take(100)
        entries[0].replay = True
        out = bodies(by_topic(entries), 3)
        assert [(t, len(e)) for t, _, e in out] == [("ta", 3), ("ta", 2), ("tb", 3), ("tb", 2)]
        assert out[0][1] == b'[{"s":0' + REPLAY_MARK + b',{"s":1},{"s":2}]'
        assert out[3][1] == b'[{"s":3},{"s":4}]'
        single = bodies(by_topic(box.take(1) or entries[:1]), 1)
        assert not single[0][1].startswith(b"[")

    def test_backoff_is_jittered_and_capped(self) -> None:
        b = Backoff(first_s=0.1, max_s=2.0)
        delays = [b.delay(n) for n in range(10)]
        assert all(0.05 <= d <= 2.0 for d in delays)
        assert max(delays[6:]) > 0.9  # grows towards the cap


class TestUrlsAndIds:
    def test_broker_urls(self) -> None:
        a = parse_broker_url("mqtts://user:p%40ss@broker.lab:9999")
        assert (a.host, a.port, a.tls, a.username) == ("broker.lab", 9999, True, "user")
        assert a.password is not None and a.password.get_secret_value() == "p@ss"
        assert "p@ss" not in a.display()
        assert parse_broker_url("mqtt://h").port == 1883
        for bad in ("http://h", "mqtt://", "mqtt://h:99999", "mqtt://h/x", "localhost:1883"):
            with pytest.raises(ValueError):
                parse_broker_url(bad)

    def test_ids_and_roots(self) -> None:
        assert check_id("lab-a.1_x") == "lab-a.1_x"
        for bad in ("a/b", "a+b", "#", "a b", "", "p1\n"):
            with pytest.raises(ValueError):
                check_id(bad)
        assert check_root("daq/site1") == "daq/site1"
        for bad in ("daq/", "/daq", "daq/+", "daq/#", "daq\n"):
            with pytest.raises(ValueError):
                check_root(bad)
        assert sanitize_id("My Lab PC.local") == "My-Lab-PC.local"


class TestClocks:
    def test_session_clock_pause_seek_by_read_time(self) -> None:
        clock = SessionClock(FrameRate.parse("25"))
        t0 = time.monotonic_ns()
        clock.start(mono_ns=t0)
        clock.pause(mono_ns=t0 + 2_000_000_000)
        clock.seek(10.0, mono_ns=t0 + 3_000_000_000)
        clock.resume(mono_ns=t0 + 4_000_000_000)
        at = clock.position_at
        p1, p2, p3, p4 = at(t0 + 1_000_000_000), at(t0 + 2_500_000_000), at(t0 + 3_500_000_000), at(t0 + 5_000_000_000)
        assert p1 is not None and p1.media_s == 1.0 and p1.timecode == "00:00:01:00"
        assert p2 is not None and p2.media_s == 2.0  # paused: a late-processed reading keeps its moment
        assert p3 is not None and p3.media_s == 10.0
        assert p4 is not None and p4.media_s == 11.0 and p4.frame == 275
        clock.stop(mono_ns=t0 + 6_000_000_000)
        assert at(t0 + 7_000_000_000) is None

    def test_start_timecode_sets_position(self) -> None:
        clock = SessionClock(FrameRate.parse("29.97df"), "00:10:00;00")
        t0 = time.monotonic_ns()
        clock.start(mono_ns=t0)
        pos = clock.position_at(t0)
        assert pos is not None and pos.frame == 17982 and pos.timecode == "00:10:00;00"

    def test_read_clock_maps_monotonic_to_wall(self) -> None:
        rc = ReadClock()
        mono = time.monotonic_ns()
        assert abs(rc.wall_ns(mono) - time.time_ns()) < 50_000_000
        assert rc.mono_ns(rc.wall_ns(mono)) == mono
        assert rc.check() is None


def test_session_clock_starts_on_the_frame_it_was_given() -> None:
    for rate, label in (("29.97df", "00:00:00;01"), ("23.976", "00:00:10:05"), ("59.94df", "00:10:00;00")):
        clock = SessionClock(FrameRate.parse(rate), label)
        t0 = time.monotonic_ns()
        clock.start(mono_ns=t0)
        pos = clock.position_at(t0)
        assert pos is not None
        assert pos.timecode == label, rate
