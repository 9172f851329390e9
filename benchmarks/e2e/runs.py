"""One configuration (N dials at R Hz) measured: the daemon, then the bare publisher and LSL beside it."""

from __future__ import annotations

import array
import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.e2e.analysis import analyse, percentile, stats_ms
from benchmarks.e2e.child import Child
from benchmarks.e2e.common import FLOOR_GIVE_UP_S, FLOOR_STATION, PROFILE_EXT, STATION, sleep_until_ns
from benchmarks.e2e.options import Options, child_env, daemon_cmd, lead_ticks, write_config
from benchmarks.procstats import (
    cpu_times,
    load1,
    machine_busy_pct,
    proc_cpu_s,
    proc_hwm_mb,
    tree_cpu_s,
    tree_cpu_split_s,
    wait_quiet,
)

CLOCK_MOVED_US = 100.0
"""A wall clock that moved more than this against the monotonic one during a run makes a note."""


def py_spy_path() -> str | None:
    """py-spy on PATH or beside this Python (`pip install py-spy` into the venv), for `--profile-dir`."""
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def wait_status(sub: Child, what: str, ok: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = sub.ask({"cmd": "status"})
        if ok(status):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}: {status}")
        time.sleep(0.05)


def drain(sub: Child, expected: int, drain_s: float) -> None:
    """Wait until `expected` samples were received, or drain_s passed."""
    deadline = time.monotonic() + drain_s
    while sub.ask({"cmd": "status"})["samples"] < expected and time.monotonic() < deadline:
        time.sleep(0.05)


def collect(sub: Child, work: Path, times_path: Path) -> tuple[array.array[int], dict[str, list[Any]]]:
    """The write times (a child's array file) and what the subscriber received (it dumps and stops)."""
    got_path = work / "received.json"
    sub.ask({"cmd": "dump", "out": str(got_path)}, timeout=120)
    got = json.loads(got_path.read_text())
    write_ns = array.array("q")
    with times_path.open("rb") as f:
        write_ns.frombytes(f.read())
    return write_ns, got


def subscriber(station: str, work: Path, opts: Options) -> Child:
    """The subscriber child for `station`'s samples (`--subscriber`)."""
    args = ["--port", str(opts.broker_port), "--station", station, "--subscriber", opts.subscriber]
    return Child("sub", args, work / "sub.log", child_env(opts))


def run_daemon(n: int, rate: float, opts: Options, seconds: float, idle: bool) -> dict[str, Any]:
    from tests.support.procs import stop_process

    tag = f"daemon-{n}x{rate:g}"
    run_id = uuid.uuid4().hex[:6]
    station = f"{STATION}-{run_id}"  # its own topics: retained state of an earlier run must not count
    work = opts.work / f"{tag}-{run_id}"
    work.mkdir(parents=True)
    lead = lead_ticks(rate, opts)
    ticks = lead + int(seconds * rate)
    writer = Child("writer", ["--dir", str(work), "--dials", str(n)], work / "writer.log", child_env(opts))
    sub = subscriber(station, work, opts)
    daemon: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {}
    try:
        info = writer.read()
        wait_status(sub, "the subscriber", lambda s: s["ready"], 15)
        cfg = work / "daq.toml"
        write_config(cfg, station, opts.broker_port, info["paths"], opts)
        with (work / "daq.log").open("ab") as log:
            daemon = subprocess.Popen(
                daemon_cmd(cfg, opts),
                cwd=work,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(opts, daq_src=True),
                start_new_session=True,
            )
        wait_status(sub, f"{n} dials connected", lambda s: s["connected"] >= n, 60)
        writer.ask({"cmd": "prime"})
        time.sleep(1.0)  # retained state and the first health message go out
        pid = daemon.pid
        if idle:
            c0, w0 = tree_cpu_s(pid), time.monotonic()
            time.sleep(opts.idle_seconds)
            result["idle_cpu_pct"] = round(100 * (tree_cpu_s(pid) - c0) / (time.monotonic() - w0), 2)
        result["load_start"] = load1()
        start_ns = time.monotonic_ns() + 300_000_000
        times_path = work / "writes.bin"
        writer.send({"cmd": "play", "start_ns": start_ns, "ticks": ticks, "rate": rate, "out": str(times_path)})
        py_spy = py_spy_path()
        if opts.profile_dir is not None and py_spy:
            opts.profile_dir.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [
                    py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                    "--threads", "--nonblocking", "--format", opts.profile_format,
                    *(["--gil"] if opts.profile_gil else []),
                    "-o", str(opts.profile_dir / f"{tag}.{PROFILE_EXT[opts.profile_format]}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        window_ns = start_ns + int(lead * 1e9 / rate)  # the measured window starts after the lead-in
        sleep_until_ns(window_ns)
        u0, s0 = tree_cpu_split_s(pid)  # the daemon and its reader process
        b0, m0, w0 = proc_cpu_s(opts.broker_pid), cpu_times(), time.monotonic()
        sleep_until_ns(window_ns + int(seconds * 1e9))
        u1, s1 = tree_cpu_split_s(pid)
        b1, m1, w1 = proc_cpu_s(opts.broker_pid), cpu_times(), time.monotonic()
        c0, c1 = u0 + s0, u1 + s1
        played = writer.read(timeout=seconds * 5 + 60)
        drain(sub, played["written"], opts.drain_s)
        result["rss_mb"] = round(proc_hwm_mb(pid), 1)
        result["load_end"] = load1()
        code = stop_process(daemon)
        if code != 0:
            opts.notes.append(f"{tag}: the daemon exited {code}; see {work / 'daq.log'}")
        if spy is not None:
            spy.wait(seconds + 30)
        write_ns, got = collect(sub, work, times_path)
        # What benchmarks/ts_tail.py needs to read this folder again (kept with --keep).
        (work / "run.json").write_text(
            json.dumps({"dials": n, "rate_hz": rate, "lead": lead, "offset_ns": info["offset_ns"]})
        )
        result.update(
            {
                "written": played["written"],
                "writer_late_max_ms": round(played["late_max_ms"], 3),
                "writer_rate_hz": round(ticks / max(played["elapsed_s"], 1e-9), 1),
                "cpu_pct": round(100 * (c1 - c0) / (w1 - w0), 1),
                "cpu_sys_pct": round(100 * (s1 - s0) / (w1 - w0), 1),
                "cpu_us_per_sample": round(1e6 * (c1 - c0) / max(1, played["written"] - lead * n), 1),
                "broker_cpu_pct": round(100 * (b1 - b0) / (w1 - w0), 1),
                "machine_busy_pct": machine_busy_pct(m0, m1),
            }
        )
        result.update(analyse(n, write_ns, info["offset_ns"], got, "", ts=True, lead=lead))
        result["offset_drift_us"] = round((played["offset_ns"] - info["offset_ns"]) / 1e3, 1)
        if abs(result["offset_drift_us"]) > CLOCK_MOVED_US:
            opts.notes.append(
                f"{tag}: the wall clock moved {result['offset_drift_us'] / 1e3:+.1f} ms against the monotonic clock "
                "between the writer's start and this run's end (an NTP step or slew): this run's ts error and "
                "latency carry it (read through wall time), its CPU does not"
            )
    finally:
        if spy is not None and spy.poll() is None:
            stop_process(spy)
        if daemon is not None:
            stop_process(daemon)
        sub.stop()
        writer.stop()
    return result


def run_floor(n: int, rate: float, opts: Options, seconds: float) -> dict[str, Any]:
    work = opts.work / f"floor-{n}x{rate:g}-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    lead = lead_ticks(rate, opts)
    ticks = lead + int(seconds * rate)
    sub = subscriber(FLOOR_STATION, work, opts)
    pub: Child | None = None
    try:
        wait_status(sub, "the subscriber", lambda s: s["ready"], 15)
        times_path = work / "publishes.bin"
        args = ["--port", str(opts.broker_port), "--dials", str(n), "--rate", str(rate), "--ticks", str(ticks)]
        args += ["--out", str(times_path)] + (["--uvloop"] if opts.uvloop else [])
        pub = Child("floor", args, work / "floor.log", child_env(opts))
        pub.read(timeout=60)  # connected
        start_ns = time.monotonic_ns() + 300_000_000
        pub.send({"start_ns": start_ns})
        window_ns = start_ns + int(lead * 1e9 / rate)
        sleep_until_ns(window_ns)
        c0, w0 = proc_cpu_s(pub.proc.pid), time.monotonic()
        sleep_until_ns(window_ns + int(seconds * 1e9))
        c1, w1 = proc_cpu_s(pub.proc.pid), time.monotonic()
        done = pub.read(timeout=seconds * 5 + 60)
        drain(sub, done["written"], opts.drain_s)
        write_ns, got = collect(sub, work, times_path)
        out = analyse(n, write_ns, 0, got, "floor_", ts=False, lead=lead)
        if done["gave_up"]:
            out["floor_gave_up"] = True
            opts.notes.append(
                f"floor {n}x{rate:g}: fell {FLOOR_GIVE_UP_S:g} s behind and stopped after {done['written']} samples"
            )
        out["floor_cpu_pct"] = round(100 * (c1 - c0) / (w1 - w0), 1)
        out["floor_late_max_ms"] = round(done["late_max_ms"], 3)
        return out
    finally:
        if pub is not None:
            pub.stop()
        sub.stop()


def run_lsl(n: int, rate: float, opts: Options, seconds: float) -> dict[str, Any]:
    work = opts.work / f"lsl-{n}x{rate:g}-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    lead = lead_ticks(rate, opts)
    ticks = lead + int(seconds * rate)
    session = f"bench-{uuid.uuid4().hex[:8]}"
    common = ["--dials", str(n), "--rate", str(rate), "--session", session]
    outlet = Child("lsl-outlet", common, work / "outlet.log", child_env(opts))
    inlet: Child | None = None
    try:
        outlet.read()
        inlet = Child("lsl-inlet", common, work / "inlet.log", child_env(opts))
        answer = inlet.read(timeout=60)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        if not outlet.ask({"cmd": "wait_consumers", "timeout": 10.0})["consumers"]:
            raise RuntimeError("LSL outlets saw no consumer")
        start_ns = time.monotonic_ns() + 300_000_000
        outlet.send({"cmd": "play", "start_ns": start_ns, "ticks": ticks})
        window_ns = start_ns + int(lead * 1e9 / rate)
        sleep_until_ns(window_ns)
        c0, w0 = proc_cpu_s(outlet.proc.pid), time.monotonic()
        sleep_until_ns(window_ns + int(seconds * 1e9))
        c1, w1 = proc_cpu_s(outlet.proc.pid), time.monotonic()
        done = outlet.read(timeout=seconds * 5 + 60)
        deadline = time.monotonic() + opts.drain_s
        while inlet.ask({"cmd": "status"})["samples"] < done["written"] and time.monotonic() < deadline:
            time.sleep(0.05)
        got_path = work / "received.json"
        inlet.ask({"cmd": "dump", "out": str(got_path)}, timeout=60)
        got = json.loads(got_path.read_text())
        keys = {(i, k) for i, k, _ in got}
        latency = [lat for _, k, lat in got if k >= lead]
        first = sorted(lat for _, k, lat in got if k == 0)
        out: dict[str, Any] = {
            "lsl_lost": done["written"] - len(keys & {(i, k) for k in range(ticks) for i in range(n)}),
            "lsl_cpu_pct": round(100 * (c1 - c0) / (w1 - w0), 1),
        }
        out.update(stats_ms(latency, "lsl_latency", scale=1e3))
        out["lsl_first_ms"] = round(percentile(first, 0.5) * 1e3, 3)
        return out
    finally:
        if inlet is not None:
            inlet.stop()
        outlet.stop()


def run_config(n: int, rate: float, opts: Options) -> dict[str, Any]:
    result: dict[str, Any] = {"dials": n, "rate_hz": rate}
    if opts.wait_quiet is not None:
        result["busy_before_pct"] = wait_quiet(opts.wait_quiet, opts.wait_quiet_timeout)
    result.update(run_daemon(n, rate, opts, opts.seconds, idle=opts.idle_seconds > 0))
    for alt, runner in (("floor", run_floor), ("lsl", run_lsl)):
        if alt not in opts.alternatives:
            continue
        try:
            result.update(runner(n, rate, opts, opts.seconds))
        except Exception as exc:  # an alternative failing must not lose the daemon's figures
            opts.notes.append(f"{alt} {n}x{rate:g}: {type(exc).__name__}: {exc}")
    for alt in ("floor", "lsl"):
        for q in ("p50", "p99"):
            theirs = result.get(f"{alt}_latency_{q}_ms")
            if theirs and theirs > 0:
                result[f"latency_{q}_vs_{alt}"] = round(result[f"latency_{q}_ms"] / theirs, 2)
    result["load_after"] = load1()
    return result


def find_max_rate(n: int, opts: Options, start: float, limit: float, p99_limit_ms: float) -> dict[str, Any]:
    """Double the rate from `start` while the daemon keeps up: zero lost, p99 latency under the limit,
    and the writer reached the rate."""
    tried = []
    best = 0.0
    rate = start
    while rate <= limit:
        r = run_daemon(n, rate, opts, min(opts.seconds, 5.0), idle=False)
        ok = r["lost"] == 0 and r["latency_p99_ms"] < p99_limit_ms and r["writer_rate_hz"] >= 0.95 * rate
        tried.append({"rate_hz": rate, "ok": ok, **{k: r[k] for k in ("lost", "latency_p99_ms", "cpu_pct",
                                                                         "writer_rate_hz", "load_end")}})  # fmt: skip
        print(f"  max-rate {n} dials x {rate:g} Hz: {'ok' if ok else 'not sustained'} {tried[-1]}", flush=True)
        if not ok:
            break
        best = rate
        rate *= 2
    return {"dials": n, "max_sustained_hz": best, "criterion": f"lost 0, p99 < {p99_limit_ms:g} ms", "tried": tried}
