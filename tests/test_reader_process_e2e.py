"""`daq run` with its serial reader process (daq.transports.reader_process): started by the daemon,
restarted when it dies with the dial's seq running on and nothing lost (a line cut by the death
decodes whole), and `[station] readers`
choosing between it and the daemon's thread."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ptydial import PtyDial
from tests.support.procs import Mosquitto, stop_process, wait_for
from tests.support.readers import reader_processes, wait_dead
from tests.test_serial_e2e import READERS, Run, config, dial_toml, play_lines


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.daemon.poll() is None:
            stop_process(run.daemon)
        run.sub.stop()


def test_a_killed_reader_process_is_restarted_and_seq_runs_on(
    tmp_path: Path, mosquitto: Mosquitto, runs: list[Run]
) -> None:
    with PtyDial(tmp_path, "a") as a, PtyDial(tmp_path, "b") as b:
        dials = dial_toml("p1", "teensy-fast", a.path) + dial_toml("p2", "teensy-fast", b.path)
        run = Run(tmp_path, mosquitto, config(tmp_path, mosquitto, dials))
        runs.append(run)
        run.wait_connected("p1")
        run.wait_connected("p2")
        (reader,) = reader_processes(run.daemon.pid)  # one for both ports
        for dial in (a, b):
            play_lines(dial, [b"\n"] + [b"%d\n" % v for v in range(100)], 1000)
        wait_for(lambda: len(run.samples("p1")) >= 100 and len(run.samples("p2")) >= 100, what="first 100")
        a.write(b"10")  # p1's next line is cut by the death: its head read by the old process, its tail by the new
        assert a.wait_consumed(5)  # read, and sent: the process waits in epoll again
        wait_for(lambda: Path(f"/proc/{reader.pid}/wchan").read_text() == "do_epoll_wait", what="the round sent")
        os.kill(reader.pid, signal.SIGKILL)
        wait_dead(reader.pid)
        # Written at once, while no process reads: it waits in the tty (the daemon keeps the port open).
        play_lines(a, [b"0\n"] + [b"%d\n" % v for v in range(101, 200)], 1000)
        wait_for(lambda: run.metas("p1").count(True) >= 2, what="p1 connected again")
        play_lines(b, [b"\n"] + [b"%d\n" % v for v in range(100, 200)], 1000)
        wait_for(lambda: len(run.samples("p1")) >= 199 and len(run.samples("p2")) >= 200, what="second 100")
        (again,) = reader_processes(run.daemon.pid)
        assert again.pid != reader.pid
        run.stop()
    # p1's line cut by the death ("10" + "0") is not trusted: the dead process may have read more
    # and not sent it, so the cut line, head and tail, is discarded: one count, one event; p2 had no
    # line held, and its next "line" is empty (no reading): it loses nothing.
    expected = {"p1": [*range(100), *range(101, 200)], "p2": list(range(200))}
    for dial_id in ("p1", "p2"):
        samples = run.samples(dial_id)
        assert [s["raw"] for s in samples] == expected[dial_id]
        assert [s["seq"] for s in samples] == list(range(len(expected[dial_id])))
        assert len({s["boot"] for s in samples}) == 1
        metas = run.metas(dial_id)
        assert metas.count(True) == 2 and metas[metas.index(True) :] == [True, False, True]  # lost, then back
    discarded = run.events("input.discarded")
    assert [(e["dial"], e["data"]["input"], e["data"]["readings"]) for e in discarded] == [("p1", "100", 1)]
    assert "after a gap" in discarded[0]["data"]["reason"]
    lost = run.events("device.disconnected")
    assert len(lost) == 2 and all("serial reader process was killed by SIGKILL" in e["message"] for e in lost)
    assert len(run.events("device.connected")) == 4
    log = (tmp_path / "daq.log").read_text()
    assert "serial reader process" in log and "killed by SIGKILL" in log


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_the_config_chooses_where_ports_are_read(
    tmp_path: Path, mosquitto: Mosquitto, runs: list[Run], mode: str
) -> None:
    READERS["mode"] = mode
    try:
        with PtyDial(tmp_path) as dial:
            run = Run(tmp_path, mosquitto, config(tmp_path, mosquitto, dial_toml("p1", "teensy-fast", dial.path)))
            runs.append(run)
            run.wait_connected("p1")
            assert len(reader_processes(run.daemon.pid)) == (1 if mode == "process" else 0)
            play_lines(dial, [b"\n", b"1\n", b"2\n"], 100)
            wait_for(lambda: len(run.samples("p1")) >= 2, what="samples")
            run.stop()
    finally:
        READERS["mode"] = "process"
    assert [s["raw"] for s in run.samples("p1")] == [1, 2]
