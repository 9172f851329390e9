"""`daq report` opened in real headless Chromium (Debian's, driven by Playwright) with the network off.

Two sittings of one video in the recorder's format (tests/support/sittings.py): the client from the
start, the therapist from 00:00:20:00 with a pause and a seek back; a mark in the client's
events.jsonl and two interview answers. The page must draw both traces, the mean and its band, six
numbered segments, the mark, the pause and the seek, and the agreement, lag and accuracy tables
with the numbers `daq export` gives; and it must not ask for anything over the network. A
screenshot goes to tmp_path (and to benchmarks/screenshots/report.png when DAQ_UPDATE_SCREENSHOT=1).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from daq.export.analysis import AnalysisOptions, analyse
from daq.export.report_data import clock_events
from daq.export.sittings import read_sittings
from tests.support.procs import REPO, clean_env, daq_cmd
from tests.support.sittings import T0, rater_samples, smooth_signal, write_dial_file, write_summary

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SCREENSHOT_COPY = REPO / "benchmarks" / "screenshots" / "report.png"
VIDEO = {"name": "session-07.mp4", "size": 4242, "sha256": "0f" * 32}

pytestmark = pytest.mark.timeout(90)


def therapist_samples() -> list[tuple[int, float | None, float]]:
    """From media 20 s at 20 Hz, 1.5 s late; paused 4 s at media 60; at media 100 a seek back to 90; to 150."""
    signal = smooth_signal(5, 160)
    out: list[tuple[int, float | None, float]] = []
    t_ns = T0

    def play(start: float, end: float) -> None:
        nonlocal t_ns
        media = start
        while media < end - 1e-9:
            out.append((t_ns, media, round(float(signal(np.array([media - 1.5]))[0]), 6)))
            t_ns += 50_000_000
            media = round(media + 0.05, 6)

    play(20.0, 60.0)
    for _ in range(80):  # 4 s paused at media 60: the dial still reads, media time stands still
        out.append((t_ns, 60.0, out[-1][2]))
        t_ns += 50_000_000
    play(60.0, 100.0)
    play(90.0, 150.0)  # the seek back: media goes 99.95 -> 90
    return out


def make_sittings(root: Path) -> list[Path]:
    signal = smooth_signal(5, 160)
    client = root / "rec" / "lab-a" / "s-client"
    write_dial_file(client, "lab-a", "s-client", "p07", rater_samples(signal, 0.0, 0.3, 1, 150))
    write_summary(client, "lab-a", "s-client", ["p07"], rater="client", video=VIDEO)
    mark = {"v": 1, "station": "lab-a", "boot": "b1", "t_ns": T0 + 40 * 10**9, "kind": "mark", "dial": None,
            "message": "laugh", "data": {"label": "laugh", "media_s": 40.0, "timecode": "00:00:40:00"}}  # fmt: skip
    (client / "events.jsonl").write_text(json.dumps(mark) + "\n")
    answers = {
        "answers": [
            {
                "kind": "helpful",
                "rank": 1,
                "start_timecode": "00:01:10:00",
                "end_timecode": "00:01:20:00",
                "answer": "She named what I was <feeling>",
                "tags": ["empathy", "processing emotion"],
            },
            {"kind": "hindering", "rank": 1, "start_s": 30.0, "end_s": 40.0, "text": "Too soon", "tags": ["too soon"]},
        ]
    }
    (client / "interview.json").write_text(json.dumps(answers))
    therapist = root / "rec" / "lab-a" / "s-therapist"
    write_dial_file(therapist, "lab-a", "s-therapist", "p07", therapist_samples())
    write_summary(therapist, "lab-a", "s-therapist", ["p07"], rater="therapist", video=VIDEO)
    return [client, therapist]


def test_pauses_and_seeks_are_read_from_the_samples(tmp_path: Path) -> None:
    folders = make_sittings(tmp_path)
    events = clock_events(read_sittings(folders).sittings[1])
    assert [(e.kind, round(e.media_s, 2)) for e in events] == [("pause", 60.0), ("seek", 99.95)]
    assert events[0].duration_s is not None and abs(events[0].duration_s - 4.0) < 0.1
    assert events[1].to_s == 90.0
    assert clock_events(read_sittings(folders).sittings[0]) == []


def test_report_is_one_self_contained_file(tmp_path: Path) -> None:
    folders = make_sittings(tmp_path)
    out = tmp_path / "report.html"
    done = subprocess.run(
        daq_cmd("report", *map(str, folders), "--lag", "auto", "--target", "client", "--out", str(out)),
        env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    for outside in ("http://", "https://", " src=", "<link", "@import", "url("):
        assert outside not in page, outside
    assert "She named what I was &lt;feeling&gt;" in page  # escaped, never markup
    # `daq export` carries the interview answers with their segments' times
    done = subprocess.run(
        daq_cmd("export", *map(str, folders), "--out", str(tmp_path / "export")),
        env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with (tmp_path / "export" / "interview.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["sitting"], r["kind"], r["rank"], r["start_timecode"], r["start_s"], r["tags"]) for r in rows] == [
        ("lab-a/s-client", "helpful", "1", "00:01:10:00", "", "empathy;processing emotion"),
        ("lab-a/s-client", "hindering", "1", "", "30", "too soon"),
    ]
    done = subprocess.run(
        daq_cmd("report", str(tmp_path / "nowhere"), "--out", str(out)),
        env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "not a folder" in done.stderr


def test_report_in_chromium_offline(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        raise RuntimeError("chromium is not installed: run scripts/test, which installs it (apt-get)")
    folders = make_sittings(tmp_path)
    out = tmp_path / "report.html"
    args = ["--lag", "auto", "--target", "client", "--segments", "3", "--window", "10", "--gap", "2"]
    done = subprocess.run(
        daq_cmd("report", *map(str, folders), *args, "--out", str(out)),
        env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = analyse(
        folders, AnalysisOptions(lag="auto", target="client", segments=3, window_s=10.0, gap_s=2.0)
    ).summary()
    url = out.resolve().as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1240, "height": 900})
            requests: list[str] = []
            context.on("request", lambda request: requests.append(request.url))
            context.route("**/*", lambda route: route.abort() if route.request.url != url else route.continue_())
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_load_state("load")

            assert page.locator("svg#chart").bounding_box()["width"] > 800  # type: ignore[index]
            assert page.locator("g.trace").count() == 2
            assert page.locator('g.trace[data-rater="client"] polyline').count() >= 1
            assert page.locator('g.trace[data-rater="therapist"] polyline').count() >= 1
            assert page.locator("polyline.mean").count() >= 1 and page.locator("polygon.band").count() >= 1
            segments = page.locator("g.segment")
            assert segments.count() == 6
            assert [segments.nth(i).get_attribute("data-number") for i in range(6)] == [str(i) for i in range(1, 7)]
            assert page.locator("g.segment.helpful").count() == 3 and page.locator("g.segment.hindering").count() == 3
            assert page.locator("g.event.mark").count() == 1 and "laugh" in (
                page.locator("g.event.mark").text_content() or ""
            )
            assert page.locator("g.event.pause").count() == 1 and page.locator("g.event.seek").count() == 1

            agreement = page.locator("table.agreement tbody tr")
            assert agreement.count() == 8
            icc = agreement.nth(0).locator("td").all_inner_texts()
            assert icc[:2] == ["ICC(2,1)", "ICC(A,1)"] and icc[3] == f"{expected['agreement']['icc_2_1']:.3f}"
            lags = {
                row[0]: row
                for row in (r.locator("td").all_inner_texts() for r in page.locator("table.raters tbody tr").all())
            }
            assert lags["therapist"][3] == f"{expected['lag']['raters']['therapist']['lag_s']:.2f}"
            assert abs(float(lags["therapist"][3]) - 1.5) < 0.1
            accuracy = page.locator("table.accuracy tbody tr").first.locator("td").all_inner_texts()
            assert accuracy[0] == "therapist" and accuracy[1] == f"{expected['accuracy']['raters'][0]['r']:.3f}"
            assert page.locator("table.segments tbody tr").count() == 6
            interview = page.locator("table.interview tbody tr")
            assert interview.count() == 2 and "She named what I was <feeling>" in interview.first.inner_text()
            assert "empathy, processing emotion" in interview.first.inner_text()

            box = page.locator("svg#chart").bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 150)
            assert "client" in page.locator("#readout").inner_text() and ":" in page.locator("#readout").inner_text()

            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("DAQ_UPDATE_SCREENSHOT"):  # refresh the README's picture on purpose only
                SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT_COPY)
            assert errors == []
            assert requests == [url], requests  # the page itself, and nothing else was even asked for
            resources = page.evaluate("performance.getEntriesByType('resource').length")
            assert resources == 0
        finally:
            browser.close()
