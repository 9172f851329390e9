"""Input edges end to end: pty dials read by `daq run`, published to a real Mosquitto.

- 13.4: a profile whose pattern backtracks catastrophically under Python's `re` is fed hostile
  lines; the station's other dial keeps its read times (no hole, no shared `t_ns`).
- 14: a line profile without `discard_first_line` loses nothing across an unplug and replug;
  the Arduino profile's discarded first line is counted in health and announced on events.
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ptydial import PtyDial
from tests.support.procs import Mosquitto, wait_for
from tests.test_serial_e2e import Run, config, dial_toml, play_lines, readers

__all__ = ["readers"]  # the fixture: every test here runs with the ports read in a process, then in a thread

HOSTILE_PROFILE = """
spec = 1
id = "hostile"
name = "A slider whose pattern nests quantifiers"
transport = "serial"
source = "issue 13.4"
[serial]
baud = 115200
[framing]
kind = "line"
pattern = 'S=(?P<pos>([0-9]+)+)'
[channels.pos]
kind = "absolute"
"""

HOMEMADE_PROFILE = """
spec = 1
id = "homemade"
name = "A home-made dial: one decimal line per reading, no reset on open"
transport = "serial"
source = "issue 14"
[serial]
baud = 115200
[framing]
kind = "line"
pattern = '(?P<pos>[0-9]{1,5})'
[channels.pos]
kind = "absolute"
range = [0, 10000]
"""


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.daemon.poll() is None:
            run.stop()


def profile_dir(tmp_path: Path, text: str, name: str) -> str:
    folder = tmp_path / "profiles"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(textwrap.dedent(text))
    return 'profile_dirs = ["profiles"]'


def last_health(run: Run) -> dict[str, Any]:
    healths = [m["payload"] for m in run.messages() if m["topic"].endswith("/health")]
    assert healths, "no health published"
    return healths[-1]  # type: ignore[no-any-return]


@pytest.mark.alone  # counts the lines that share one read time: a busy machine, not the daemon, could fail it
def test_a_hostile_pattern_leaves_the_other_dials_read_times_alone(
    tmp_path: Path, mosquitto: Mosquitto, runs: list[Run]
) -> None:
    head = profile_dir(tmp_path, HOSTILE_PROFILE, "hostile")
    with PtyDial(tmp_path, "bad") as bad, PtyDial(tmp_path, "good") as good:
        dials = dial_toml("bad", "hostile", bad.path) + dial_toml("good", "teensy-fast", good.path)
        run = Run(tmp_path, mosquitto, config(tmp_path, mosquitto, dials, head))
        runs.append(run)
        run.wait_connected("bad")
        run.wait_connected("good")
        # 31 bytes that cost Python's re 17 s each; and the longest line the profile allows.
        hostile = b"S=" + b"1" * 28 + b"x\n"
        longest = b"S=" + b"1" * 253 + b"x\n"
        values = list(range(400))

        def attack() -> None:
            bad.write(b"\n")
            for _ in range(20):
                bad.write(hostile)
                bad.write(longest)
            bad.write(b"S=77\n")

        attacker = threading.Thread(target=attack)
        attacker.start()
        sent = play_lines(good, [b"\n"] + [b"%d\n" % v for v in values], 200)[1:]
        attacker.join()
        wait_for(lambda: len(run.samples("good")) >= len(values), timeout=20, what="the good dial's samples")
        wait_for(lambda: len(run.samples("bad")) >= 1, timeout=20, what="S=77 after the hostile lines")
        run.stop()
    good_samples = run.samples("good")
    assert [s["raw"] for s in good_samples] == values
    assert [s["seq"] for s in good_samples] == list(range(len(values)))
    t_ns = [s["t_ns"] for s in good_samples]
    # A loop stalled by the pattern read its backlog at once: the issue saw 2,446 samples share one
    # t_ns (Python's re costs 17 s a hostile line; the waits above time out long before that). The
    # reader process now stamps apart from the loop, so what is left to see here is a reader that
    # read late; the bounds sit far from a stall by the pattern (all 400 lines, 2 s of writing, in
    # one read) and far from a loaded machine, which has left a reader unscheduled ~0.5 s (100 of
    # these lines in one read; seen twice in CI, in test_serial_e2e). The pattern's CPU cost itself
    # is bounded in test_decode_edges.
    most_shared = max(t_ns.count(t) for t in set(t_ns))
    assert most_shared <= 200, f"{most_shared} samples share one read time: the loop stalled"
    delays = [t - w for t, w in zip(t_ns, sent, strict=True)]
    assert max(delays) < 2_000_000_000, f"a reading waited {max(delays) / 1e6:.0f} ms to be read"
    assert [s["raw"] for s in run.samples("bad")] == [77]
    assert last_health(run)["dials"]["bad"]["garbage"] == 40


def test_a_homemade_dial_loses_no_line_across_a_replug(tmp_path: Path, mosquitto: Mosquitto, runs: list[Run]) -> None:
    head = profile_dir(tmp_path, HOMEMADE_PROFILE, "homemade")
    with PtyDial(tmp_path) as dial:
        run = Run(tmp_path, mosquitto, config(tmp_path, mosquitto, dial_toml("h1", "homemade", dial.path), head))
        runs.append(run)
        run.wait_connected("h1")
        play_lines(dial, [b"%d\n" % v for v in range(0, 100)], 500)  # no throw-away line first
        wait_for(lambda: len(run.samples("h1")) >= 100, what="first 100")
        dial.wait_consumed()
        dial.unplug()
        wait_for(lambda: False in run.metas("h1")[1:], what="disconnected meta")
        dial.replug()
        run.wait_connected("h1", times=2)
        play_lines(dial, [b"%d\n" % v for v in range(100, 200)], 500)
        wait_for(lambda: len(run.samples("h1")) >= 200, what="second 100")
        run.stop()
    samples = run.samples("h1")
    assert [s["raw"] for s in samples] == list(range(200)), "every reading that reached the port is a sample"
    assert [s["seq"] for s in samples] == list(range(200))
    assert run.events("input.discarded") == []
    health = last_health(run)["dials"]["h1"]
    assert (health["discarded"], health["garbage"]) == (0, 0)


def test_the_arduinos_discarded_first_line_is_counted_and_announced(
    tmp_path: Path, mosquitto: Mosquitto, runs: list[Run]
) -> None:
    with PtyDial(tmp_path) as dial:
        run = Run(tmp_path, mosquitto, config(tmp_path, mosquitto, dial_toml("p1", "arduino-pot", dial.path)))
        runs.append(run)
        run.wait_connected("p1")
        play_lines(dial, [b"23\r\n", b"500\r\n", b"501\r\n"], 50)  # "23": the tail of a line cut by the reset
        wait_for(lambda: len(run.samples("p1")) >= 2 and run.events("input.discarded"), what="samples, event")
        dial.wait_consumed()
        dial.unplug()
        wait_for(lambda: False in run.metas("p1")[1:], what="disconnected meta")
        dial.replug()
        run.wait_connected("p1", times=2)
        play_lines(dial, [b"9\r\n", b"502\r\n"], 50)
        wait_for(lambda: len(run.samples("p1")) >= 3 and len(run.events("input.discarded")) >= 2, what="2nd")
        run.stop()
    assert [s["raw"] for s in run.samples("p1")] == [500, 501, 502]
    events = run.events("input.discarded")
    assert [e["dial"] for e in events] == ["p1", "p1"]
    assert [e["data"]["input"] for e in events] == ["23", "9"]
    assert "first line" in events[0]["data"]["reason"] and "device" in events[0]["data"]
    assert last_health(run)["dials"]["p1"]["discarded"] == 2


COUNTING_PROFILE = """
spec = 1
id = "counting"
name = "A dial that numbers its lines: '<n>,<value>', n wrapping at 256"
transport = "serial"
source = "issue 14"
sequence = { field = "n", wrap = 256 }
[serial]
baud = 115200
[framing]
kind = "line"
pattern = '(?P<n>[0-9]{1,3}),(?P<pos>[0-9]{1,4})'
[channels.pos]
kind = "absolute"
range = [0, 1023]
"""


def test_a_jump_in_the_devices_counter_is_device_side_loss(
    tmp_path: Path, mosquitto: Mosquitto, runs: list[Run]
) -> None:
    head = profile_dir(tmp_path, COUNTING_PROFILE, "counting")
    sent = [n for n in range(300) if n not in (10, 11, 12, 200)]  # four lines lost on the link, one at 255 -> 0
    with PtyDial(tmp_path) as dial:
        run = Run(tmp_path, mosquitto, config(tmp_path, mosquitto, dial_toml("c1", "counting", dial.path), head))
        runs.append(run)
        run.wait_connected("c1")
        play_lines(dial, [b"%d,%d\n" % (n % 256, n % 1024) for n in sent], 400)
        wait_for(lambda: len(run.samples("c1")) >= len(sent), what="samples")
        # The second jump comes within a second of the first: its event is held back, then said
        # (within a second) though the dial sends nothing more.
        wait_for(lambda: sum(e["data"]["lost"] for e in run.events("input.device_lost")) >= 4, what="all loss said")
        run.stop()
    assert [s["raw"] for s in run.samples("c1")] == [n % 1024 for n in sent]
    events = run.events("input.device_lost")
    assert [e["data"]["lost"] for e in events] == [3, 1] and events[0]["dial"] == "c1"
    assert events[0]["data"]["expected"] == 10 and events[0]["data"]["got"] == 13
    health = last_health(run)["dials"]["c1"]
    assert (health["device_lost"], health["garbage"], health["discarded"]) == (4, 0, 0)
