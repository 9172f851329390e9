"""benchmarks/station_cpu.py as a user runs it: a real Mosquitto and daemon, its figures in the JSON."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from benchmarks.procstats import tcp_connected
from tests.support.bench_scripts import run_to_json


def test_the_station_cpu_benchmark_measures_a_running_daemon(tmp_path: Path) -> None:
    args = ("--only", "demo", "--seconds", "1", "--warmup", "2")
    stdout, doc = run_to_json("station_cpu.py", tmp_path / "cpu.json", *args, timeout=60)
    assert "demo    4 dials x 20 Hz: daemon CPU" in stdout
    (row,) = doc["results"]
    assert row["config"] == "demo" and row["dials"] == 4 and row["hz"] == 20.0
    assert 0 < row["current"]["cpu_pct"] < 100  # it ran and did work: 80 samples a second cost something


def test_a_connection_to_the_broker_is_seen_from_proc_whatever_the_daemon_logs() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert not tcp_connected(os.getpid(), port)  # listening is not connected
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            with accepted:
                assert tcp_connected(os.getpid(), port)
                assert not tcp_connected(os.getpid(), port + 1 if port < 65535 else port - 1)
                client.close()
        assert not tcp_connected(2**22 + 12345, port)  # no such process
