"""`daq watch` in a real browser: headless Chromium (Debian's) driven by Playwright.

A real Mosquitto; `daq run` with 8 simulated dials at 20 Hz and one serial dial on a pseudo-terminal
(tests/ptydial.py); `daq watch` with a video made by mpv; the page. The traces grow, the group mean
is drawn, the video follows the session clock through a pause, a mark shows on the timeline, and
pulling the pty dial's cable (the daemon sees the device go and publishes its retained meta with
connected: false, as a real unplug) turns it to disconnected in the legend; plugged in again,
its trace goes on with a break. A screenshot is saved to tmp_path (and to
benchmarks/screenshots/watch.png when DAQ_UPDATE_SCREENSHOT=1: the test never changes the tree by itself).
Off loopback (`--host 127.0.0.2`) the page opens only through the URL with the token that `daq watch` prints.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.ptydial import PtyDial
from tests.support.procs import (
    REPO,
    Mosquitto,
    clean_env,
    daq_cmd,
    free_port,
    need,
    start_daq,
    stop_process,
    wait_port,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATION = "lab-w"
PTY_DIAL = "pty-09"
SIM_DIALS = [f"sim-{i:02d}" for i in range(1, 9)]
SCREENSHOT_COPY = REPO / "benchmarks" / "screenshots" / "watch.png"

pytestmark = pytest.mark.timeout(90)


class DialWriter:
    """Plays the pty dial: one reading line every 50 ms (a slow sine on 0..1023) until stopped."""

    def __init__(self, dial: PtyDial) -> None:
        self.dial = dial
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        k = 0
        while not self.stop.wait(0.05):
            value = int(512 + 400 * math.sin(k / 15))
            try:
                self.dial.write(b"%d\r\n" % value)
            except OSError:
                return
            k += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def make_video(path: Path, seconds: int = 60) -> Path:
    """A test-pattern WebM with a running counter, made by mpv (scripts/test installs it)."""
    subprocess.run(
        [
            need("mpv"),
            "--no-config",
            "--really-quiet",
            f"av://lavfi:testsrc=duration={seconds}:size=480x270:rate=25",
            f"--o={path}",
            "--of=webm",
            "--ovc=libvpx",
            "--ovcopts=b=300k,deadline=realtime,cpu-used=8",
        ],
        check=True,
        timeout=60,
        capture_output=True,
    )
    return path


def session(broker: str, cwd: Path, *args: str) -> dict[str, Any]:
    import json

    out = subprocess.run(
        daq_cmd("session", *args, "--broker", broker, "--station", STATION),
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    reply: dict[str, Any] = json.loads(out.stdout)
    return reply


@pytest.fixture
def pty_dial(tmp_path: Path) -> Iterator[PtyDial]:
    with PtyDial(tmp_path, "dial") as dial:
        yield dial


def test_watch_page_draws_the_group_live(tmp_path: Path, mosquitto: Mosquitto, pty_dial: PtyDial) -> None:
    need("mpv")
    if not Path(CHROMIUM).exists():
        raise RuntimeError("chromium is not installed: run scripts/test, which installs it (apt-get)")
    video = make_video(tmp_path / "session.webm")
    config = tmp_path / "station.toml"
    config.write_text(
        f'[station]\nid = "{STATION}"\n\n'
        f'[[dials]]\nid = "{PTY_DIAL}"\nprofile = "arduino-pot"\nport = "{pty_dial.path}"\n'
        "[dials.scale]\nmin = 0\nmax = 100\n"
    )
    web_port = free_port()
    url = f"http://127.0.0.1:{web_port}/"
    procs: list[subprocess.Popen[bytes]] = []
    writer = DialWriter(pty_dial)
    try:
        watch = start_daq(
            ["watch", "--broker", mosquitto.url, "--station", STATION, "--port", str(web_port), "--video", str(video)],
            tmp_path,
            "watch",
        )
        procs.append(watch)
        wait_port(web_port)
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 1000},
            )
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(url)

                def state() -> dict[str, Any]:
                    value: dict[str, Any] = page.evaluate("window.dialdaqState")
                    return value

                def wait_state(
                    check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20.0
                ) -> dict[str, Any]:
                    deadline = time.monotonic() + timeout
                    last: dict[str, Any] = {}
                    while time.monotonic() < deadline:
                        last = state()
                        try:
                            if check(last):
                                return last
                        except (KeyError, TypeError):
                            pass
                        time.sleep(0.1)
                    raise AssertionError(f"timed out waiting for {what}; page state: {last}")

                # No station yet: the page says what it waits for.
                wait_state(lambda s: s["connected"] and s["broker"], "the page to connect")
                assert "waiting for a station on daq/lab-w" in page.inner_text("#no-station")

                station = start_daq(
                    ["run", "--config", str(config), "--broker", mosquitto.url, "--simulate", "8", "--rate", "20"],
                    tmp_path,
                    "station",
                )
                procs.append(station)

                def dials(s: dict[str, Any]) -> dict[str, Any]:
                    found: dict[str, Any] = s["stations"][STATION]["dials"]
                    return found

                # The traces grow: every dial has points, and more of them a moment later.
                first = wait_state(
                    lambda s: all(dials(s)[d]["points"] >= 4 for d in [*SIM_DIALS, PTY_DIAL]),
                    "points of every dial (the pty dial after its 2 s settle)",
                )
                first_points = {d: v["points"] for d, v in dials(first).items()}
                second = wait_state(
                    lambda s: all(dials(s)[d]["points"] >= first_points[d] + 4 for d in first_points),
                    "the traces to grow",
                )
                assert all(v["drawn"] > 0 and v["state"] == "connected" for v in dials(second).values())
                # The group mean with its band is drawn.
                lab = second["stations"][STATION]
                assert lab["mean"]["points"] >= 8 and lab["mean"]["drawn"] >= 8
                legend = page.locator(f'section[data-station="{STATION}"] ul.legend')
                assert legend.locator('li[data-dial="__mean"]').inner_text().startswith("group mean")
                assert legend.locator(f'li[data-dial="{PTY_DIAL}"]').get_attribute("data-state") == "connected"

                # The current timecode and the video follow the session clock.
                playing = wait_state(
                    lambda s: (
                        s["video"]["readyState"] >= 2 and not s["video"]["paused"] and abs(s["video"]["drift"]) < 0.3
                    ),
                    "the video to play in step with the session clock",
                )
                media = playing["stations"][STATION]["media_s"]
                assert abs(playing["video"]["currentTime"] - media) < 0.5
                assert playing["stations"][STATION]["timecode"].startswith("00:00:")

                # Pause: the video pauses at the session's position; a pause marker is drawn.
                session(mosquitto.url, tmp_path, "pause")
                paused = wait_state(
                    lambda s: (
                        s["stations"][STATION]["clock"] == "paused"
                        and s["video"]["paused"]
                        and abs(s["video"]["drift"]) < 0.1
                    ),
                    "the video to pause with the session",
                )
                held = paused["video"]["currentTime"]
                time.sleep(0.6)
                assert state()["video"]["currentTime"] == pytest.approx(held, abs=0.05)
                mark = session(mosquitto.url, tmp_path, "mark", "client laughs")
                session(mosquitto.url, tmp_path, "resume")
                resumed = wait_state(
                    lambda s: (
                        s["stations"][STATION]["clock"] == "running"
                        and not s["video"]["paused"]
                        and {"mark", "clock.pause", "clock.resume"} <= set(s["stations"][STATION]["eventKinds"])
                    ),
                    "the video to resume, with the pause and the mark on the timeline",
                )
                assert resumed["stations"][STATION]["markers"] >= 2  # the pause (with its resume) and the mark
                assert mark["media_s"] == pytest.approx(paused["stations"][STATION]["media_s"], abs=0.05)

                # Unplug the pty dial: the daemon publishes its meta with connected: false.
                writer.close()
                pty_dial.unplug()
                wait_state(lambda s: dials(s)[PTY_DIAL]["state"] == "disconnected", "the unplugged dial in the legend")
                item = legend.locator(f'li[data-dial="{PTY_DIAL}"]')
                assert item.get_attribute("data-state") == "disconnected"
                assert "disconnected" in item.inner_text()
                assert all(dials(state())[d]["connected"] for d in SIM_DIALS)
                wait_state(
                    lambda s: "device.disconnected" in s["stations"][STATION]["eventKinds"],
                    "the unplug on the timeline",
                )
                page.click('#spans button[data-span="60"]')  # one minute across: this run is short
                time.sleep(1.0)  # a second of the other dials going on without it
                assert not errors, errors
                shot = tmp_path / "watch.png"
                page.screenshot(path=str(shot), full_page=True)
                if os.environ.get("DAQ_UPDATE_SCREENSHOT"):  # refresh the README's picture on purpose only
                    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(shot, SCREENSHOT_COPY)

                # Plug it in again: the trace goes on, with a break where the cable was out.
                pty_dial.replug()
                writer = DialWriter(pty_dial)
                before = dials(state())[PTY_DIAL]["points"]
                wait_state(
                    lambda s: (
                        dials(s)[PTY_DIAL]["connected"]
                        and dials(s)[PTY_DIAL]["breaks"] >= 1
                        and dials(s)[PTY_DIAL]["points"] > before + 2
                    ),
                    "the replugged dial to draw again, after a break",
                )

                page.screenshot(path=str(tmp_path / "watch-replugged.png"), full_page=True)
                check_timecode_labels(page)
                assert not errors, errors
            finally:
                browser.close()
    finally:
        writer.close()
        for proc in reversed(procs):
            stop_process(proc)
    assert procs[0].returncode == 0, (tmp_path / "watch.log").read_text()


def check_timecode_labels(page: Page) -> None:
    """The page labels media seconds exactly as daq.timecode does, drop-frame included."""
    from daq.subscribers.watch.state import timebase
    from daq.timecode import FrameRate, frame_to_timecode, timecode_to_frame

    for label in ("25", "23.976", "29.97df", "29.97", "59.94df", "30"):
        rate = FrameRate.parse(label)
        tb = timebase(label)
        frames = [0, 1, 29, 1799, 1800, 1801, 17981, 17982, 17983, 107891, 107892, 35999, 36000, 2_000_000]
        got = page.evaluate("([frames, tb]) => frames.map((f) => window.dialdaq.frameToTimecode(f, tb))", [frames, tb])
        assert got == [frame_to_timecode(f % rate.frames_per_day, rate) for f in frames], label
        back = page.evaluate("([tcs, tb]) => tcs.map((t) => window.dialdaq.timecodeToSeconds(t, tb))", [got, tb])
        assert [round(s * float(rate.fps)) for s in back] == [timecode_to_frame(t, rate) for t in got], label


def test_watch_page_off_loopback_opens_with_the_printed_token_only(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """`daq watch --host 127.0.0.2`: 127.0.0.2 is not a loopback name by the door's rules, so the token
    is needed (the traffic stays on this machine). The printed URL opens the page and its WebSocket
    (the first visit sets the cookie, which the page's requests then carry); without it, 403."""
    import re

    if not Path(CHROMIUM).exists():
        raise RuntimeError("chromium is not installed: run scripts/test, which installs it (apt-get)")
    host, web_port = "127.0.0.2", free_port()
    watch = start_daq(
        ["watch", "--broker", mosquitto.url, "--station", STATION, "--host", host, "--port", str(web_port)],
        tmp_path,
        "watch",
    )
    log = tmp_path / "watch.log"
    try:
        deadline = time.monotonic() + 20
        while "?token=" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        found = re.search(rf"(http://{re.escape(host)}:{web_port}/\?token=[A-Za-z0-9_-]+)", log.read_text())
        assert found, log.read_text()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page()
                refused = page.goto(f"http://{host}:{web_port}/")
                assert refused is not None and refused.status == 403
                opened = page.goto(found.group(1))
                assert opened is not None and opened.status == 200
                assert page.url == f"http://{host}:{web_port}/", "the token leaves the address bar"
                deadline = time.monotonic() + 20
                connected = False
                while time.monotonic() < deadline and not connected:
                    connected = bool(page.evaluate("window.dialdaqState && window.dialdaqState.connected"))
                    time.sleep(0.1)
                assert connected, "the page's WebSocket opened with the cookie"
            finally:
                browser.close()
    finally:
        assert stop_process(watch) == 0, log.read_text()
