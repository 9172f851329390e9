"""How many stations x dials x Hz one central Mosquitto takes on this machine, with zero loss.

    .venv/bin/python benchmarks/central_broker.py                  # the ladder below, ~10 s a step
    .venv/bin/python benchmarks/central_broker.py --quick          # under 60 s: three small steps
    .venv/bin/python benchmarks/central_broker.py --steps 2x8x100,4x16x100 --seconds 5 --json out.json

Each step starts a fresh Mosquitto running config/brokers/central.conf and acl-many-stations (only
the port, the folders and the password file substituted; persistence on, as shipped), K station
processes `daq run --simulate D --rate R` (the real daemon, logging in as their station ids), and
one subscriber (mosquitto_sub, QoS 1, so a Python subscriber's own limits do not hide the broker's)
whose every sample is counted afterwards per (station, boot, dial) by seq: unique, duplicates,
gaps. After the measuring window the stations are stopped (SIGTERM: they publish everything they
hold, then their final health and `offline`); the stations' own counts (health `dials.*.samples`)
are what was offered, the subscriber's unique count what arrived, the difference what was lost.

Printed per step: stations, dials, Hz, samples/s nominal (K*D*R) and offered (what the stations
read), received/s in the window, MQTT messages/s (a message may carry several samples), lost,
duplicates, how long the subscriber took to catch up after the stop, and CPU% (100% = one core)
of the broker, the subscriber, all stations together, and the whole machine (busy %, all cores).
The ladder stops at the first loss, when the stations cannot read at their nominal rate any more or
cannot publish what they read (more than half a second of samples waiting in their outboxes,
"backlog", from their last health in the window): the machine is saturated; or when the samples
arrive more slowly than they are read without the stations being behind (received/s below 90% of
offered/s, or more than 5 s to catch up after the stop): the broker or the subscriber is.
A machine busier than 95% is noted (other work on a shared machine counts).

The broker is single-threaded: its CPU% against messages/s is what to extrapolate from when the
stations (Python processes on the same machine) saturate it before the broker does.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.procstats import CLK_TCK, cpu_ticks, cpu_times, machine_busy_pct  # noqa: E402
from tests.support.procs import free_port, render_conf, stop_process, wait_port  # noqa: E402

BROKERS = REPO / "config" / "brokers"
LADDER = ((4, 16, 100), (4, 16, 250), (4, 16, 500), (8, 16, 500), (8, 32, 500), (16, 32, 500))
QUICK = ((2, 8, 100), (4, 16, 100), (4, 16, 250))
RECORDER_PASSWORD = "bench-recorder"


# --------------------------------------------------------------------------------------- processes


def start_broker(folder: Path, stations: Sequence[str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    passwd = folder / "passwd"
    users = {**{s: f"bench-{s}" for s in stations}, "recorder": RECORDER_PASSWORD}
    for i, (user, password) in enumerate(users.items()):
        args = ["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd), user, password]
        subprocess.run(args, check=True, capture_output=True)
    acl = shutil.copy(BROKERS / "acl-many-stations", folder / "acl")
    conf = folder / "mosquitto.conf"
    # As root, Mosquitto would switch to the `mosquitto` user, who cannot read a private tmp folder.
    conf.write_text(
        render_conf(
            BROKERS / "central.conf",
            {
                "listener": f"{port} 127.0.0.1",
                "persistence_location": f"{folder}/",
                "password_file": str(passwd),
                "acl_file": str(acl),
            },
            [f"user {getpass.getuser()}"],
        )
    )
    log = (folder / "mosquitto.log").open("ab")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log, start_new_session=True)
    wait_port(port)
    return proc, port


# --------------------------------------------------------------------------------------- the subscriber


def subscribe(port: int, topics: Sequence[str], out: Path) -> subprocess.Popen[bytes]:
    """mosquitto_sub (C, so the subscriber is not what limits the step) at QoS 1: `<recv time> <topic> <payload>`."""
    args = ["mosquitto_sub", "-p", str(port), "-u", "recorder", "-P", RECORDER_PASSWORD, "-V", "mqttv5", "-q", "1"]
    args += ["-F", "%U %t %p"]
    for topic in topics:
        args += ["-t", topic]
    with out.open("ab") as handle:
        return subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def lines(path: Path) -> list[tuple[float, str, bytes]]:
    out = []
    with path.open("rb") as handle:
        for line in handle:
            parts = line.rstrip(b"\n").split(b" ", 2)
            if len(parts) == 3:
                try:
                    out.append((float(parts[0]), parts[1].decode(), parts[2]))
                except ValueError:
                    continue
    return out


@dataclass
class Control:
    """The stations' health (their own counts) and offline statuses, from the control subscriber's file."""

    counts: dict[str, int] = field(default_factory=dict)  # station -> samples read (last health)
    pending: dict[str, int] = field(default_factory=dict)  # station -> outbox pending (last health)
    uptime: dict[str, float] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)


def read_control(path: Path) -> Control:
    control = Control()
    for _, topic, payload in lines(path):
        station = topic.split("/")[1]
        body = json.loads(payload) if payload else {}
        if topic.endswith("/health"):
            control.counts[station] = sum(d["samples"] for d in body["dials"].values())
            control.pending[station] = (body.get("outbox") or {}).get("pending", 0)
            control.uptime[station] = body.get("uptime_s") or 0.0
        elif topic.endswith("/status") and body.get("state") == "offline":
            control.offline.add(station)
    return control


def count_samples(path: Path, t0: float, t1: float) -> tuple[int, int, int, int, int]:
    """(unique, duplicates, messages in [t0, t1], unique samples received in [t0, t1], stations seen)."""
    sys.path.insert(0, str(REPO))
    from daq.seqtrack import SeqTracker

    trackers: dict[tuple[str, str, str], SeqTracker] = {}
    duplicates = messages = in_window = 0
    for t, topic, payload in lines(path):
        parts = topic.split("/")
        body = json.loads(payload)
        inside = t0 <= t <= t1
        messages += inside
        for sample in body if isinstance(body, list) else [body]:
            tracker = trackers.setdefault((parts[1], sample["boot"], parts[3]), SeqTracker())
            accepted, _ = tracker.offer(int(sample["seq"]))
            duplicates += not accepted
            in_window += accepted and inside
    unique = sum(t.accepted for t in trackers.values())
    return unique, duplicates, messages, in_window, len({k[0] for k in trackers})


# --------------------------------------------------------------------------------------- one step


@dataclass
class Step:
    stations: int
    dials: int
    rate_hz: float
    seconds: float
    nominal_per_s: float = 0.0
    offered_per_s: float = 0.0
    received_per_s: float = 0.0
    messages_per_s: float = 0.0
    offered: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    catch_up_s: float = 0.0
    backlog: int = 0  # samples waiting in the stations' outboxes (their last periodic health in the window)
    broker_cpu: float = 0.0
    counter_cpu: float = 0.0
    stations_cpu: float = 0.0
    machine_busy: float = 0.0
    verdict: str = ""
    notes: list[str] = field(default_factory=list)


def wait_until(predicate: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def run_step(stations: int, dials: int, rate: float, seconds: float, work: Path) -> Step:
    step = Step(stations, dials, rate, seconds, nominal_per_s=stations * dials * rate)
    folder = work / f"{stations}x{dials}x{rate:g}"
    folder.mkdir(parents=True)
    ids = [f"st-{i:02d}" for i in range(1, stations + 1)]
    broker, port = start_broker(folder, ids)
    samples_file, control_file = folder / "samples.txt", folder / "control.txt"
    sub = subscribe(port, ["daq/+/dials/+/samples"], samples_file)
    control_sub = subscribe(port, ["daq/+/health", "daq/+/status"], control_file)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        time.sleep(0.5)  # subscribed (nothing is published yet, so nothing can be missed before)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAQ_")}
        for sid in ids:
            args = [sys.executable, "-m", "daq", "run", "--broker", f"mqtt://127.0.0.1:{port}", "--station", sid]
            args += ["--simulate", str(dials), "--rate", f"{rate:g}"]
            station_env = {**env, "DAQ_BROKER_USERNAME": sid, "DAQ_BROKER_PASSWORD": f"bench-{sid}"}
            with (folder / f"{sid}.log").open("ab") as log:
                procs.append(
                    subprocess.Popen(
                        args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=station_env, start_new_session=True
                    )
                )
        # Warm-up: every station is online and publishing.
        if not wait_until(lambda: len(read_control(control_file).counts) >= stations, 30):
            step.notes.append("not every station published health within 30 s")
        time.sleep(2.0)
        t0, wall0 = time.monotonic(), time.time()
        cpu0 = (cpu_ticks(broker.pid), cpu_ticks(sub.pid), sum(cpu_ticks(p.pid) for p in procs))
        machine0 = cpu_times()
        time.sleep(seconds)
        elapsed, wall1 = time.monotonic() - t0, time.time()
        cpu1 = (cpu_ticks(broker.pid), cpu_ticks(sub.pid), sum(cpu_ticks(p.pid) for p in procs))
        machine1 = cpu_times()
        step.backlog = sum(read_control(control_file).pending.values())
        stopped_at = time.monotonic()
        for proc in procs:
            os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            stop_process(proc, timeout=60)
        # The final health of each station comes just before its `offline`.
        if not wait_until(lambda: len(read_control(control_file).offline) >= stations, 60):
            step.notes.append("not every station's offline status arrived")
        # Caught up: the samples file stopped growing.
        last_size, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < 1.0 and time.monotonic() - stopped_at < 120:
            size = samples_file.stat().st_size
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            time.sleep(0.1)
        step.catch_up_s = round(last_change - stopped_at, 1)
    finally:
        for proc in procs:
            stop_process(proc, timeout=30)
        stop_process(sub, timeout=30)
        stop_process(control_sub, timeout=30)
        stop_process(broker, timeout=30)
    control = read_control(control_file)
    unique, step.duplicates, messages, in_window, seen = count_samples(samples_file, wall0, wall1)
    if seen < stations:
        step.notes.append(f"samples of {seen} stations only")
    ticks = CLK_TCK * elapsed / 100  # ticks per 1% of one core over the window
    step.broker_cpu = round((cpu1[0] - cpu0[0]) / ticks, 1)
    step.counter_cpu = round((cpu1[1] - cpu0[1]) / ticks, 1)
    step.stations_cpu = round((cpu1[2] - cpu0[2]) / ticks, 1)
    step.machine_busy = machine_busy_pct(machine0, machine1)
    step.offered = sum(control.counts.values())
    step.received = unique
    step.lost = step.offered - step.received
    step.received_per_s = round(in_window / (wall1 - wall0))
    step.messages_per_s = round(messages / (wall1 - wall0))
    step.offered_per_s = round(sum(n / control.uptime[s] for s, n in control.counts.items() if control.uptime.get(s)))
    ours = step.broker_cpu + step.counter_cpu + step.stations_cpu
    if step.machine_busy > 95:
        step.notes.append(
            f"machine {step.machine_busy}% busy, {ours / (os.cpu_count() or 1):.0f}% of it this benchmark's processes"
        )
    if step.lost > 0:
        step.verdict = "LOSS"
    elif step.offered_per_s < 0.95 * step.nominal_per_s:
        step.verdict = "saturated: the stations read below their nominal rate"
    elif step.backlog > step.offered_per_s / 2:
        step.verdict = "saturated: the stations cannot publish as fast as they read (their outboxes grow)"
    elif step.received_per_s < 0.9 * step.offered_per_s or step.catch_up_s > 5:
        step.verdict = f"behind: broker or subscriber, {step.catch_up_s} s to catch up after the stop"
    else:
        step.verdict = "ok"
    return step


# --------------------------------------------------------------------------------------- main


def parse_steps(text: str) -> list[tuple[int, int, float]]:
    steps = []
    for item in text.split(","):
        k, d, r = item.lower().split("x")
        steps.append((int(k), int(d), float(r)))
    return steps


def table(steps: Sequence[Step]) -> str:
    head = (
        f"{'stations':>8} {'dials':>5} {'Hz':>5} {'nominal/s':>10} {'offered/s':>10} {'recv/s':>8} {'msgs/s':>7} "
        f"{'lost':>5} {'dups':>5} {'backlog':>7} {'catch-up':>8} "
        f"{'broker%':>7} {'sub%':>5} {'stations%':>9} {'machine%':>8}  verdict"
    )
    lines = [head]
    for s in steps:
        lines.append(
            f"{s.stations:>8} {s.dials:>5} {s.rate_hz:>5g} {s.nominal_per_s:>10.0f} {s.offered_per_s:>10.0f} "
            f"{s.received_per_s:>8.0f} {s.messages_per_s:>7.0f} {s.lost:>5} {s.duplicates:>5} {s.backlog:>7} "
            f"{s.catch_up_s:>7.1f}s "
            f"{s.broker_cpu:>7.1f} {s.counter_cpu:>5.1f} {s.stations_cpu:>9.1f} {s.machine_busy:>8.1f}  {s.verdict}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="three small steps, 5 s each (under 60 s)")
    parser.add_argument("--steps", help="comma list of STATIONSxDIALSxHZ, e.g. 4x16x100,4x16x250")
    parser.add_argument("--seconds", type=float, help="measuring window per step (default 10, quick 5)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, configs)")
    args = parser.parse_args(argv)
    for program in ("mosquitto", "mosquitto_passwd", "mosquitto_sub"):
        if shutil.which(program) is None:
            raise SystemExit(f"{program} is not installed (scripts/test installs Mosquitto)")
    ladder = parse_steps(args.steps) if args.steps else list(QUICK if args.quick else LADDER)
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    work = Path(tempfile.mkdtemp(prefix="central-broker-"))
    results: list[Step] = []
    started = time.monotonic()
    print(f"{os.cpu_count()} cores; {seconds:g} s per step; work folder {work}", flush=True)
    try:
        for stations, dials, rate in ladder:
            print(f"-- {stations} stations x {dials} dials x {rate:g} Hz ...", flush=True)
            step = run_step(stations, dials, rate, seconds, work)
            results.append(step)
            print(table([step]).splitlines()[1], *(f"   note: {n}" for n in step.notes), sep="\n", flush=True)
            if step.verdict != "ok":
                break
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results))
    zero_loss = [s for s in results if s.lost == 0 and s.verdict == "ok"]
    if zero_loss:
        best = max(zero_loss, key=lambda s: s.nominal_per_s)
        per_core = best.messages_per_s / max(best.broker_cpu / 100, 1e-9)
        print(
            f"\nlargest step with zero loss and nothing saturated: {best.stations} x {best.dials} x "
            f"{best.rate_hz:g} Hz = {best.nominal_per_s:.0f} samples/s ({best.messages_per_s:.0f} messages/s), "
            f"broker at {best.broker_cpu}% of one core (~{per_core:.0f} messages/s per core if it scaled linearly)"
        )
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
