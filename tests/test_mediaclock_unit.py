"""Media clocks without I/O: segment history, session clock, the mpv model fed mpv's own message
sequences (as recorded from mpv 0.35), the MQTT-followed clock, MIDI Time Code decoding, clock.set."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daq.commands.session import request_of
from daq.config import DaqConfig, MediaConfig, build_config
from daq.exceptions import ConfigError, MissingExtraError
from daq.mediaclock.base import MediaClock, Segment, SegmentHistory
from daq.mediaclock.factory import make_clock
from daq.mediaclock.follow import ClockChange, FollowedClock, seconds_to_ns
from daq.mediaclock.mpv import HOLD_NS, MpvClock, observe_commands
from daq.mediaclock.mqtt_follow import MqttFollowClock, PositionError, position_topic
from daq.mediaclock.mtc import STALL_NS, MtcClock, MtcDecoder
from daq.mediaclock.session_clock import SessionClock
from daq.readclock import ReadClock
from daq.station.announcer import Announcer
from daq.station.clock_stage import ClockStage, input_topics
from daq.station.control import StationControl
from daq.station.payloads import StationIdentity, session_payload
from daq.station.session_state import SessionState
from daq.timecode import FrameRate, frame_to_timecode, ns_to_frame, timecode_to_frame
from daq.topics import Topics
from tests.support.outlet import RecordingOutlet

R25 = FrameRate.parse("25")
MS = 1_000_000
S = 1_000_000_000
T0 = 1_000 * S  # an arbitrary monotonic origin


def kinds(changes: list[ClockChange]) -> list[str]:
    return [c.kind for c in changes]


# -- SegmentHistory and SessionClock -------------------------------------------------------


def test_history_places_each_time_by_its_own_segment() -> None:
    h = SegmentHistory(R25, Segment(T0, 0, 1.0, "running"))
    h.add(Segment(T0 + 2 * S, 2 * S, 1.0, "paused"))
    h.add(Segment(T0 + 5 * S, 60 * S, 2.0, "running"))
    h.add(Segment(T0 + 7 * S, 0, 1.0, "stopped"))
    assert h.media_ns_at(T0 + S) == S  # read before the pause, looked up after it
    assert h.media_ns_at(T0 + 3 * S) == 2 * S
    assert h.media_ns_at(T0 + 6 * S) == 62 * S
    assert h.position_at(T0 + 8 * S) is None
    pos = h.position_at(T0 + 6 * S)
    assert pos is not None and (pos.frame, pos.timecode) == (62 * 25, "00:01:02:00")


def test_history_never_rewrites_the_past() -> None:
    h = SegmentHistory(R25, Segment(T0, 0, 1.0, "running"))
    h.add(Segment(T0 + 2 * S, 10 * S, 1.0, "paused"))
    h.add(Segment(T0 + S, 50 * S, 1.0, "paused"))  # late: starts where the last one did
    assert h.last.mono_ns == T0 + 2 * S
    assert h.media_ns_at(T0 + S) == S


def test_session_clock_start_pause_seek_resume_stop() -> None:
    clock = SessionClock(R25, "00:00:10:00")
    t0 = time.monotonic_ns()  # the clock was created (stopped) at the real now
    assert clock.position_at(t0) is None
    clock.start(mono_ns=t0)
    clock.pause(mono_ns=t0 + 2 * S)
    clock.seek(30.0, mono_ns=t0 + 3 * S)
    clock.resume(mono_ns=t0 + 4 * S)
    clock.stop(mono_ns=t0 + 6 * S)
    at = [clock.position_at(t0 + t) for t in (S, 2 * S + S // 2, 3 * S + S // 2, 5 * S, 7 * S)]
    assert [p.timecode if p else None for p in at] == ["00:00:11:00", "00:00:12:00", "00:00:30:00", "00:00:31:00", None]


def test_seconds_to_ns_keeps_frame_starts_on_their_frame() -> None:
    assert ns_to_frame(int(8.04 * 1e9), R25) == 200  # 8.04 * 1e9 is 8039999999.99... in floats
    assert ns_to_frame(seconds_to_ns(8.04), R25) == 201
    assert seconds_to_ns(5.040000) == 5_040_000_000
    assert seconds_to_ns(1.0000004) == 1_000_000_000  # rounded to the microsecond


# -- the common follow rule -----------------------------------------------------------------


def test_follow_ignores_progress_and_reanchors_on_drift() -> None:
    clock = FollowedClock(R25)
    assert kinds([c for c in [clock.follow(T0, "running", 10 * S)] if c]) == ["clock.found"]
    first = clock.current()
    # within half a frame (20 ms at 25 fps): plain progress, the segment stays
    assert clock.follow(T0 + S, "running", 11 * S + 19 * MS) is None
    assert clock.current() is first
    # 30 ms off: re-anchored without an announcement; 2 s off: announced as a seek
    assert clock.follow(T0 + 2 * S, "running", 12 * S + 30 * MS) is None
    assert clock.current().media_ns == 12 * S + 30 * MS
    change = clock.follow(T0 + 3 * S, "running", 100 * S)
    assert change is not None and change.kind == "clock.seek"
    assert change.data["from_s"] == pytest.approx(13.03) and change.data["media_s"] == 100.0


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([("running", 1.0)], ["clock.found"]),
        ([("running", 1.0), ("paused", 1.0)], ["clock.found", "clock.pause"]),
        ([("paused", 1.0), ("running", 1.0)], ["clock.found", "clock.resume"]),
        ([("running", 1.0), ("running", 2.0)], ["clock.found", "clock.speed"]),
        ([("running", 1.0), ("stopped", 1.0), ("running", 1.0)], ["clock.found", "clock.stop", "clock.start"]),
        ([("running", 1.0), ("lost", 1.0)], ["clock.found", "clock.lost"]),
        ([("stopped", 1.0), ("stopped", 1.0)], ["clock.found"]),
    ],
)
def test_follow_announces_transitions(steps: list[tuple[Any, float]], expected: list[str]) -> None:
    clock = FollowedClock(R25)
    changes = [clock.follow(T0 + i * S, state, 5 * S, speed) for i, (state, speed) in enumerate(steps)]
    assert [c.kind for c in changes if c is not None] == expected


# -- mpv: the model fed mpv's messages ------------------------------------------------------


def prop(name: str, data: object = None, *, absent: bool = False) -> dict[str, object]:
    msg: dict[str, object] = {"event": "property-change", "name": name}
    if not absent:
        msg["data"] = data
    return msg


def ev(name: str, **extra: object) -> dict[str, object]:
    return {"event": name, **extra}


class MpvFeed:
    """Feeds an MpvClock messages at given offsets (ms) from T0, collecting what it announces."""

    def __init__(self) -> None:
        self.clock = MpvClock(R25, "/nonexistent.sock")
        self.changes: list[ClockChange] = []

    def at(self, ms: float, *messages: dict[str, object]) -> MpvFeed:
        mono = T0 + int(ms * MS)
        for msg in messages:
            self.changes += self.clock.feed(msg, mono)
        return self

    def tick(self, ms: float) -> MpvFeed:
        self.changes += self.clock.tick(T0 + int(ms * MS))
        return self

    def hello(self, ms: float, time_pos: float | None, pause: bool, speed: float = 1.0) -> MpvFeed:
        """What mpv sends right after the observe_property requests."""
        self.clock.connected()
        return self.at(
            ms,
            {"request_id": 0, "error": "success"},
            prop("time-pos", time_pos, absent=time_pos is None),
            prop("pause", pause),
            prop("speed", speed),
            prop("seeking", False),
            prop("eof-reached", False),
            prop("idle-active", time_pos is None),
        )

    def media_s(self, ms: float) -> float | None:
        pos = self.clock.position_at(T0 + int(ms * MS))
        return pos.media_s if pos else None

    def kinds(self) -> list[str]:
        return kinds(self.changes)


def test_mpv_observes_what_the_model_needs() -> None:
    lines = [orjson.loads(line) for line in observe_commands().splitlines()]
    assert [line["command"][2] for line in lines] == [
        "time-pos",
        "pause",
        "speed",
        "seeking",
        "eof-reached",
        "idle-active",
    ]
    assert [line["command"][:2] for line in lines] == [["observe_property", i] for i in range(1, 7)]


def test_mpv_lost_until_every_property_is_known() -> None:
    f = MpvFeed()
    f.clock.connected()
    f.at(0, prop("time-pos", 3.0), prop("pause", False))
    assert f.clock.current().state == "lost" and f.media_s(10) is None and f.changes == []
    f.at(1, prop("speed", 1.0), prop("seeking", False), prop("eof-reached", False), prop("idle-active", False))
    # running from the time-pos, stamped when it arrived
    assert f.kinds() == ["clock.found"] and f.clock.current().state == "running"
    assert f.media_s(1000) == pytest.approx(4.0)


def test_mpv_plain_progress_keeps_the_model_smooth() -> None:
    f = MpvFeed().hello(0, 0.0, pause=False)
    segment = f.clock.current()
    for k in range(1, 50):  # a frame every 40 ms, arriving with a few ms of jitter
        f.at(k * 40 + (3 if k % 2 else -2), prop("time-pos", k * 0.04))
    assert f.clock.current() is segment and f.kinds() == ["clock.found"]
    assert f.media_s(1000) == pytest.approx(1.0)


def test_mpv_pause_holds_the_frame_on_screen() -> None:
    f = MpvFeed().hello(0, 5.0, pause=False)
    f.at(40, prop("time-pos", 5.04)).at(55, prop("pause", True))
    assert f.kinds() == ["clock.found", "clock.pause"]
    assert f.changes[-1].data["media_s"] == pytest.approx(5.04)
    assert f.media_s(50) == pytest.approx(5.05)  # a sample read before the pause keeps its place
    assert f.media_s(5000) == pytest.approx(5.04)


def test_mpv_resume_runs_from_the_first_new_frame() -> None:
    f = MpvFeed().hello(0, 2.0, pause=True)
    f.at(300, prop("pause", False)).at(330, prop("time-pos", 2.04)).at(370, prop("time-pos", 2.08))
    assert f.media_s(310) == pytest.approx(2.0)  # held until mpv shows a new frame
    assert f.kinds() == ["clock.found", "clock.resume"]
    assert f.changes[-1].data["media_s"] == pytest.approx(2.04)
    assert f.media_s(1330) == pytest.approx(3.04)


def test_mpv_resume_when_the_first_frame_comes_before_pause_false() -> None:
    # mpv 0.35 also sends the first frame's time-pos before pause=false; the next frame comes 40 ms later
    f = MpvFeed().hello(0, 0.0, pause=True)
    f.at(300, prop("time-pos", 0.04)).at(300.2, prop("pause", False)).at(340, prop("time-pos", 0.08))
    assert f.kinds() == ["clock.found", "clock.resume"]
    assert f.media_s(320) == pytest.approx(0.04)
    assert f.media_s(1340) == pytest.approx(1.08)


def test_mpv_seek_while_playing_as_mpv_reports_it() -> None:
    f = MpvFeed().hello(0, 0.0, pause=False)
    f.at(520, prop("time-pos", 0.52))
    f.at(530, {"data": None, "request_id": 0, "error": "success"}, ev("seek"))
    f.at(530.5, prop("time-pos", 5.0), prop("seeking", True))
    assert f.media_s(540) == pytest.approx(5.0)  # held at the target while mpv seeks
    f.at(550, ev("playback-restart"), prop("seeking", False))
    assert f.media_s(551) == pytest.approx(5.0)
    f.at(551, prop("time-pos", 5.04)).at(591, prop("time-pos", 5.08))
    assert f.kinds() == ["clock.found", "clock.seek"]
    seek = f.changes[-1]
    assert seek.data["media_s"] == pytest.approx(5.04) and seek.data["from_s"] == pytest.approx(0.53)
    assert seek.data["state"] == "running"
    assert f.media_s(1551) == pytest.approx(6.04)


def test_mpv_seek_seen_only_as_the_seeking_property() -> None:
    f = MpvFeed().hello(0, 1.0, pause=False)
    f.at(1000, prop("seeking", True), prop("time-pos", 9.0))
    assert f.media_s(1010) == pytest.approx(9.0)
    f.at(1020, prop("seeking", False)).at(1030, prop("time-pos", 9.04))
    assert f.kinds() == ["clock.found", "clock.seek"]
    assert f.changes[-1].data["from_s"] == pytest.approx(2.0) and f.media_s(2030) == pytest.approx(10.04)


def test_mpv_seek_while_paused_is_announced_when_done() -> None:
    f = MpvFeed().hello(0, 10.0, pause=True)
    f.at(100, ev("seek"), prop("time-pos", 3.0), prop("seeking", True))
    assert f.kinds() == ["clock.found"]
    f.at(120, ev("playback-restart"), prop("seeking", False))
    assert f.kinds() == ["clock.found", "clock.seek"]
    assert f.changes[-1].data == {"state": "paused", "media_s": 3.0, "speed": 1.0, "from_s": 10.0}
    assert f.media_s(5000) == pytest.approx(3.0)


def test_mpv_speed_change_keeps_the_position_continuous() -> None:
    f = MpvFeed().hello(0, 1.0, pause=False)
    f.at(1000, prop("speed", 2.0))
    assert f.kinds() == ["clock.found", "clock.speed"]
    assert f.media_s(1000) == pytest.approx(2.0) and f.media_s(2000) == pytest.approx(4.0)


def test_mpv_frame_step_while_paused_is_announced_after_a_while() -> None:
    f = MpvFeed().hello(0, 0.0, pause=True)
    f.at(300, {"data": None, "request_id": 0, "error": "success"}, prop("time-pos", 0.04))
    assert f.media_s(301) == pytest.approx(0.04) and f.kinds() == ["clock.found"]
    assert f.clock.deadline == T0 + 300 * MS + HOLD_NS
    f.tick(300 + HOLD_NS / MS)
    assert f.kinds() == ["clock.found", "clock.seek"] and f.clock.deadline is None


def test_mpv_resume_without_a_new_frame_runs_from_when_mpv_said_so() -> None:
    f = MpvFeed().hello(0, 7.0, pause=True)
    f.at(100, prop("pause", False))
    assert f.media_s(200) == pytest.approx(7.0)
    f.tick(100 + HOLD_NS / MS)
    assert f.kinds() == ["clock.found", "clock.resume"]
    assert f.media_s(1100) == pytest.approx(8.0)


def test_mpv_end_of_file_then_idle_gives_null_positions() -> None:
    f = MpvFeed().hello(0, 1.9, pause=False)
    f.at(2000, ev("video-reconfig"), ev("end-file", reason="eof", playlist_entry_id=1), ev("idle"))
    f.at(2001, prop("time-pos", absent=True), prop("seeking", absent=True), prop("eof-reached", absent=True))
    f.at(2002, prop("idle-active", True))
    assert f.kinds() == ["clock.found", "clock.eof"]
    assert f.media_s(1999) == pytest.approx(3.899) and f.media_s(2000) is None
    # a new file, playing
    f.at(3000, ev("start-file"), prop("idle-active", False), prop("eof-reached", False))
    f.at(3100, prop("time-pos", 0.0), prop("seeking", False))
    assert f.kinds()[-1] == "clock.start" and f.media_s(4100) == pytest.approx(1.0)


def test_mpv_quit_and_lost_socket() -> None:
    f = MpvFeed().hello(0, 0.5, pause=False)
    f.at(400, ev("video-reconfig"), prop("time-pos", absent=True), ev("end-file", reason="quit"))
    assert f.kinds() == ["clock.found", "clock.stop"]
    f.changes += f.clock.disconnected(T0 + 500 * MS)
    assert f.kinds() == ["clock.found", "clock.stop", "clock.lost"]
    assert f.media_s(600) is None and f.clock.current().state == "lost"
    f.hello(1000, 12.0, pause=True)
    assert f.kinds()[-1] == "clock.found" and f.media_s(2000) == pytest.approx(12.0)


def test_mpv_clock_in_the_session_payload() -> None:
    f = MpvFeed().hello(0, 12.0, pause=True)
    payload = session_payload(StationIdentity("lab-a", "b", ()), None, f.clock, wall_offset_ns=0, t_ns=1)
    info = orjson.loads(payload)["clock"]
    assert (info["kind"], info["state"], info["position_s"], info["speed"]) == ("mpv", "paused", 12.0, 0.0)


def test_mpv_run_retries_while_the_socket_is_absent(tmp_path: Path) -> None:
    clock = MpvClock(R25, tmp_path / "absent.sock")

    async def main() -> None:
        task = asyncio.create_task(clock.run(lambda *_: None))
        await asyncio.sleep(0.7)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert clock.current().state == "lost"


def test_mpv_run_follows_a_socket_and_reports_it_lost(tmp_path: Path) -> None:
    """run() against a stand-in for mpv: observe requests in, mpv's greeting out, then a hang-up.
    Each step waits for the one before (no sleep is assumed to be long enough)."""
    path = tmp_path / "mpv.sock"
    clock = MpvClock(R25, path)
    seen: list[tuple[str, str]] = []
    requests: list[bytes] = []
    events = {"clock.found": asyncio.Event(), "clock.lost": asyncio.Event()}
    checked = asyncio.Event()  # the position was read: the stand-in may hang up

    def on_change(kind: str, message: str, data: object) -> None:
        seen.append((kind, message))
        if kind in events:
            events[kind].set()

    async def fake_mpv(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(6):
            requests.append(await reader.readline())
        greeting = [prop("time-pos", 42.0), prop("pause", True), prop("speed", 1.0), prop("seeking", False),
                    prop("eof-reached", False), prop("idle-active", False)]  # fmt: skip
        writer.write(b"".join(orjson.dumps(m) + b"\n" for m in greeting) + b"not json\n")
        await writer.drain()
        await checked.wait()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_unix_server(fake_mpv, str(path))
        task = asyncio.create_task(clock.run(on_change))
        try:
            await asyncio.wait_for(events["clock.found"].wait(), 10)
            pos = clock.position_at(time.monotonic_ns())
            assert pos is not None and pos.media_s == 42.0
            checked.set()
            await asyncio.wait_for(events["clock.lost"].wait(), 10)
        finally:
            task.cancel()
            server.close()
            await server.wait_closed()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert b"".join(requests) == observe_commands()
    assert [k for k, _ in seen] == ["clock.found", "clock.lost"]
    assert "mpv closed the socket" in seen[1][1]
    assert clock.position_at(time.monotonic_ns()) is None


# -- the MQTT-followed clock ----------------------------------------------------------------


def pos_msg(**body: object) -> bytes:
    return orjson.dumps(body)


def test_mqtt_follow_positions_and_states() -> None:
    clock = MqttFollowClock(R25)
    offset = 5 * S  # wall - mono
    changes = clock.feed(pos_msg(position_s=10.0, state="playing"), T0, offset)
    assert kinds(changes) == ["clock.found"]
    assert clock.feed(pos_msg(position_s=11.01, state="playing"), T0 + S, offset) == []  # progress
    # t_ns: the position was true 200 ms before the message arrived
    changes = clock.feed(pos_msg(position_s=20.0, state="paused", t_ns=T0 + 2 * S + offset), T0 + 2200 * MS, offset)
    assert kinds(changes) == ["clock.pause"]
    pos = clock.position_at(T0 + 2100 * MS)
    assert pos is not None and pos.media_s == 20.0
    assert kinds(clock.feed(pos_msg(position_s=30.0, state="playing", speed=2.0), T0 + 3 * S, offset)) == [
        "clock.resume"
    ]
    pos = clock.position_at(T0 + 4 * S)
    assert pos is not None and pos.media_s == 32.0
    assert kinds(clock.feed(pos_msg(state="stopped"), T0 + 5 * S, offset)) == ["clock.stop"]
    assert clock.position_at(T0 + 6 * S) is None


def test_mqtt_follow_ignores_messages_older_than_the_current_segment() -> None:
    clock = MqttFollowClock(R25)
    clock.feed(pos_msg(position_s=50.0, state="paused"), T0 + 10 * S, 0)
    assert clock.feed(pos_msg(position_s=1.0, state="playing", t_ns=T0 + 9 * S), T0 + 11 * S, 0) == []
    assert clock.current().media_ns == 50 * S


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"position_s": 1.0}',
        b'{"position_s": 1.0, "state": "rewinding"}',
        b'{"position_s": "1.0", "state": "playing"}',
        b'{"state": "playing"}',
        b'{"position_s": 1.0, "state": "playing", "speed": 0}',
        b'{"position_s": 1.0, "state": "playing", "t_ns": 1.5}',
        b'{"position_s": 1.0, "state": ["playing"]}',
    ],
)
def test_mqtt_follow_refuses_what_is_not_a_position(payload: bytes) -> None:
    with pytest.raises(PositionError):
        MqttFollowClock(R25).feed(payload, T0, 0)


def test_position_topic() -> None:
    assert position_topic(Topics("daq", "lab-a").base) == "daq/lab-a/media/position"


# -- MIDI Time Code -------------------------------------------------------------------------


def quarter_frames(hh: int, mm: int, ss: int, ff: int, rate_code: int) -> list[bytes]:
    """The eight quarter-frame messages that describe hh:mm:ss:ff."""
    values = [ff & 0x0F, ff >> 4, ss & 0x0F, ss >> 4, mm & 0x0F, mm >> 4, hh & 0x0F, (hh >> 4) | (rate_code << 1)]
    return [bytes([0xF1, (piece << 4) | v]) for piece, v in enumerate(values)]


def full_frame(hh: int, mm: int, ss: int, ff: int, rate_code: int, device: int = 0x7F) -> bytes:
    return bytes([0xF0, 0x7F, device, 0x01, 0x01, hh | (rate_code << 5), mm, ss, ff, 0xF7])


def test_mtc_quarter_frames_assemble_with_the_two_frame_correction() -> None:
    decoder = MtcDecoder()
    out = [decoder.feed(m) for m in quarter_frames(1, 2, 3, 4, rate_code=1)]
    assert out[:7] == [None] * 7
    t = out[7]
    assert t is not None and not t.full
    assert t.rate == R25 and t.timecode == "01:02:03:06"  # 01:02:03:04 + 2 frames
    assert t.frame == timecode_to_frame("01:02:03:04", R25) + 2
    # piece 7 arrives a quarter frame before frame +2 starts: 1 3/4 frames after piece 0
    assert t.media_ns == t.frame * 40 * MS - 10 * MS


def test_mtc_quarter_frames_keep_running_two_frames_at_a_time() -> None:
    decoder = MtcDecoder()
    got = []
    for ff in (0, 2, 4):
        for m in quarter_frames(0, 0, 10, ff, rate_code=3):
            t = decoder.feed(m)
            if t is not None:
                got.append(t.timecode)
    assert got == ["00:00:10:02", "00:00:10:04", "00:00:10:06"]


def test_mtc_a_missing_piece_drops_the_group() -> None:
    decoder = MtcDecoder()
    pieces = quarter_frames(0, 0, 1, 0, rate_code=1)
    assert [decoder.feed(m) for m in pieces[:3] + pieces[4:]] == [None] * 7
    assert [decoder.feed(m) for m in reversed(pieces)] == [None] * 8  # running backwards
    assert decoder.feed(pieces[0]) is None
    assert all(decoder.feed(m) is None for m in pieces[1:7])
    assert decoder.feed(pieces[7]) is not None


@pytest.mark.parametrize(
    ("rate_code", "rate", "label"),
    [(0, "24", "00:10:00:00"), (1, "25", "00:10:00:00"), (2, "29.97df", "00:10:00;00"), (3, "30", "00:10:00:00")],
)
def test_mtc_full_frame_rate_codes(rate_code: int, rate: str, label: str) -> None:
    t = MtcDecoder().feed(full_frame(0, 10, 0, 0, rate_code))
    expected = FrameRate.parse(rate)
    assert t is not None and t.full and t.rate == expected and t.timecode == label
    # exact real time: at 29.97 DF, 00:10:00;00 is frame 17982 = 599.9994 s
    assert t.media_ns == t.frame * expected.fps.denominator * S // expected.fps.numerator


def test_mtc_drop_frame_correction_crosses_a_dropped_label() -> None:
    # 00:00:59;28 + 2 frames is 00:01:00;02 (;00 and ;01 do not exist at 29.97 DF)
    decoder = MtcDecoder()
    t = [decoder.feed(m) for m in quarter_frames(0, 0, 59, 28, rate_code=2)][-1]
    assert t is not None and t.timecode == "00:01:00;02"


def test_mtc_refuses_labels_that_do_not_exist() -> None:
    decoder = MtcDecoder()
    assert decoder.feed(full_frame(0, 1, 0, 0, rate_code=2)) is None  # 00:01:00;00 is dropped
    assert decoder.feed(full_frame(0, 0, 0, 25, rate_code=1)) is None  # frame 25 at 25 fps
    assert decoder.feed(full_frame(24, 0, 0, 0, rate_code=1)) is None
    assert decoder.feed(bytes([0x90, 60, 100])) is None  # a note


@given(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59), st.integers(0, 3), st.integers(0, 29))
def test_mtc_quarter_frame_round_trip(hh: int, mm: int, ss: int, code: int, ff: int) -> None:
    rate = {0: "24", 1: "25", 2: "29.97df", 3: "30"}[code]
    r = FrameRate.parse(rate)
    ff %= r.nominal
    if r.drop_frame and mm % 10 and ss == 0 and ff < 2:
        ff = 2
    decoder = MtcDecoder()
    t = [decoder.feed(m) for m in quarter_frames(hh, mm, ss, ff, code)][-1]
    sep = ";" if r.drop_frame else ":"
    frame = (timecode_to_frame(f"{hh:02d}:{mm:02d}:{ss:02d}{sep}{ff:02d}", r) + 2) % r.frames_per_day
    assert t is not None and t.frame == frame and t.timecode == frame_to_timecode(frame, r)


def test_mtc_clock_runs_on_quarter_frames_and_holds_when_they_stop() -> None:
    clock = MtcClock(R25)
    changes: list[ClockChange] = []
    mono = T0
    for ff in (0, 2, 4, 6):
        for m in quarter_frames(0, 1, 0, ff, rate_code=1):
            changes += clock.feed(m, mono)
            mono += 10 * MS  # 100 quarter frames a second at 25 fps
    assert kinds(changes) == ["clock.found"]
    pos = clock.position_at(mono)
    assert pos is not None and pos.timecode == "00:01:00:08"
    last_quarter = mono - 10 * MS
    assert clock.deadline == last_quarter + STALL_NS
    changes += clock.tick(last_quarter + STALL_NS)
    assert kinds(changes) == ["clock.found", "clock.pause"]
    held = clock.position_at(mono + 10 * S)
    assert held is not None and held.timecode == "00:01:00:07"
    changes += clock.feed(full_frame(0, 5, 0, 0, rate_code=1), mono + 11 * S)
    assert kinds(changes)[-1] == "clock.seek"
    held = clock.position_at(mono + 12 * S)
    assert held is not None and held.timecode == "00:05:00:00"


def test_mtc_without_mido_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mido", None)  # import mido now raises ImportError
    with pytest.raises(MissingExtraError, match=r"mtc media clock.*'mido'.*dialdaq\[midi\]"):
        make_clock(MediaConfig(clock="mtc"))


# -- config and factory ---------------------------------------------------------------------


def test_config_mpv_needs_its_socket(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mpv_socket"):
        build_config({"media": {"clock": "mpv"}}, tmp_path / "daq.toml")
    with pytest.raises(ConfigError, match="mpv_sock"):
        build_config({"media": {"clock": "mpv", "mpv_sock": "/tmp/x"}}, tmp_path / "daq.toml")
    config = build_config({"media": {"clock": "mpv", "mpv_socket": "/tmp/mpv.sock"}})
    clock = make_clock(config.media)
    assert isinstance(clock, MpvClock) and clock.socket_path == Path("/tmp/mpv.sock")


def test_make_clock_kinds() -> None:
    assert isinstance(make_clock(MediaConfig(clock="session")), SessionClock)
    assert isinstance(make_clock(MediaConfig(clock="mqtt", rate="29.97df")), MqttFollowClock)
    assert make_clock(MediaConfig(clock="none")) is None


# -- StationControl and the clock stage: clock.set and the position topic --------------------


class ControlParts:
    """What a station gives StationControl and its clock stage, with the outgoing messages recorded."""

    def __init__(self, config: DaqConfig) -> None:
        self.topics = Topics(config.station.root, config.station.id)
        self.outlet = RecordingOutlet()
        self.read_clock = ReadClock()
        self.session = SessionState(make_clock(config.media))
        who = StationIdentity(config.station.id, "b", ())
        self.announcer = Announcer(self.outlet, who, self.topics, self.read_clock, self.session, {})
        base = self.topics.base
        self.clocks = ClockStage(self.session, self.announcer, self.read_clock, base, input_topics(base))
        self.installed: list[object] = []
        self.control = StationControl(self.announcer, self.session, self.read_clock, config.media, self.install)

    def install(self, clock: MediaClock | None) -> None:
        self.installed.append(clock)
        self.clocks.install(clock)

    @property
    def events(self) -> list[tuple[object, object, object]]:
        return [(b["kind"], b["message"], b["data"]) for b in self.outlet.bodies(self.topics.events)]

    def position(self, payload: bytes, arrival_mono_ns: int) -> None:
        """A message on the position topic, as the station routes it."""
        topic = position_topic(self.topics.base)
        assert self.clocks.follows(topic)
        self.clocks.on_message(topic, payload, arrival_mono_ns)


def control_for(**media: object) -> tuple[StationControl, ControlParts]:
    parts = ControlParts(build_config({"station": {"id": "lab-a"}, "media": media}))
    return parts.control, parts


def handle(control: StationControl, verb: str, request: object) -> dict[str, Any]:
    return asyncio.run(control.handle(verb, request))


def test_the_mqtt_clock_names_the_position_topic() -> None:
    assert MqttFollowClock.subscriptions("daq/lab-a") == ("daq/lab-a/media/position",)
    assert input_topics("daq/lab-a") == ("daq/lab-a/media/position",)


def test_clock_set_switches_and_replays_the_last_position() -> None:
    control, station = control_for()
    station.position(pos_msg(position_s=40.0, state="paused"), 123)  # heard while on the session clock
    reply = handle(control, "clock.set", {"clock": "mqtt", "id": 7})
    assert reply["ok"] and reply["id"] == 7
    clock = station.session.clock
    assert isinstance(clock, MqttFollowClock) and station.installed == [clock]
    assert [e[0] for e in station.events] == ["clock.found", "clock.set"]
    assert clock.current().state == "paused" and clock.current().media_ns == 40 * S
    station.position(pos_msg(position_s=41.0, state="playing"), 10**15)
    assert station.events[-1][0] == "clock.resume"
    station.position(b"{oops", 10**15 + 1)  # logged, not raised
    assert handle(control, "clock.set", {"clock": "none"})["ok"] and station.session.clock is None


def test_clock_set_refusals() -> None:
    control, station = control_for()
    assert "session" in handle(control, "clock.set", {})["error"]
    assert "mpv_socket" in handle(control, "clock.set", {"clock": "mpv"})["error"]
    assert "rate" in handle(control, "clock.set", {"clock": "session", "rate": "26"})["error"]
    assert isinstance(station.session.clock, SessionClock) and station.installed == []


def test_clock_set_mpv_keeps_the_socket_for_later() -> None:
    control, station = control_for()
    assert handle(control, "clock.set", {"clock": "mpv", "socket": "/tmp/a.sock"})["ok"]
    assert handle(control, "clock.set", {"clock": "session"})["ok"]
    reply = handle(control, "clock.set", {"clock": "mpv"})
    clock = station.session.clock
    assert reply["ok"] and isinstance(clock, MpvClock) and clock.socket_path == Path("/tmp/a.sock")


def test_session_verbs_on_a_followed_clock() -> None:
    control, station = control_for(clock="mqtt")
    reply = handle(control, "session.start", {})
    assert reply["ok"] and reply["session"] == station.session.session_id
    assert str(station.session.session_id).startswith("s-")
    assert "not the session clock" in handle(control, "session.pause", {})["error"]
    assert handle(control, "session.stop", {})["ok"] and station.session.session_id is None


def test_clock_set_session_during_a_session_starts_it() -> None:
    control, station = control_for(clock="mqtt")
    handle(control, "session.start", {})
    assert handle(control, "clock.set", {"clock": "session", "timecode": "00:01:00:00"})["ok"]
    clock = station.session.clock
    assert isinstance(clock, SessionClock) and clock.current().state == "running"
    assert clock.current().media_ns == 60 * S


# -- `daq session` requests -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "verb", "body"),
    [
        (["start"], "session.start", {}),
        (["start", "--timecode", "01:00:00:00"], "session.start", {"timecode": "01:00:00:00"}),
        (["pause"], "session.pause", {}),
        (["seek", "12.5"], "session.seek", {"media_s": 12.5}),
        (["mark", "laugh", "--dial", "p07"], "mark", {"label": "laugh", "dial": "p07"}),
        (["clock", "mpv", "--socket", "/tmp/mpv.sock"], "clock.set", {"clock": "mpv", "socket": "/tmp/mpv.sock"}),
        (["clock", "none"], "clock.set", {"clock": "none"}),
    ],
)
def test_session_cli_requests(argv: list[str], verb: str, body: dict[str, object]) -> None:
    from daq.cli import build_parser

    args = build_parser().parse_args(["session", *argv, "--broker", "mqtt://127.0.0.1:1", "--station", "x"])
    assert request_of(args) == (verb, body)
