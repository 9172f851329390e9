"""`daq watch` without a browser: the bridge's state (decimation, gaps, group mean and SD), its wire
form, and the web server's routes through aiohttp's own test client."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

import daq.subscribers.watch
from daq.cli import main
from daq.config import BrokerConfig
from daq.subscribers.watch.bridge import WatchBridge
from daq.subscribers.watch.state import StationState, WatchState, media_at, timebase
from daq.subscribers.watch.trace import DialTrace, GroupMean, mean_sd

S = 1_000_000_000
T0 = 1_795_000_000 * S


def feed(
    trace: DialTrace,
    seqs: range | list[int],
    media0: float = 0.0,
    rate: float = 20.0,
    boot: str = "b1",
    value: Any = None,
) -> None:
    for seq in seqs:
        v = float(seq) if value is None else value(seq)
        trace.add(boot, seq, T0 + int(seq / rate * S), media0 + seq / rate, v)


def sample(
    seq: int, value: float, media_s: float | None, boot: str = "b1", t_ns: int | None = None, dial: str = "d1"
) -> dict[str, Any]:
    return {
        "v": 1,
        "station": "lab",
        "dial": dial,
        "session": "s",
        "boot": boot,
        "seq": seq,
        "t_ns": t_ns if t_ns is not None else T0 + int((media_s or 0) * S),
        "media_s": media_s,
        "timecode": None,
        "frame": None,
        "value": value,
        "raw": value,
    }


# -- decimation ----------------------------------------------------------------------------


def test_samples_are_decimated_into_media_bins_as_their_mean() -> None:
    trace = DialTrace(bin_s=0.25)
    feed(trace, range(20))  # 1 s at 20 Hz: media 0.00 .. 0.95, values 0..19
    assert [p.bin for p in trace.points] == [0, 1, 2, 3]
    assert [p.n for p in trace.points] == [5, 5, 5, 5]
    assert [p.y for p in trace.points] == pytest.approx([2, 7, 12, 17])  # mean of 0..4, 5..9, ...
    assert [p.x for p in trace.points] == pytest.approx([0.125, 0.375, 0.625, 0.875])  # bin centres
    assert not any(p.brk for p in trace.points)
    assert trace.samples == 20 and trace.last_value == 19


def test_a_paused_clock_collects_its_samples_in_one_bin() -> None:
    trace = DialTrace(bin_s=0.25)
    for seq in range(40):  # 2 s of samples while the media position stays at 10.0
        trace.add("b1", seq, T0 + seq * S // 20, 10.0, 50.0 + seq % 2)
    assert len(trace.points) == 1 and trace.points[0].n == 40
    assert trace.points[0].y == pytest.approx(50.5)


# -- gaps ----------------------------------------------------------------------------------


def test_a_seq_jump_is_a_gap_and_breaks_the_trace() -> None:
    trace = DialTrace(bin_s=0.25)
    feed(trace, [*range(10), *range(15, 25)])  # seq 10..14 lost
    assert [(g.first, g.last, g.count) for g in trace.gaps] == [(10, 14, 5)]
    assert trace.missing == 5
    breaks = [p for p in trace.points if p.brk]
    assert len(breaks) == 1 and breaks[0].x == pytest.approx(0.875)  # media 15/20 = 0.75 starts bin 3


def test_a_lost_sample_inside_one_bin_still_breaks_the_line() -> None:
    trace = DialTrace(bin_s=0.25)
    feed(trace, [0, 1, 3, 4])  # all in bin 0; seq 2 lost
    assert len(trace.points) == 2 and trace.points[1].brk and trace.points[1].bin == 0


def test_duplicates_are_dropped_by_boot_and_seq() -> None:
    trace = DialTrace(bin_s=0.25)
    feed(trace, range(5))
    feed(trace, [3, 4])  # re-delivered after a reconnect
    feed(trace, range(5, 8))
    assert trace.duplicates == 2 and trace.samples == 8 and not trace.gaps
    assert trace.points[0].y == pytest.approx(2)  # 0..4, the duplicates not counted twice


def test_a_new_boot_breaks_the_trace_without_counting_a_gap() -> None:
    trace = DialTrace(bin_s=0.25)
    feed(trace, range(10), boot="b1")
    feed(trace, range(3), media0=1.0, boot="b2")  # the daemon restarted: seq from 0 again
    assert not trace.gaps and trace.samples == 13
    assert sum(p.brk for p in trace.points) == 1


def test_a_disconnect_breaks_the_trace_at_the_next_sample() -> None:
    state = StationState("lab", bin_s=0.25)
    state.on_samples("d1", [sample(i, 10.0, i / 20) for i in range(10)])
    state.on_meta("d1", {"dial": "d1", "connected": False})
    state.on_meta("d1", {"dial": "d1", "connected": True})
    state.on_samples("d1", sample(10, 20.0, 10 / 20))  # seq goes on: only the unplug says it broke
    points = list(state.traces["d1"].points)
    assert points[-1].brk and points[-1].y == 20.0
    assert not state.traces["d1"].gaps


def test_a_device_disconnected_event_and_an_offline_station_break_the_trace() -> None:
    state = StationState("lab", bin_s=0.25)
    state.on_samples("d1", sample(0, 1.0, 0.0))
    state.on_event({"kind": "device.disconnected", "dial": "d1", "t_ns": T0, "data": {}}, 1)
    state.on_samples("d1", sample(1, 1.0, 1.0))
    state.on_status({"state": "offline", "reason": "lost"})
    state.on_samples("d1", sample(2, 1.0, 2.0))
    assert [p.brk for p in state.traces["d1"].points] == [False, True, True]


def test_a_seek_breaks_the_trace_and_normal_play_at_a_low_rate_does_not() -> None:
    trace = DialTrace(bin_s=0.25)
    for seq in range(5):  # a 1 Hz dial: 1 s of media per sample, never a break
        trace.add("b1", seq, T0 + seq * S, float(seq), 1.0)
    assert not any(p.brk for p in trace.points)
    trace.add("b1", 5, T0 + 5 * S, 1.0, 1.0)  # sought back to 1.0
    trace.add("b1", 6, T0 + 6 * S, 2.0, 1.0)
    trace.add("b1", 7, T0 + 7 * S, 60.0, 1.0)  # sought forward to 60.0
    assert [p.brk for p in trace.points] == [False] * 5 + [True, False, True]


def test_samples_without_a_media_position_are_not_drawn_and_the_trace_resumes_apart() -> None:
    trace = DialTrace(bin_s=0.25)
    feed(trace, range(5))
    assert trace.add("b1", 5, T0 + S, None, 3.0) is None
    feed(trace, range(6, 10))
    assert trace.samples == 10 and not trace.gaps
    assert [p.brk for p in trace.points] == [False, True]  # bin 0, then bin 1 apart


# -- the group mean ------------------------------------------------------------------------


def test_mean_and_population_sd_across_the_dials_in_each_bin() -> None:
    s = mean_sd([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert (s.mean, s.sd, s.n) == (5.0, 2.0, 8)
    assert mean_sd([3.0]).sd == 0.0
    state = StationState("lab", bin_s=0.25)
    for dial, value in (("a", 10.0), ("b", 20.0), ("c", 60.0)):
        state.on_samples(dial, [sample(i, value, i / 20, dial=dial) for i in range(5)])  # bin 0
    state.on_samples("a", [sample(i, 30.0, i / 20, dial="a") for i in range(5, 10)])  # bin 1: only a
    rows = state.mean.series()
    assert rows[0][:2] == [0, 0.125] and rows[0][2] == pytest.approx(30.0)
    assert rows[0][3] == pytest.approx(math.sqrt(((10 - 30) ** 2 + (20 - 30) ** 2 + (60 - 30) ** 2) / 3), abs=1e-4)
    assert rows[0][4] == 3
    assert rows[1][2:] == [30.0, 0.0, 1]  # a dial that did not report is not in the bin's n


def test_the_mean_takes_each_dials_bin_value_not_each_sample() -> None:
    group = GroupMean(bin_s=0.25)
    trace_a, trace_b = DialTrace(0.25), DialTrace(0.25)
    for seq in range(5):  # a at 20 Hz: 5 samples of 0 in bin 0; b at 4 Hz: one sample of 10
        point = trace_a.add("b1", seq, T0 + seq * S // 20, seq / 20, 0.0)
        assert point is not None
        group.put("a", point)
    point = trace_b.add("b1", 0, T0, 0.1, 10.0)
    assert point is not None
    group.put("b", point)
    stats = group.stats(0)
    assert stats is not None and stats.mean == 5.0 and stats.n == 2


# -- pruning and the wire form -------------------------------------------------------------


def test_pruning_keeps_the_window_and_moves_the_first_index() -> None:
    state = StationState("lab", bin_s=0.25)
    state.on_samples("d1", [sample(i, 1.0, i / 20, t_ns=T0 + i * S // 20) for i in range(40)])  # 8 bins
    state.take()
    state.prune(T0 + S)  # drop points last touched before 1 s: bins 0..3
    trace = state.traces["d1"]
    assert trace.first == 4 and len(trace.points) == 4
    assert sorted(state.mean.bins) == [4, 5, 6, 7]
    change = state.take()
    assert change is not None and change["mean"]["del"] == [0, 1, 2, 3]


def test_updates_carry_only_what_changed_in_the_pages_form() -> None:
    trace = DialTrace(bin_s=0.25)
    feed(trace, range(10))  # bins 0, 1 (one sample short of full)
    first = trace.take()
    assert first is not None and first["first"] == 0 and first["from"] == 0 and len(first["points"]) == 2
    assert trace.take() is None
    feed(trace, [10])  # media 0.5: bin 2, a new point
    change = trace.take()
    assert change is not None and change["from"] == 2 and change["points"] == [[0.625, 10.0, 0]]
    feed(trace, [11])  # same bin: the last point changes in place
    change = trace.take()
    assert change is not None and change["from"] == 2 and change["points"] == [[0.625, 10.5, 0]]


def apply(page: dict[str, list[Any]], first: dict[str, int], dial: str, change: dict[str, Any]) -> None:
    """What app.js does with a dial change."""
    points = page.setdefault(dial, [])
    start = first.get(dial, change["first"])
    del points[: max(0, change["first"] - start)]
    first[dial] = change["first"]
    del points[max(0, change["from"] - change["first"]) :]
    points.extend(change["points"])


def test_a_page_applying_the_updates_ends_with_the_bridges_points() -> None:
    state = WatchState(bin_s=0.25, window_s=2.0)
    page: dict[str, list[Any]] = {}
    first: dict[str, int] = {}
    snap = state.snapshot()
    for i in range(200):  # 10 s at 20 Hz, a gap at 50..54, pruned to the last 2 s as it goes
        if 50 <= i < 55:
            continue
        state.handle("daq/lab/dials/d1/samples", orjson.dumps(sample(i, float(i % 7), i / 20, t_ns=T0 + i * S // 20)))
        if i % 3 == 0:
            state.prune(T0 + i * S // 20)
            update = state.take_update()
            for dial, change in (update or {}).get("stations", {}).get("lab", {}).get("dials", {}).items():
                apply(page, first, dial, change)
    state.prune(T0 + 199 * S // 20)
    for dial, change in (state.take_update() or {}).get("stations", {}).get("lab", {}).get("dials", {}).items():
        apply(page, first, dial, change)
    full = state.snapshot()["stations"]["lab"]["dials"]["d1"]
    assert snap["stations"] == {}
    assert page["d1"] == full["points"] and first["d1"] == full["first"]
    assert full["missing"] == 5 and full["gaps"] == 1


# -- messages ------------------------------------------------------------------------------


def test_the_state_reads_every_topic_of_the_contract() -> None:
    state = WatchState(root="daq", bin_s=0.25)
    clock = {
        "kind": "session",
        "rate": "29.97df",
        "state": "running",
        "position_s": 10.0,
        "anchor_t_ns": T0,
        "speed": 1.0,
        "start_timecode": "00:00:00;00",
    }
    state.handle("daq/lab/status", b'{"v":1,"station":"lab","boot":"b1","state":"online"}')
    state.handle("daq/lab/session", orjson.dumps({"v": 1, "station": "lab", "session": "s1", "clock": clock}))
    state.handle("daq/lab/dials/d1/meta", b'{"dial":"d1","connected":true,"scale":{"min":1,"max":9}}')
    state.handle("daq/lab/dials/d1/samples", orjson.dumps([sample(0, 5.0, 10.0), sample(1, 6.0, 10.05)]))
    state.handle("daq/lab/dials/d1/samples", orjson.dumps(sample(2, 7.0, 10.1)))
    state.handle("daq/lab/dials/d1/samples", b"not json")
    state.handle("daq/lab/dials/d1/samples", b'[{"seq": 1}]')
    state.handle(
        "daq/lab/events",
        orjson.dumps(
            {"kind": "mark", "t_ns": T0 + 5 * S, "message": "laughs", "data": {"label": "laughs", "media_s": 14.5}}
        ),
    )
    state.handle("daq/lab/events", orjson.dumps({"kind": "device.disconnected", "dial": "d1", "t_ns": T0 + 2 * S}))
    state.handle("daq/lab/dials/d2/meta", b"")  # a retained message cleared
    lab = state.stations["lab"]
    assert lab.traces["d1"].samples == 3 and state.stats.invalid == 2
    assert lab.timebase == {"label": "29.97df", "num": 30000, "den": 1001, "nominal": 30, "drop": 2}
    assert [(e["id"], e["kind"], e["media_s"], e["label"]) for e in lab.events] == [
        (1, "mark", 14.5, "laughs"),
        (2, "device.disconnected", 12.0, None),  # placed on the media axis through the session clock
    ]
    update = state.take_update(now_ns=T0)
    assert update is not None and update["type"] == "update" and update["t_ns"] == T0
    change = update["stations"]["lab"]
    assert set(change) == {"status", "session", "metas", "dials", "mean", "events"}
    assert change["session"]["timebase"]["drop"] == 2
    assert state.take_update() is None
    snap = state.snapshot()
    assert snap["type"] == "snapshot" and snap["stations"]["lab"]["mean"]["reset"] is True
    assert len(snap["stations"]["lab"]["events"]) == 2


def test_media_position_of_the_session_clock() -> None:
    running = {"state": "running", "position_s": 10.0, "anchor_t_ns": T0, "speed": 2.0}
    assert media_at(running, T0 + 3 * S) == pytest.approx(16.0)
    assert media_at({**running, "state": "paused"}, T0 + 3 * S) == 10.0
    assert media_at({**running, "state": "stopped", "position_s": None}, T0) is None
    assert media_at(None, T0) is None
    assert timebase("25") == {"label": "25", "num": 25, "den": 1, "nominal": 25, "drop": 0}
    assert timebase("59.94df") is not None and timebase("59.94df")["drop"] == 4  # type: ignore[index]
    assert timebase("13") is None


# -- the server ----------------------------------------------------------------------------


def broker() -> BrokerConfig:
    return BrokerConfig.model_validate({"url": "mqtt://127.0.0.1:1"})


def test_the_server_serves_the_page_its_files_the_video_and_a_websocket(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from daq.subscribers.watch.server import make_app

    video = tmp_path / "clip.webm"
    video.write_bytes(bytes(range(256)) * 40)

    async def scenario() -> None:
        bridge = WatchBridge(broker(), "daq", "lab", extra_meta={"video": "/video"})
        async with TestClient(TestServer(make_app(bridge, video))) as client:
            page = await client.get("/")
            assert page.status == 200 and "/static/app.js" in (text := await page.text()) and 'id="stations"' in text
            for name, kind in (("app.js", "javascript"), ("style.css", "css")):
                res = await client.get(f"/static/{name}")
                assert res.status == 200 and kind in res.headers["Content-Type"]
            part = await client.get("/video", headers={"Range": "bytes=100-199"})
            assert part.status == 206 and part.headers["Content-Type"] == "video/webm"
            assert await part.read() == (bytes(range(256)) * 40)[100:200]
            ws = await client.ws_connect("/ws")
            snap = json.loads((await ws.receive()).data)
            assert snap["type"] == "snapshot" and snap["config"]["video"] == "/video"
            assert snap["config"]["station"] == "lab" and snap["stations"] == {}
            bridge.state.handle("daq/lab/dials/d1/samples", orjson.dumps(sample(0, 42.0, 1.0)))
            bridge.push()
            update = json.loads((await ws.receive(timeout=5)).data)
            assert update["type"] == "update"
            assert update["stations"]["lab"]["dials"]["d1"]["points"] == [[1.125, 42.0, 0]]
            await ws.close()
            state = await client.get("/state.json")
            assert (await state.json())["stations"]["lab"]["dials"]["d1"]["samples"] == 1
        bridge = WatchBridge(broker(), "daq", "+")
        async with TestClient(TestServer(make_app(bridge, None))) as client:
            assert (await client.get("/video")).status == 404
            assert (await client.get("/static/../bridge.py")).status in (403, 404)

    asyncio.run(scenario())


def test_an_unreachable_broker_is_shown_to_the_pages_and_retried_until_stop() -> None:
    """Not a refusal: the bridge keeps trying, tells the pages why it is not connected, and stops when told."""

    async def scenario() -> None:
        bridge = WatchBridge(broker(), "daq", "+")
        pages: list[dict[str, Any]] = []
        bridge.add_listener(lambda data: pages.append(orjson.loads(data)))
        stop = asyncio.Event()
        run = asyncio.create_task(bridge.run(stop))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if bridge.mqtt_session.stats.last_error and any("broker" in p for p in pages):
                break
        assert not run.done(), "an unreachable broker is retried, not fatal"
        assert bridge.state.broker["connected"] is False and bridge.state.broker["error"]
        assert any(p.get("broker", {}).get("error") for p in pages), "the pages are told why"
        stop.set()
        await asyncio.wait_for(run, 5)

    asyncio.run(scenario())


def test_watch_refuses_a_missing_video_and_a_bad_station(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "--broker", "mqtt://127.0.0.1:1", "--video", str(tmp_path / "nope.mp4")]) == 2
    assert "--video" in capsys.readouterr().err
    assert main(["watch", "--broker", "mqtt://127.0.0.1:1", "--station", "lab a"]) == 2
    assert "--station" in capsys.readouterr().err


def test_watch_without_aiohttp_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    monkeypatch.delitem(sys.modules, "daq.subscribers.watch.server", raising=False)
    monkeypatch.delattr(daq.subscribers.watch, "server", raising=False)
    assert main(["watch", "--broker", "mqtt://127.0.0.1:1", "--port", "0"]) == 2
    assert "pip install 'dialdaq[watch]'" in capsys.readouterr().err
