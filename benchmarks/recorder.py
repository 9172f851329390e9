"""The recorder at a room's rate: `daq record` of one station's simulated dials, its CPU and lag.

    .venv/bin/python benchmarks/recorder.py                            # 64 dials x 100 Hz, 10 s
    .venv/bin/python benchmarks/recorder.py --dials 16 --rate 1000 --seconds 5
    .venv/bin/python benchmarks/recorder.py --baseline 827b012         # an earlier commit's recorder first
    .venv/bin/python benchmarks/recorder.py --json benchmarks/results/recorder.json

A real Mosquitto on a free loopback port (the tests' configuration: its queue per client is not
the 1,000-message default, so a recorder that falls behind shows as lag here, not as loss); then
`daq record --station rec` and, once it is connected, `daq run --station rec --simulate N --rate R
--duration S` (one message a sample below 400 Hz a dial, arrays of ~5 samples above). Printed per
recorder: its CPU (user + system, 100 = one core) from the station's connection to its end; the rows the CSV files hold
against the samples the station made (each simulated dial's `seq` runs 0..n-1: rows = sum of the
highest seq + 1 when none is missing), once the files have held still for 5 s; and the lag, from
the station's end to the last row written (a recorder that keeps up writes its last row at once).
With `--baseline REF` the commit's `daq` (exported with git archive), station and recorder, runs
the same first.

On the AMD EPYC VM (2026-12-02, a slow day), 64 x 100 Hz for 10 s: 827b012's recorder 98% of a
core, its last row 6.7 s after the station's end; with received PUBLISHes read by daq.mqtt.wire
54%, 0.4 s; both 0 missing. 16 x 1000 Hz: 96% and 1.8 s, now 71% and 1.0 s (the station itself
saturates its core there that day, so part of that lag is the station's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.e2e.baseline import export_tree  # noqa: E402
from benchmarks.procstats import tree_cpu_s  # noqa: E402
from benchmarks.station_cpu import START_TIMEOUT_S, wait_connected  # noqa: E402
from daq.recording import read_recording  # noqa: E402
from tests.support.procs import Mosquitto, start_daq, stop_process  # noqa: E402

STATION = "rec"
SETTLE_S = 5.0  # the files unchanged this long after the station ended: the recorder has all it will get


def rows_in(out: Path) -> tuple[int, int]:
    """(rows in the recording's CSV files, samples the station made: sum over dials of the highest seq + 1)."""
    rows = made = 0
    for path in out.glob(f"{STATION}/*/*.csv"):
        recording = read_recording(path)  # daq's own reader of its one recording format
        seq = recording.columns.index("seq")
        rows += len(recording.rows)
        made += max((int(row[seq]) for row in recording.rows), default=-1) + 1
    return rows, made


def start(args: list[str], folder: Path, name: str, src: Path | None) -> subprocess.Popen[bytes]:
    """`daq ARGS` (from `src` if given), logging to folder/<name>.log; its outbox in `folder`, never an
    earlier run's backlog."""
    env = {"XDG_STATE_HOME": str(folder / "state")} | ({"PYTHONPATH": str(src)} if src is not None else {})
    return start_daq(args, folder, name, **env)


def measure(
    src: Path | None, folder: Path, port: int, dials: int, rate: float, seconds: float, settle: float = SETTLE_S
) -> dict[str, Any]:
    """One recorder (the current one, or the one in `src`) recording one station's run."""
    folder.mkdir(parents=True)
    out = folder / "out"
    url = f"mqtt://127.0.0.1:{port}"
    recorder = start(["record", "--broker", url, "--station", STATION, "--out", str(out)], folder, "record", src)
    station: subprocess.Popen[bytes] | None = None
    try:
        wait_connected(recorder, folder / "record.log", port)
        time.sleep(1.0)  # subscribed
        run = ["run", "--broker", url, "--station", STATION, "--simulate", str(dials), "--rate", f"{rate:g}"]
        run += ["--duration", f"{seconds:g}"]
        station = start(run, folder, "station", src)
        wait_connected(station, folder / "station.log", port)
        cpu0, t0 = tree_cpu_s(recorder.pid), time.monotonic()
        station.wait(seconds + START_TIMEOUT_S)
        cpu1, t1 = tree_cpu_s(recorder.pid), time.monotonic()
        last, changed = rows_in(out), time.monotonic()
        while time.monotonic() - changed < settle:  # until the files hold still: all the recorder will get
            time.sleep(0.1)
            now = rows_in(out)
            if now != last:
                last, changed = now, time.monotonic()
        lag = changed - t1
    finally:
        if station is not None:
            stop_process(station)
        stop_process(recorder)
    rows, made = last
    return {
        "recorder_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "samples_per_s": dials * rate,
        "rows": rows,
        "samples": made,
        "missing": made - rows,
        "lag_s": round(max(lag, 0.0), 2),
    }


def line(who: str, got: dict[str, Any]) -> str:
    return (
        f"{who}: recorder CPU {got['recorder_cpu_pct']:.1f}% of a core at {got['samples_per_s']:g} samples/s; "
        f"{got['rows']} rows of {got['samples']} samples ({got['missing']} missing); "
        f"its last row {got['lag_s']:.2f} s after the station's end"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dials", type=int, default=64, help="simulated dials (default 64)")
    parser.add_argument("--rate", type=float, default=100.0, help="Hz per dial (default 100)")
    parser.add_argument("--seconds", type=float, default=10.0, help="the station's run (default 10)")
    parser.add_argument("--settle", type=float, default=SETTLE_S, help="seconds the files hold still at the end (5)")
    parser.add_argument("--baseline", metavar="REF", help="an earlier commit's daq, measured first")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if not 1 <= args.dials <= 256 or not 0 < args.rate <= 2000 or not 0 < args.seconds <= 600:
        parser.error("--dials 1-256, --rate up to 2000 Hz, --seconds up to 600")
    if not 0.2 <= args.settle <= 60:
        parser.error("--settle 0.2-60 s")
    timing = (args.dials, args.rate, args.seconds, args.settle)
    results: dict[str, Any] = {}
    commit = None
    with tempfile.TemporaryDirectory(prefix="dialdaq-rec-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker").start()
        try:
            if args.baseline:
                src, commit = export_tree(args.baseline, work / "baseline-src")
                results["baseline"] = measure(src, work / "base", broker.port, *timing)
                print(line(f"baseline {args.baseline}", results["baseline"]), flush=True)
            results["current"] = measure(None, work / "now", broker.port, *timing)
            print(line("current", results["current"]), flush=True)
        finally:
            broker.stop()
    if args.json:
        doc = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "dials": args.dials, "rate_hz": args.rate}
        doc |= {"seconds": args.seconds, "baseline": args.baseline, "baseline_commit": commit, **results}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
