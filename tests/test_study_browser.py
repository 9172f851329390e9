"""The micro-process study in a real browser: a sitting with `daq rate`, then its interview with `daq review`.

Headless Chromium (Debian's) driven by Playwright, a real Mosquitto, a test video made by ffmpeg
(testsrc with the frame number burnt in), and a simulated dial.

`daq rate`: the page's video is the media clock. Played, paused, resumed, sought forward and back,
played to its end: every recorded sample's `frame` is the frame the page presented at the sample's
read time, within 1 frame; sitting.json names the video (size, sha256), the rater and the dimension.
Frame callbacks made late on purpose (a busy main thread) while the video plays on are no stall.

`daq review` on that session: the page's 3 helpful and 3 hindering segments are the ones
`daq export --segments 3` finds; a segment's button (and its number key) plays it from the lead before
its start to its end, and stops there; an answer and two tags survive SIGKILL of the server and a
reload, and are in interview.json. Another video is refused with a clear message on the page and in
the terminal. Screenshots go to tmp_path (and to benchmarks/screenshots/ with DAQ_UPDATE_SCREENSHOT=1).
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from tests.support.procs import (
    REPO,
    Mosquitto,
    Sub,
    clean_env,
    daq_cmd,
    free_port,
    need,
    start_daq,
    stop_process,
    wait_for,
    wait_port,
)
from tests.test_watch_browser import CHROMIUM, CHROMIUM_FLAGS

STATION = "lab-r"
SHOTS = REPO / "benchmarks" / "screenshots"
LEAD_S = 3.0

pytestmark = pytest.mark.timeout(240)


def make_video(path: Path, seconds: int, pattern: str = "testsrc") -> Path:
    """A 25 fps WebM (VP8) test pattern with the frame number burnt in."""
    subprocess.run(
        [
            need("ffmpeg"), "-v", "error", "-y",
            "-f", "lavfi", "-i", f"{pattern}=duration={seconds}:size=320x180:rate=25",
            "-vf", "drawtext=text='%{frame_num}':fontsize=40:fontcolor=white:box=1:boxcolor=black:x=8:y=8",
            "-c:v", "libvpx", "-b:v", "300k", "-deadline", "realtime", "-cpu-used", "8", str(path),
        ],
        check=True,
        timeout=60,
        capture_output=True,
    )  # fmt: skip
    return path


def wait_js(page: Page, expression: str, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = page.evaluate(expression)
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} ({expression} was {last!r})")


def read_samples(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def shoot(page: Page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    if os.environ.get("DAQ_UPDATE_SCREENSHOT"):  # refresh the README's pictures on purpose only
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SHOTS / name)


def browser_context(pw: Any, tmp_path: Path) -> BrowserContext:
    if not Path(CHROMIUM).exists():
        raise RuntimeError("chromium is not installed: run scripts/test, which installs it (apt-get)")
    context: BrowserContext = pw.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_FLAGS, "--autoplay-policy=no-user-gesture-required"],
        viewport={"width": 1280, "height": 800},
    )
    return context


def start_rate(tmp_path: Path, video: Path, broker_url: str, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """`daq rate` of `video` with a simulated dial, on a free port (listening when this returns)."""
    port = free_port()
    rate = start_daq(
        ["rate", "--video", str(video), "--simulate", *extra, "--out", "rec", "--broker", broker_url,
         "--station", STATION, "--port", str(port), "--no-open"],
        tmp_path,
        "rate",
    )  # fmt: skip
    try:
        wait_port(port, 30)
    except BaseException:
        stop_process(rate)
        raise
    return rate, port


def reach_rate(page: Page, url: str) -> None:
    """Open the sitting page and wait until it has the server's hello and a good clock offset."""
    page.goto(url)
    wait_js(page, "window.rateState.hello && window.rateState.bestRtt < 50", "the page to reach daq rate")


def sit(page: Page, tmp_path: Path, url: str) -> list[list[float]]:
    """The rater's sitting: play, pause, resume, seek forward, seek back, to the end. Returns the presented frames."""
    reach_rate(page, url)
    page.keyboard.press(" ")
    wait_js(page, "window.rateState.session && window.rateState.frames.length > 50", "2 s of playback in a session")
    page.keyboard.press(" ")  # pause
    wait_js(page, "window.rateState.state === 'paused'", "the pause to reach the server")
    time.sleep(1.5)
    page.keyboard.press(" ")
    wait_js(page, "window.rateState.state === 'playing'", "the resume to reach the server")
    time.sleep(1.5)
    shoot(page, tmp_path, "rate.png")
    page.keyboard.press("ArrowRight")  # +5 s
    time.sleep(2.0)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # -10 s
    done = wait_js(page, "window.rateState.done", "the end of the video", timeout=60)
    assert done["type"] == "done"
    frames: list[list[float]] = page.evaluate("window.rateState.frames")
    (tmp_path / "frames.json").write_text(json.dumps(frames))
    assert page.evaluate("window.rateState.errors") == []
    return frames


FRAME_S = 0.04  # 25 fps
# The station republishes every position it applied on this topic (daq/study/rate.py), after its clock has it:
# a subscriber's time of arrival is a time by which the station knew that report (it may have known a bit before).
POSITIONS = f"daq/{STATION}/media/position"
MIRROR_FORMAT = '{"topic":"%t","retain":%r,"at":"%U","payload":%p}'  # %U: the arrival, Unix time with ns


def arrivals(messages: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """The station's positions in the order it applied them, each with the time (wall ns) by which its clock
    went by it: the arrival here, or the time the position is dated for when later (a frame's display time)."""
    out = []
    for m in messages:
        if m["topic"] == POSITIONS:
            body, at = m["payload"], int(m["at"].replace(".", ""))
            out.append((body, max(at, int(body.get("t_ns", 0)))))
    return out


class Known:
    """By when the station had each frame's report, and the report after it (see `arrivals`).

    A frame whose report is not there (before the session) counts as known when shown: no excuse for it.
    """

    def __init__(self, frames: list[list[float]], mirrored: list[tuple[dict[str, Any], int]]) -> None:
        order = {(float(p["t_ns"]), p.get("position_s")): k for k, (p, _) in enumerate(mirrored) if "t_ns" in p}
        self.frames, self.mirrored = frames, mirrored
        self.index = [order.get((float(t), m)) for t, _, m in frames]
        ends = [at for p, at in mirrored if p.get("state") == "stopped"]
        self.end_at = ends[0] if ends else int(frames[-1][0])  # the end of the video, as a report after the last frame

    def report(self, j: int) -> int:
        """By when the station had the report of frames[j] (len(frames): of the end)."""
        if j >= len(self.frames):
            return self.end_at
        k = self.index[j]
        return self.mirrored[k][1] if k is not None else int(self.frames[j][0])

    def next_report(self, j: int) -> int:
        """By when the station had the first report after frames[j]'s (a stall or pause is reported there)."""
        k = self.index[j]
        if k is None:
            return int(self.frames[j][0])
        return self.mirrored[k + 1][1] if k + 1 < len(self.mirrored) else self.end_at


def discontinuities(frames: list[list[float]]) -> list[int]:
    """Each j where frames[j - 1] to frames[j] is a seek (media does not follow display time) or a stall (a frame
    held for over 1.5 frames); len(frames) for the end of the video (the last frame stays on screen)."""
    out = []
    for j in range(1, len(frames)):
        (t0, _, m0), (t1, _, m1) = frames[j - 1], frames[j]
        shown_s, media_s = (t1 - t0) / 1e9, m1 - m0
        if abs(shown_s - media_s) > 1.5 * FRAME_S or shown_s > 1.5 * FRAME_S:
            out.append(j)
    return [*out, len(frames)]


def excused(frames: list[list[float]], known: Known, gaps: list[int], t_ns: int, frame: int) -> bool:
    """A sample read around a discontinuity before the station could know of it, so on what it knew.

    From 1.5 frames after frames[j - 1] (the frame before a discontinuity at j), the sample may be modelled on
    from it until the station had the page's next report (the stall, pause or seek, or frames[j]); hold it until
    the station had frames[j]'s report; hold frames[j] (the page reports the first frame after a seek or stall
    held) until it had the report of frames[j + 1], the frame that plays on. Causal, not timed: on a loaded
    machine a frame callback, the WebSocket or the station may be late; a sample read after the station had the
    report that puts it right is never excused.
    """
    for j in gaps:
        t0, f0, _ = frames[j - 1]
        t1 = frames[j][0] if j < len(frames) else known.end_at
        if t_ns < min(t0 + 1.5 * FRAME_S * 1e9, t1):
            continue
        modelled = int(f0) + int((t_ns - t0) / 1e9 / FRAME_S)
        if abs(frame - modelled) <= 1 and t_ns <= known.next_report(j - 1):
            return True
        if abs(frame - int(f0)) <= 1 and t_ns <= known.report(j):
            return True
        if j < len(frames) and abs(frame - int(frames[j][1])) <= 1 and t_ns <= known.report(j + 1):
            return True
    return False


def check_frames(samples: list[dict[str, str]], frames: list[list[float]], known: Known) -> list[tuple[int, int, int]]:
    """Each sample's frame is the one presented at its read time (within 1), through the pause and the seeks.

    Returns the samples excused as read before the station had the report of a seek or stall (see `excused`).
    """
    shown_at = [f[0] for f in frames]
    assert shown_at == sorted(shown_at)
    placed = [s for s in samples if s["frame"]]
    assert len(placed) >= 200, f"only {len(placed)} samples with a frame"
    gaps = discontinuities(frames)
    off: list[tuple[int, int, int, list[tuple[int, int]]]] = []
    late: list[tuple[int, int, int]] = []
    for s in placed:
        t_ns, frame = int(s["t_ns"]), int(s["frame"])
        i = bisect.bisect_right(shown_at, t_ns) - 1
        assert i >= 0, f"a sample at {t_ns} before the first presented frame has a frame ({frame})"
        if abs(frame - int(frames[i][1])) <= 1:
            continue
        if excused(frames, known, gaps, t_ns, frame):
            late.append((t_ns, frame, int(frames[i][1])))
            continue
        near = [(int(f[0]) - t_ns, int(f[1])) for f in frames[max(0, i - 2) : i + 3]]
        off.append((t_ns, frame, int(frames[i][1]), near))
    assert not off, f"{len(off)} of {len(placed)} samples more than 1 frame from the presented one: {off[:10]}"
    # A count, not a time: it still fails a page or station that is slow by design (each late sample is excused
    # causally). ~22 samples is ~1 s of readings before the station knew, over 6 discontinuities; under a 2-core
    # load here, 0-2 (reports reached the station up to ~100 ms after the frame's display time).
    assert len(late) <= 0.05 * len(placed), f"{len(late)} of {len(placed)} samples late around discontinuities"
    media = [float(s["media_s"]) for s in placed]
    still = max(sum(1 for m in media if m == value) for value in set(media))
    assert still >= 20, "the pause (1.5 s at 20 Hz) shows as samples on one media position"
    backs = sum(1 for a, b in itertools.pairwise(media) if b < a - 1)
    jumps = sum(1 for a, b in itertools.pairwise(media) if b > a + 3)
    assert backs >= 1 and jumps >= 1, "the seek forward and the seek back are in the samples"
    return late


def fetch_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_a_sitting_then_its_interview(tmp_path: Path, mosquitto: Mosquitto) -> None:
    video = make_video(tmp_path / "session.webm", 16)
    procs: list[subprocess.Popen[bytes]] = []
    rate, rate_port = start_rate(tmp_path, video, mosquitto.url, "--rater", "client", "--dimension", "helpfulness")
    procs.append(rate)
    try:
        mirror = Sub(mosquitto.port, [POSITIONS], tmp_path / "positions.jsonl", extra=["-F", MIRROR_FORMAT])
        procs.append(mirror.proc)
        mirror.wait_subscribed()
        with sync_playwright() as pw:
            context = browser_context(pw, tmp_path)
            try:
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                frames = sit(page, tmp_path, f"http://127.0.0.1:{rate_port}/")
                assert rate.wait(30) == 0, (tmp_path / "rate.log").read_text()
                wait_for(
                    lambda: any(p.get("state") == "stopped" for p, _ in arrivals(mirror.messages())),
                    what="the end's position on the mirror",
                )
                folders = list((tmp_path / "rec" / STATION).glob("s-*"))
                assert len(folders) == 1, folders  # no `no-session` folder of the samples before playback
                folder = folders[0]
                samples = read_samples(folder / "sim-01.csv")
                late = check_frames(samples, frames, Known(frames, arrivals(mirror.messages())))
                print(f"{len(samples)} samples; {len(late)} read before the station had a seek or stall: {late}")
                sitting = json.loads((folder / "sitting.json").read_text())
                assert sitting["video"] == {
                    "file": "session.webm",
                    "path": str(video.resolve()),
                    "size": video.stat().st_size,
                    "sha256": hashlib.sha256(video.read_bytes()).hexdigest(),
                }
                assert (sitting["rater"], sitting["dimension"], sitting["dial"]) == ("client", "helpfulness", "sim-01")
                assert sitting["scale"]["labels"]["50"] == "very helpful"
                interview(page, tmp_path, folder, procs)
                mismatch(page, tmp_path, folder, procs)
                assert not errors, errors
            finally:
                context.close()
    finally:
        for proc in reversed(procs):
            stop_process(proc)


# Every 12th frame callback comes 100 ms late (2.5 frames), as on a busy machine whose main thread is
# held up, while playback runs on: the callback is delayed, not the video.
LATE_CALLBACKS = """
(() => {
  const real = HTMLVideoElement.prototype.requestVideoFrameCallback;
  window.lateCallbacks = 0;
  let n = 0;
  HTMLVideoElement.prototype.requestVideoFrameCallback = function (callback) {
    return real.call(this, (now, meta) => {
      n += 1;
      if (n % 12 === 0) { window.lateCallbacks += 1; setTimeout(() => callback(now, meta), 100); }
      else callback(now, meta);
    });
  };
})();
"""
# The stalls the video's own clock contradicts: its currentTime sampled on every animation frame (just before the
# page's watchdog, which registered its frame callback after this script), and each stall the page reports (the
# watchdog counted one) at a position that clock had already passed by a frame or more.
FALSE_STALLS = """
(() => {
  window.falseStalls = [];
  let clock = null, stalls = 0;
  const sample = () => {
    const video = document.getElementById("video");
    clock = video ? video.currentTime : null;
    requestAnimationFrame(sample);
  };
  requestAnimationFrame(sample);
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const st = window.rateState, body = JSON.parse(data);
    if (st && st.stalls > stalls && body.type === "position" && body.state === "paused") {
      stalls = st.stalls;
      if (clock !== null && clock - body.position_s >= st.rate.den / st.rate.num) {
        window.falseStalls.push({ position_s: body.position_s, currentTime: clock });
      }
    }
    return send.call(this, data);
  };
})();
"""


def test_a_late_frame_callback_is_no_stall(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A frame callback that comes late while the video plays on is not a stall: the page must not
    report the clock paused at the last frame (it did: the station's clock then held samples two
    frames back and jumped them forward at the next frame, which the sitting test caught twice
    under load, 9db7319). The video element's own clock tells the two apart."""
    rate, rate_port = start_rate(tmp_path, make_video(tmp_path / "late.webm", 8), mosquitto.url)
    try:
        with sync_playwright() as pw:
            context = browser_context(pw, tmp_path)
            try:
                context.add_init_script(LATE_CALLBACKS)
                context.add_init_script(FALSE_STALLS)
                page = context.new_page()
                reach_rate(page, f"http://127.0.0.1:{rate_port}/")
                page.keyboard.press(" ")
                wait_js(page, "window.lateCallbacks >= 8", "8 late frame callbacks", timeout=30)
                state = page.evaluate(
                    "({late: window.lateCallbacks, stalls: window.rateState.stalls, false: window.falseStalls,"
                    " errors: window.rateState.errors})"
                )
                paused = page.evaluate("document.getElementById('video').paused")
            finally:
                context.close()
    finally:
        stop_process(rate)
    assert not paused, "the video was to play on"
    # One stall reported per late callback before the fix (11 for 8-9), each at a frame the video's clock had
    # passed. A real stall (the decoder held up on a loaded machine, the clock held too) is still a stall, however
    # many there are: only the stalls the clock contradicts count.
    assert state["errors"] == [] and state["late"] >= 8, state
    assert state["false"] == [], f"{len(state['false'])} of {state['stalls']} stalls while the clock ran on: {state}"


# The media time of each frame callback on the review page while a segment plays to its stop (landed from its
# seek, not yet stopped); recorded before the page's own callback, so the stopping frame is the last one.
FRAMES_TO_THE_STOP = """
(() => {
  const real = HTMLVideoElement.prototype.requestVideoFrameCallback;
  window.framesToStop = [];
  HTMLVideoElement.prototype.requestVideoFrameCallback = function (callback) {
    return real.call(this, (now, meta) => {
      const app = window.reviewState;
      if (app && app.stopAt !== null && app.landedAt !== null) window.framesToStop.push(meta.mediaTime);
      callback(now, meta);
    });
  };
})();
"""


def export_segments(tmp_path: Path, folder: Path) -> list[dict[str, str]]:
    out = subprocess.run(
        daq_cmd("export", str(folder), "--segments", "3", "--window", "1", "--out", str(tmp_path / "export")),
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    with (tmp_path / "export" / "segments.csv").open() as handle:
        return list(csv.DictReader(handle))


def start_review(tmp_path: Path, folder: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    proc = start_daq(["review", str(folder), "--port", str(port), *extra], tmp_path, f"review-{port}")
    wait_port(port, 30)
    return proc


def interview(page: Page, tmp_path: Path, folder: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    expected = export_segments(tmp_path, folder)
    assert len(expected) == 6
    port = free_port()
    review = start_review(tmp_path, folder, port)
    procs.append(review)
    page.add_init_script(FRAMES_TO_THE_STOP)
    page.goto(f"http://127.0.0.1:{port}/")
    wait_js(page, "window.reviewState.ready", "the review page")
    window = page.locator("#set-window_s")
    window.fill("1")
    window.press("Tab")  # a change: the page asks for new segments and saves the settings
    wait_js(page, "window.reviewState.segments.every((s) => Math.abs(s.end_s - s.start_s - 1) < 1e-9)", "1 s windows")
    got = page.evaluate("window.reviewState.segments")
    assert [(s["kind"], s["rank"]) for s in got] == [(e["kind"], int(e["rank"])) for e in expected]
    for seg, row in zip(got, expected, strict=True):
        assert seg["start_s"] == pytest.approx(float(row["start_s"]), abs=1e-9)
        assert seg["end_s"] == pytest.approx(float(row["end_s"]), abs=1e-9)
        assert seg["mean"] == pytest.approx(float(row["mean"]), abs=1e-9)
        assert (seg["start_timecode"], seg["end_timecode"]) == (row["start_timecode"], row["end_timecode"])
    items = page.locator("#segments li")
    assert items.count() == 6
    assert expected[0]["start_timecode"] in items.nth(0).inner_text()

    def played(index: int, start: Callable[[], None]) -> None:
        seg = got[index]
        page.evaluate("window.framesToStop = []")
        start()
        wait_js(page, "window.reviewState.stoppedAt !== null", f"segment {index + 1} to play to its end", 30)
        state = page.evaluate(
            "({landed: reviewState.landedAt, reached: reviewState.reachedAt, stopped: reviewState.stoppedAt,"
            " duration: document.getElementById('video').duration, seen: window.framesToStop})"
        )
        assert state["landed"] == pytest.approx(max(0.0, seg["start_s"] - LEAD_S), abs=0.001)
        # it played through to the end (the frame that covers it, or the next one) and stopped on the end;
        # a segment at the very end may end a grid step past the video (the position reported a little past
        # the end, under load): that one stops at the video's end
        end = min(seg["end_s"], state["duration"])
        assert end - FRAME_S <= state["reached"]
        # and it stopped at the first frame callback past the end (or a timeupdate before it), however late
        # the callbacks came: no frame callback before the stopping one saw the end (1 ms: the page's margin)
        seen = state["seen"]
        past = [m for m in seen if m >= end - 1e-3]
        assert past in ([], [seen[-1]]) and all(m == state["reached"] for m in past), (end, state["reached"], seen)
        assert state["stopped"] == pytest.approx(end, abs=0.001)
        time.sleep(0.5)
        assert page.evaluate("document.getElementById('video').paused")
        assert page.evaluate("document.getElementById('video').currentTime") == pytest.approx(
            state["stopped"], abs=0.01
        )

    played(0, lambda: items.nth(0).locator("button.play").click())
    page.locator("body").click(position={"x": 5, "y": 5})  # focus off the button: keys go to the page
    played(3, lambda: page.keyboard.press("4"))  # number keys pick a segment
    assert page.evaluate("window.reviewState.selected") == 3
    # The keyboard alone: space plays and pauses, an arrow steps 1 s.
    video = "document.getElementById('video')"
    page.keyboard.press(" ")
    wait_js(page, f"!{video}.paused", "space to play")
    page.keyboard.press(" ")
    wait_js(page, f"{video}.paused", "space to pause")
    before = page.evaluate(f"{video}.currentTime")
    page.keyboard.press("ArrowRight")
    wait_js(page, f"!{video}.seeking && Math.abs({video}.currentTime - {before} - 1) < 0.01", "→ to step 1 s")

    # An answer with two tags, saved on every change; the server killed; started again; the page reloaded.
    second = items.nth(1)
    second.locator("textarea").click()
    second.locator("textarea").press_sequentially("the therapist named what I felt", delay=5)
    second.locator("input[value='empathy']").focus()
    page.keyboard.press(" ")  # space ticks a focused tag
    page.keyboard.press("Escape")
    second.locator("input[value='listening']").check()
    wait_js(page, "window.reviewState.pending === 0 && window.reviewState.saves >= 3", "the answer to be saved")
    assert page.inner_text("#saved") == "all saved"
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, tmp_path, "review.png")
    os.kill(review.pid, signal.SIGKILL)
    review.wait(10)
    key = got[1]["key"]
    saved = json.loads((folder / "interview.json").read_text())["answers"][key]
    assert saved["text"] == "the therapist named what I felt"
    assert sorted(saved["tags"]) == ["empathy", "listening"]
    assert saved["start_timecode"] == got[1]["start_timecode"]
    with (folder / "interview.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["start_timecode"], r["text"]) for r in rows] == [(got[1]["start_timecode"], saved["text"])]
    assert sorted(rows[0]["tags"].split(";")) == ["empathy", "listening"]
    review = start_review(tmp_path, folder, port)
    procs.append(review)
    page.reload()
    wait_js(page, "window.reviewState.ready", "the review page after the restart")
    assert page.input_value("#set-window_s") == "1"  # the settings came back too, so the same segments
    again = page.locator(f'#segments li[data-key="{key}"]')
    assert again.locator("textarea").input_value() == "the therapist named what I felt"
    assert again.locator("input[value='empathy']").is_checked()
    assert again.locator("input[value='listening']").is_checked()
    assert not again.locator("input[value='support or praise']").is_checked()
    stop_process(review)


def mismatch(page: Page, tmp_path: Path, folder: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    other = make_video(tmp_path / "other.webm", 4, "testsrc2")
    port = free_port()
    review = start_review(tmp_path, folder, port, "--video", str(other))
    procs.append(review)
    page.goto(f"http://127.0.0.1:{port}/")
    wait_js(page, "window.reviewState.ready", "the review page with another video")
    banner = page.inner_text("#video-note")
    assert "not the video of the session" in banner and "other.webm" in banner and "session.webm" in banner
    assert fetch_status(f"http://127.0.0.1:{port}/video") == 404
    stop_process(review)
    assert "not the video of the session" in (tmp_path / f"review-{port}.log").read_text()
