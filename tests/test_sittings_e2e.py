"""Two sittings of one video recorded live: `daq run` and `daq record` against a real Mosquitto.

The station has two serial dials on pseudo-terminals (tests/ptydial.py), both fed the same line
by one writer. Sitting 1 starts the session clock at 00:00:10:00, sitting 2 at 00:00:05:00 and is
paused midway. The value the dials are fed changes only while the clock is paused at planned
media positions (pause, seek to the position, change, resume), so the ratings are one and the
same function of media time in both sittings. Exported together, the four raters must line up
on the video's media time and agree at 1 (every figure, to 1e-9), with identical grid values.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daq.cli import main
from daq.export.analysis import AnalysisOptions, analyse
from daq.export.report_data import clock_events
from tests.ptydial import PtyDial
from tests.support.procs import Mosquitto, start_daq, stop_process, wait_for

STATION = "lab-e"
CHANGES = [(12.0, 800), (14.0, 300), (16.0, 650)]  # (media s, raw value from there on)
FIRST_VALUE = 100

pytestmark = pytest.mark.timeout(120)


class Feeder:
    """Writes the current value to both dials every 50 ms, as a potentiometer sketch prints its reading."""

    def __init__(self, dials: list[PtyDial]) -> None:
        self.dials = dials
        self.value = FIRST_VALUE
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            line = b"%d\r\n" % self.value
            for dial in self.dials:
                try:
                    dial.write(line)
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def dials(tmp_path: Path) -> Iterator[list[PtyDial]]:
    with PtyDial(tmp_path, "dial-a") as a, PtyDial(tmp_path, "dial-b") as b:
        yield [a, b]


class Clock:
    """The station's session clock, driven with `daq session` (in this process: no start-up per command)."""

    def __init__(self, broker: Mosquitto, capsys: pytest.CaptureFixture[str]) -> None:
        self.broker, self.capsys = broker, capsys
        self.media = 0.0
        self.since = time.monotonic()

    def command(self, *args: str) -> dict[str, Any]:
        self.capsys.readouterr()
        code = main(["session", *args, "--broker", self.broker.url, "--station", STATION])
        reply: dict[str, Any] = json.loads(self.capsys.readouterr().out)
        assert code == 0 and reply["ok"] is True, reply
        return reply

    def now(self) -> float:
        return self.media + (time.monotonic() - self.since)

    def start(self, media_s: float, timecode: str) -> str:
        session = str(self.command("start", "--timecode", timecode)["session"])
        self.media, self.since = media_s, time.monotonic()
        return session

    def play_until(self, media_s: float) -> None:
        time.sleep(max(0.0, media_s - self.now()))

    def pause(self, hold_s: float, change: tuple[float, int] | None = None, feeder: Feeder | None = None) -> None:
        """Pause; for a change, seek to its position and change the value; resume after hold_s."""
        self.command("pause")
        paused_at = self.now()
        if change is not None and feeder is not None:
            self.command("seek", repr(change[0]))
            feeder.value = change[1]
            paused_at = change[0]
        time.sleep(hold_s)  # both dials report the new value at the paused position
        self.command("resume")
        self.media, self.since = paused_at, time.monotonic()


def sitting(clock: Clock, feeder: Feeder, start_s: float, timecode: str, pause_at: float | None, end_s: float) -> str:
    """One sitting from start_s to end_s; its session id."""
    feeder.value = FIRST_VALUE
    time.sleep(0.3)
    session = clock.start(start_s, timecode)
    if pause_at is not None:
        clock.play_until(pause_at)
        clock.pause(1.5)  # paused midway, nothing changes
    for position, value in CHANGES:
        clock.play_until(position - 0.4)
        clock.pause(0.4, (position, value), feeder)
    clock.play_until(end_s)
    clock.command("stop")
    time.sleep(0.3)
    return session


def write_config(path: Path, broker: Mosquitto, dials: list[PtyDial]) -> Path:
    parts = [f'[station]\nid = "{STATION}"\n\n[broker]\nurl = "{broker.url}"\n\n[media]\nclock = "session"\n']
    for name, dial in zip(("pa", "pb"), dials, strict=True):
        dial_line = f'[[dials]]\nid = "{name}"\nprofile = "arduino-pot"\nport = "{dial.path}"\n'
        parts.append(dial_line + "[dials.scale]\nmin = 0\nmax = 100\n")
    path.write_text("\n".join(parts))
    return path


def test_two_live_sittings_align_on_media_time_and_agree_at_one(
    tmp_path: Path, mosquitto: Mosquitto, dials: list[PtyDial], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rec"
    recorder = start_daq(
        ["record", "--broker", mosquitto.url, "--station", STATION, "--out", str(out)], tmp_path, "record"
    )
    feeder = Feeder(dials)
    daemon = None
    try:
        wait_for(lambda: "recording" in (tmp_path / "record.log").read_text(), what="recorder start")
        daemon = start_daq(
            ["run", "--config", str(write_config(tmp_path / "station.toml", mosquitto, dials))], tmp_path
        )
        wait_for(lambda: len(list(out.glob(f"{STATION}/*/*.csv"))) >= 2, timeout=20, what="samples recorded")
        clock = Clock(mosquitto, capsys)
        sessions = [
            sitting(clock, feeder, 10.0, "00:00:10:00", None, 18.0),
            sitting(clock, feeder, 5.0, "00:00:05:00", 8.0, 18.0),
        ]
    finally:
        feeder.close()
        if daemon is not None:
            assert stop_process(daemon) == 0, (tmp_path / "daq.log").read_text()
        assert stop_process(recorder) == 0, (tmp_path / "record.log").read_text()

    folders = [out / STATION / session for session in sessions]  # (the station's own first session is not ours)
    assert all((f / "summary.json").is_file() and sorted(x.name for x in f.glob("*.csv")) == ["pa.csv", "pb.csv"]
               for f in folders)  # fmt: skip

    result = analyse(folders, AnalysisOptions(rate_hz=10))
    labels = [r.label for r in result.sittings.raters]
    assert labels == [f"{STATION}/{f.name}/{d}" for f in folders for d in ("pa", "pb")]
    # aligned on the video: each sitting's first rating is where its clock started
    first = {f.name: min(r.media_s for r in result.sittings.sittings[i].dials[0].rows if r.media_s is not None)
             for i, f in enumerate(folders)}  # fmt: skip
    assert sorted(round(v) for v in first.values()) == [5, 10]
    # the second sitting (started at 5 s) shows its pause at about 8 s
    second = result.sittings.sittings[[round(first[f.name]) for f in folders].index(5)]
    pauses = [e for e in clock_events(second) if e.kind == "pause"]
    assert any(abs(e.media_s - 8.0) < 0.5 and (e.duration_s or 0) > 1.2 for e in pauses), pauses

    grid = result.grid
    complete = [i for i in range(len(grid.starts)) if all(grid.values[label][i] is not None for label in labels)]
    assert len(complete) > 70  # 10..18 s of media time at 10 Hz
    assert grid.starts[complete[0]] == pytest.approx(10.0, abs=0.15)
    for i in complete:
        assert len({grid.values[label][i] for label in labels}) == 1, (
            grid.starts[i],
            [grid.values[x][i] for x in labels],
        )
    for position, raw in itertools.chain([(10.2, FIRST_VALUE)], CHANGES):
        i = grid.starts.index(round(position * 10) / 10)
        assert grid.values[labels[0]][i] == pytest.approx(raw / 1023 * 100, abs=0.2), position

    agree = result.summary()["agreement"]
    for key in ("icc_2_1", "icc_2_k", "icc_3_1", "icc_3_k", "ccc_mean", "krippendorff_alpha", "cronbach_alpha",
                "pearson_mean"):  # fmt: skip
        assert agree[key] == pytest.approx(1.0, abs=1e-9), key
