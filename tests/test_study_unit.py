"""The study's parts without a browser: segment picks (gap, lag), codebook, interview files, video identity."""

from __future__ import annotations

import json
import math
import random
import subprocess
from pathlib import Path

import pytest

from daq.export.reader import ExportError, read_session
from daq.export.resample import resample
from daq.export.segments import top_windows
from daq.study.codebook import DEFAULT_HELPFUL, CodebookError, load_codebook
from daq.study.interview import Interview
from daq.study.picks import pick_segments, segment_key
from daq.study.sitting import SITTING_FILE, check_video, read_sitting, video_id, write_json_atomic
from tests.support.procs import clean_env, daq_cmd
from tests.test_export import SESSION, STATION, write_dial

SERIES = [5, 6, 9, 8, 2, 1, 5, 7, 7, 3]


def grid_of(tmp_path: Path, values: list[float], rate_hz: float = 1.0):
    folder = tmp_path / "rec" / STATION / SESSION
    write_dial(folder, "a", [(float(i), v) for i, v in enumerate(values)])
    return resample(read_session(folder), rate_hz=rate_hz)


def test_picks_without_gap_or_lag_are_the_export_segments(tmp_path: Path) -> None:
    rng = random.Random(7)
    values = [round(50 * math.sin(i / 9) + rng.uniform(-20, 20), 3) for i in range(300)]
    grid = grid_of(tmp_path, values)
    for count, window in ((3, 5.0), (2, 12.0), (5, 1.0)):
        assert pick_segments(grid, count, window) == top_windows(grid, "mean", count, window)


def test_a_minimum_gap_keeps_segments_apart_and_a_lag_shifts_them_back(tmp_path: Path) -> None:
    grid = grid_of(tmp_path, [float(v) for v in SERIES])
    # 2 s windows; means by start: 0:5.5 1:7.5 2:8.5 3:5 4:1.5 5:3 6:6 7:7 8:5
    plain = [(w.kind, w.start_s) for w in pick_segments(grid, 2, 2.0)]
    assert plain == [("helpful", 2.0), ("helpful", 7.0), ("hindering", 4.0), ("hindering", 0.0)]
    # A 2 s gap: starts at least 4 s apart. helpful 2, then 7 (5 apart); no hindering start is 4 s from both.
    gapped = [(w.kind, w.start_s) for w in pick_segments(grid, 2, 2.0, gap_s=2.0)]
    assert gapped == [("helpful", 2.0), ("helpful", 7.0)]
    lagged = pick_segments(grid, 2, 2.0, lag_s=1.0)
    assert [(w.kind, w.start_s, w.end_s) for w in lagged] == [
        ("helpful", 1.0, 3.0),
        ("helpful", 6.0, 8.0),
        ("hindering", 3.0, 5.0),
        ("hindering", -1.0, 1.0),
    ]
    assert lagged[0].start_timecode == "00:00:01:00" and lagged[3].start_timecode is None
    with pytest.raises(ExportError, match="gap"):
        pick_segments(grid, 2, 2.0, gap_s=-1)
    with pytest.raises(ExportError, match="whole number of grid steps"):
        pick_segments(grid, 2, 2.5)


def test_codebook_default_and_from_toml(tmp_path: Path) -> None:
    assert load_codebook(None).helpful == DEFAULT_HELPFUL
    path = tmp_path / "codes.toml"
    path.write_text('name = "lab"\nhelpful = ["insight", "warmth"]\nhindering = ["rushed"]\n')
    book = load_codebook(path)
    assert (book.name, book.helpful, book.hindering) == ("lab", ("insight", "warmth"), ("rushed",))
    path.write_text('helpful = ["a"]\n')
    with pytest.raises(CodebookError, match="no 'hindering' list"):
        load_codebook(path)
    path.write_text('helpful = ["a"]\nhindering = ["b"]\nhelpfull = []\n')
    with pytest.raises(CodebookError, match="unknown key"):
        load_codebook(path)


def test_interview_saves_both_files_and_reopens(tmp_path: Path) -> None:
    interview = Interview.open(tmp_path, STATION, SESSION)
    interview.set_settings({"count": 3, "window_s": 10, "gap_s": 0, "lag_s": 1.5, "lead_s": 3})
    segment = {
        "kind": "helpful",
        "rank": 1,
        "start_s": 12.0,
        "end_s": 22.0,
        "start_timecode": "00:00:12:00",
        "end_timecode": "00:00:22:00",
        "mean": 7.25,
        "target": "mean",
    }
    key = segment_key("helpful", 12.0, 22.0)
    interview.answer(key, segment, 'she said "yes", finally', ["empathy", "listening", "empathy"])
    again = Interview.open(tmp_path, STATION, SESSION)
    assert again.settings["lag_s"] == 1.5
    assert again.answers[key]["tags"] == ["empathy", "listening"]
    assert again.answers[key]["text"] == 'she said "yes", finally'
    rows = (tmp_path / "interview.csv").read_text().splitlines()
    assert rows[0].startswith("kind,rank,start_s,end_s,start_timecode,end_timecode,mean,lag_s,tags,text")
    assert rows[1].startswith("helpful,1,12.0,22.0,00:00:12:00,00:00:22:00,7.25,1.5,empathy;listening,")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


def test_video_identity_and_the_mismatch_message(tmp_path: Path) -> None:
    one, other = tmp_path / "one.webm", tmp_path / "other.webm"
    one.write_bytes(b"video one")
    other.write_bytes(b"video two!")
    ident = video_id(one)
    assert ident.size == 9 and len(ident.sha256) == 64
    write_json_atomic(tmp_path / SITTING_FILE, {"video": ident.as_json()})
    sitting = read_sitting(tmp_path)
    assert check_video(sitting, ident) is None
    message = check_video(sitting, video_id(other))
    assert message is not None and "not the video of the session" in message and "one.webm" in message
    assert "other.webm" in message
    assert check_video(None, ident) is None


def test_review_refuses_a_folder_that_is_not_a_session(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    out = subprocess.run(
        daq_cmd("review", str(tmp_path), "--port", "0"), env=clean_env(), capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert "no dial files" in out.stderr and str(tmp_path) in out.stderr
    missing = subprocess.run(
        daq_cmd("review", str(tmp_path / "nope")), env=clean_env(), capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 2 and "not a folder" in missing.stderr


def test_the_session_still_reads_with_an_interview_beside_it(tmp_path: Path) -> None:
    folder = tmp_path / "rec" / STATION / SESSION
    write_dial(folder, "a", [(float(i), v) for i, v in enumerate(SERIES)])
    Interview.open(folder, STATION, SESSION).answer("helpful:1.000-2.000", {"kind": "helpful"}, "x", [])
    assert (folder / "interview.csv").is_file()
    assert [d.dial for d in read_session(folder).dials] == ["a"]


def test_export_carries_the_interview_rows(tmp_path: Path) -> None:
    folder = tmp_path / "rec" / STATION / SESSION
    write_dial(folder, "a", [(float(i), v) for i, v in enumerate(SERIES)])
    segment = {
        "kind": "helpful",
        "rank": 1,
        "start_s": 2.0,
        "end_s": 4.0,
        "start_timecode": "00:00:02:00",
        "end_timecode": "00:00:04:00",
        "mean": 8.5,
    }
    Interview.open(folder, STATION, SESSION).answer(segment_key("helpful", 2.0, 4.0), segment, "ok", ["empathy"])
    out = subprocess.run(
        daq_cmd("export", str(folder), "--segments", "1", "--window", "2", "--rate", "1", "--out", str(tmp_path / "x")),
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = (tmp_path / "x" / "interview.csv").read_text().splitlines()
    assert rows[1].startswith("lab-x/s-test,helpful,1,2,4,00:00:02:00,00:00:04:00,8.5,0,empathy,ok,")


def test_rate_refuses_a_video_that_is_not_the_earlier_sittings(tmp_path: Path) -> None:
    one, other = tmp_path / "one.webm", tmp_path / "other.webm"
    one.write_bytes(b"video one")
    other.write_bytes(b"video two!")
    write_json_atomic(tmp_path / SITTING_FILE, {"video": video_id(one).as_json()})
    out = subprocess.run(
        daq_cmd("rate", "--video", str(other), "--same-as", str(tmp_path), "--simulate", "--no-open", "--port", "0"),
        env=clean_env(), capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2
    assert "not the video of the session" in out.stderr and "one.webm" in out.stderr


def test_interview_json_is_what_the_page_reads(tmp_path: Path) -> None:
    interview = Interview.open(tmp_path, STATION, SESSION)
    interview.answer("hindering:1.000-3.000", {"kind": "hindering"}, "x", [])
    body = json.loads((tmp_path / "interview.json").read_text())
    assert body["station"] == STATION and body["answers"]["hindering:1.000-3.000"]["text"] == "x"


def test_page_app_serves_its_page_uncached_its_files_its_routes_and_a_video(tmp_path: Path) -> None:
    """daq.web.app, which every page is built on: `/`, `/static/...`, the routes, the value, a video."""
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from daq.web.app import page_app, video_response

    (tmp_path / "page.html").write_text("<p>the page</p>")
    (tmp_path / "page.js").write_text("let x = 1;")
    clip = tmp_path / "clip.webm"
    clip.write_bytes(bytes(range(256)) * 4)
    key = web.AppKey("what", str)
    routes = web.RouteTableDef()

    @routes.get("/what")
    async def what(request: web.Request) -> web.Response:
        return web.Response(text=request.app[key])

    @routes.get("/video")
    async def video(request: web.Request) -> web.StreamResponse:
        return video_response(clip)

    async def scenario() -> None:
        async with TestClient(TestServer(page_app(tmp_path, "page.html", routes, key, "shown"))) as client:
            page = await client.get("/")
            assert page.status == 200 and page.headers["Cache-Control"] == "no-cache"
            assert await page.text() == "<p>the page</p>"
            script = await client.get("/static/page.js")
            assert script.status == 200 and "javascript" in script.headers["Content-Type"]
            assert await (await client.get("/what")).text() == "shown"
            part = await client.get("/video", headers={"Range": "bytes=10-19"})
            assert part.status == 206 and part.headers["Content-Type"] == "video/webm"
            assert await part.read() == bytes(range(10, 20))
            assert (await client.get("/static/../clip.webm")).status in (403, 404)

    asyncio.run(scenario())
