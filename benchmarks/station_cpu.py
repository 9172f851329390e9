"""CPU of a station with simulated dials: the demo's four dials at 20 Hz, and an idle station.

    .venv/bin/python benchmarks/station_cpu.py                      # demo 4 x 20 Hz and idle 16 x 0.01 Hz, 20 s each
    .venv/bin/python benchmarks/station_cpu.py --baseline 8411831   # the same, an earlier daemon right before each
    .venv/bin/python benchmarks/station_cpu.py --seconds 10 --rounds 3 --json benchmarks/results/station-cpu.json

`daq run --config` (outbox on disk, the shipped defaults otherwise) against a real Mosquitto on a
free loopback port, with a subscriber (mosquitto_sub, QoS 1) on the station's samples, as a lab
would have. From 4 s after the daemon has connected to the broker (its TCP connection, from
/proc), its user+system CPU (its children included) is read over `--seconds`, 100 = one core.
With `--baseline REF` the commit's daemon is exported (git archive) and measured right before the
current one in each configuration and round; medians are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.e2e.baseline import export_tree  # noqa: E402
from benchmarks.procstats import cpu_times, machine_busy_pct, tcp_connected, tree_cpu_s  # noqa: E402
from tests.support.procs import Mosquitto, clean_env, need, stop_process  # noqa: E402

CONFIGS = {"demo": (4, 20.0), "idle": (16, 0.01)}  # name: dials, Hz
WARMUP_S = 4.0  # after the daemon has connected to the broker
START_TIMEOUT_S = 60.0


def station_toml(folder: Path, port: int, dials: int, rate: float) -> Path:
    lines = ["[station]", 'id = "cpu"', "[broker]", f'url = "mqtt://127.0.0.1:{port}"', "[outbox]"]
    lines.append(f'path = "{folder / "outbox"}"')
    for i in range(dials):
        lines += ["[[dials]]", f'id = "sim-{i + 1:02d}"', "[dials.simulate]", f"rate_hz = {rate}", f"seed = {i}"]
    path = folder / "daq.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_connected(proc: subprocess.Popen[bytes], log: Path, port: int, timeout: float = START_TIMEOUT_S) -> None:
    """Until the daemon holds a connection to the broker on `port`: the warm-up starts there, not at its
    start, so a slow start (imports on a loaded machine) is never measured as the station's CPU. The
    connection is read from /proc, not from the log: a baseline commit may not log it (8411831 did not,
    at its default log level, and every `--baseline 8411831` run stopped here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tcp_connected(proc.pid, port):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon ended at start: see {log}")
        time.sleep(0.05)
    raise RuntimeError(f"the daemon did not connect to the broker in {timeout:g} s: see {log}")


def measure(
    src: Path | None, folder: Path, port: int, dials: int, rate: float, seconds: float, warmup: float = WARMUP_S
) -> dict[str, Any]:
    """One daemon (the current one, or the one in `src`), measured over `seconds` after the warm-up."""
    folder.mkdir(parents=True)
    config = station_toml(folder, port, dials, rate)
    env = clean_env(PYTHONPATH=str(src)) if src is not None else clean_env()
    log = (folder / "daq.log").open("ab")
    cwd = src if src is not None else REPO
    proc = subprocess.Popen(
        [sys.executable, "-m", "daq", "run", "--config", str(config)],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    log.close()
    try:
        wait_connected(proc, folder / "daq.log", port)
        time.sleep(warmup)
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon ended at start: see {folder / 'daq.log'}")
        busy0, cpu0, t0 = cpu_times(), tree_cpu_s(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1, busy1 = tree_cpu_s(proc.pid), time.monotonic(), cpu_times()
    finally:
        stop_process(proc)
    return {
        "cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
        "samples_per_s": dials * rate,
        "busy_pct": round(machine_busy_pct(busy0, busy1), 1),
    }


def report_line(row: dict[str, Any], baseline: str | None) -> str:
    now = row["current"]
    low, high = now["cpu_pct_range"]
    line = f"{row['config']:5} {row['dials']:3d} dials x {row['hz']:g} Hz: daemon CPU {now['cpu_pct']:.2f}% of a core"
    line += f" (range {low:.2f}-{high:.2f}, busy {now['busy_pct']:.0f}%)"
    if "baseline" in row:
        base = row["baseline"]["cpu_pct"]
        line += f"; baseline {baseline} {base:.2f}%: x {now['cpu_pct'] / base:.2f}" if base else ""
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per run (default 20)")
    parser.add_argument(
        "--warmup", type=float, default=WARMUP_S, help="seconds after the daemon is connected before measuring"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per configuration; medians are printed")
    parser.add_argument("--only", choices=sorted(CONFIGS), help="one configuration only")
    parser.add_argument("--baseline", metavar="REF", help="an earlier commit's daemon, measured right before each run")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    names = [args.only] if args.only else list(CONFIGS)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dialdaq-cpu-") as tmp:
        work = Path(tmp)
        base_src: Path | None = None
        base_commit = None
        if args.baseline:
            base_src, base_commit = export_tree(args.baseline, work / "baseline-src")
        broker = Mosquitto(work / "broker").start()
        sub = subprocess.Popen(
            [need("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", "daq/cpu/dials/+"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            for name in names:
                dials, rate = CONFIGS[name]
                runs: dict[str, list[dict[str, Any]]] = {"current": [], "baseline": []}
                for k in range(args.rounds):
                    timing = (args.seconds, args.warmup)
                    if base_src is not None:
                        folder = work / f"{name}-base-{k}"
                        runs["baseline"].append(measure(base_src, folder, broker.port, dials, rate, *timing))
                    folder = work / f"{name}-now-{k}"
                    runs["current"].append(measure(None, folder, broker.port, dials, rate, *timing))
                row: dict[str, Any] = {"config": name, "dials": dials, "hz": rate}
                for who, got in runs.items():
                    if got:
                        row[who] = {
                            "cpu_pct": statistics.median(r["cpu_pct"] for r in got),
                            "cpu_pct_range": [min(r["cpu_pct"] for r in got), max(r["cpu_pct"] for r in got)],
                            "busy_pct": statistics.median(r["busy_pct"] for r in got),
                        }
                results.append(row)
                now = row["current"]
                line = f"{name:5} {dials:3d} dials x {rate:g} Hz: daemon CPU {now['cpu_pct']:.2f}% of a core"
                line += (
                    f" (range {now['cpu_pct_range'][0]:.2f}-{now['cpu_pct_range'][1]:.2f}, busy {now['busy_pct']:.0f}%)"
                )
                if "baseline" in row:
                    base = row["baseline"]
                    line += (
                        f"; baseline {args.baseline} {base['cpu_pct']:.2f}%: x {now['cpu_pct'] / base['cpu_pct']:.2f}"
                    )
                print(line, flush=True)
        finally:
            stop_process(sub)
            broker.stop()
    if args.json:
        doc = {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "seconds": args.seconds,
            "rounds": args.rounds,
        }
        doc |= {"baseline": args.baseline, "baseline_commit": base_commit, "results": results}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
