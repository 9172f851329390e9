"""What `daq run` and `daq record` say on the terminal when the broker is not there, and how they exit.

Real processes: `python -m daq run|record` against a host name that does not resolve and against a
loopback port nothing listens on, stopped with SIGINT. DAQ_RETRY_SUMMARY_S shortens the 30 s
interval of the retry summary.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.support.procs import Mosquitto, free_port, start_daq, stop_process, wait_for

SUMMARY_S = "1"


def log_of(folder: Path, name: str = "daq") -> str:
    return (folder / f"{name}.log").read_text()


def run_without_broker(tmp_path: Path, broker: str, *extra: str) -> tuple[int, str]:
    daemon = start_daq(
        ["run", "--broker", broker, "--station", "lonely", "--simulate", "2", "--rate", "20", *extra],
        tmp_path,
        DAQ_RETRY_SUMMARY_S=SUMMARY_S,
    )
    try:
        wait_for(lambda: log_of(tmp_path).count("still no broker") >= 2, timeout=30, what="two retry summaries")
    finally:
        code = stop_process(daemon, signal.SIGINT, timeout=30)
    return code, log_of(tmp_path)


def test_run_against_a_host_that_does_not_resolve(tmp_path: Path) -> None:
    code, log = run_without_broker(tmp_path, "mqtt://nosuch.invalid:1883")
    outbox = tmp_path / "state" / "dialdaq" / "outbox-lonely"
    assert code == 3, log
    start = [line for line in log.splitlines() if "station lonely: 2 dials:" in line]
    assert len(start) == 1, log
    assert "sim-01 (simulated, 20 Hz), sim-02 (simulated, 20 Hz)" in start[0]
    assert "broker mqtt://nosuch.invalid:1883" in start[0] and f"outbox {outbox};" in start[0]
    assert "media clock session at 25 fps" in start[0]
    said = [line for line in log.splitlines() if "cannot reach the broker" in line]
    assert len(said) == 1 and "cannot resolve host 'nosuch.invalid'" in said[0], log
    assert "Errno" not in log  # in words, not errno numbers
    # Summaries, not one line per retry: at most one a second here, each with the count so far.
    summaries = re.findall(r"still no broker at mqtt://nosuch.invalid:1883 after \d+ s: (\d+) attempts", log)
    assert len(summaries) >= 2 and int(summaries[-1]) > int(summaries[0]), log
    assert "retrying in" not in log
    kept = re.search(r"(\d+) samples not delivered at exit \(kept in the outbox for the next start\): (\S+)", log)
    assert kept is not None and int(kept[1]) > 0 and kept[2] == str(outbox), log
    assert "never reached the broker at mqtt://nosuch.invalid:1883 (cannot resolve host 'nosuch.invalid')" in log
    assert "exit code 3" in log


def test_run_against_a_closed_port_with_a_memory_outbox(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "station.toml"
    config.write_text("[outbox]\nmemory = true\n")
    code, log = run_without_broker(tmp_path, f"127.0.0.1:{port}", "--config", str(config))  # no scheme: mqtt://
    assert code == 3, log
    assert f"broker mqtt://127.0.0.1:{port}; outbox in memory" in log
    said = [line for line in log.splitlines() if "cannot reach the broker" in line]
    assert len(said) == 1, log
    assert f"nothing listens on 127.0.0.1:{port} (connection refused)" in said[0]
    assert re.search(r"\d+ samples not delivered at exit \(LOST: the outbox is in memory\)", log), log
    assert f"never reached the broker at mqtt://127.0.0.1:{port}" in log


def test_run_that_reaches_the_broker_says_so_and_exits_0(tmp_path: Path) -> None:
    """The broker comes up after the station: one line when it connects, one when it is lost, and exit 0
    (the broker was reached: what is left is in the outbox for the next start, as the line says)."""
    broker = Mosquitto(tmp_path / "broker")
    daemon = start_daq(
        ["run", "--broker", broker.url, "--station", "late", "--simulate", "1"],
        tmp_path,
        DAQ_RETRY_SUMMARY_S=SUMMARY_S,
    )
    try:
        wait_for(lambda: "cannot reach the broker" in log_of(tmp_path), timeout=20, what="the first failure")
        broker.start()
        try:
            wait_for(lambda: "station: connected to" in log_of(tmp_path), timeout=30, what="connected")
            time.sleep(0.5)
        finally:
            broker.stop()
        wait_for(lambda: "still no broker" in log_of(tmp_path), timeout=30, what="a summary after the loss")
        code = stop_process(daemon, signal.SIGINT, timeout=30)
    finally:
        stop_process(daemon)
    log = log_of(tmp_path)
    assert code == 0, log
    line = next(line for line in log.splitlines() if "station: connected to" in line)
    assert re.search(
        r"connected to mqtt://127.0.0.1:\d+ after \d+ s without it \(\d+ failed attempts\), as daq-late", line
    )
    assert "never reached" not in log
    lost = [line for line in log.splitlines() if "station: lost the broker at" in line]
    assert len(lost) == 1 and lost[0].endswith("(connection lost); reconnecting"), log
    after = log[log.index(lost[0]) :]
    assert ", now:" not in after and "cannot reach the broker" not in after  # the loss is said once
    assert re.search(
        r"still no broker at mqtt://127.0.0.1:\d+ after \d+ s: \d+ attempts, last error: nothing listens", after
    )


def test_record_against_a_closed_port(tmp_path: Path) -> None:
    port = free_port()
    recorder = start_daq(
        ["record", "--broker", f"mqtt://127.0.0.1:{port}", "--out", str(tmp_path / "rec")],
        tmp_path,
        "record",
        DAQ_RETRY_SUMMARY_S=SUMMARY_S,
    )
    try:
        wait_for(lambda: "still no broker" in log_of(tmp_path, "record"), timeout=30, what="a retry summary")
    finally:
        code = stop_process(recorder, signal.SIGINT, timeout=30)
    log = log_of(tmp_path, "record")
    assert code == 3, log
    said = [line for line in log.splitlines() if "cannot reach the broker" in line]
    assert len(said) == 1 and f"recorder: cannot reach the broker at mqtt://127.0.0.1:{port}" in said[0], log
    assert "still no broker" in log  # summarised (DAQ_RETRY_SUMMARY_S=1), not a line per retry
    assert (
        f"never reached the broker at mqtt://127.0.0.1:{port} (nothing listens on 127.0.0.1:{port} (connection "
        "refused)): nothing was received or recorded; exit code 3"
    ) in log


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from daq.cli import main

    for command in ("run", "record"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "exit codes:" in text and "3  stopped without ever reaching the broker" in text
