"""End-to-end benchmark of a station: latency, throughput, timestamp accuracy, CPU, memory,
side by side with Lab Streaming Layer and a bare MQTT publisher on the same machine.

    scripts/bench --quick                                   # < 60 s: 1 and 16 dials at 100 Hz, 3 s each
    scripts/bench --json benchmarks/results/full.json       # 1, 16, 64 dials x 100, 1000 Hz, 10 s each
    scripts/bench --dials 16 --rates 1000 --publish-batch-max 100 --publish-linger-ms 1 --no-alternatives
    scripts/bench --dials 16 --max-rate                     # highest sustained rate with zero loss
    scripts/bench --uvloop                                  # the daemon (and the floor) on uvloop

The path measured, per configuration (N dials at R Hz each):

  writer process --pty--> `daq run --config` --MQTT--> Mosquitto --MQTT--> subscriber process
  (the dials)              (the daemon, a subprocess)   (real, loopback)   (paho-mqtt, QoS 1)

- The dials are firmware on real pseudo-terminals (tests/ptydial.py), one per dial, played by a
  separate writer process on an absolute schedule: tick k writes `<k>\\n` (benchmarks/
  bench_profile.toml) to every dial, the time taken with time.monotonic_ns() just before each
  write. The writer also measures its wall-minus-monotonic offset (midpoint of two monotonic
  reads around a wall read). A sample is identified on the wire by (dial, raw).
- The subscriber records time.monotonic_ns() when paho hands it each message (one time for all
  samples of a batched array). CLOCK_MONOTONIC is system-wide on Linux, so one clock spans the
  processes.
- latency     = subscriber receipt - write time (monotonic): what an app subscribed to the station sees.
- ts error    = the sample's t_ns - (write time + the writer's offset): how far the published read
                time is from the moment the bytes were sent (pty transfer, poll wake-up, GIL wait).
- lost        = (dial, raw) written but not received `--drain` seconds after the last write.
- cpu_pct     = the daemon's user+sys time (/proc/PID/stat, all threads) over the write window,
                100 = one core; rss_mb its peak RSS (VmHWM) at the end; idle_cpu_pct the same
                CPU share over `--idle-seconds` with the N dials connected and silent.

Alternatives, same machine, same broker, same N x R, each in its own processes:

- floor: one process publishes N x R samples straight to the broker (aiomqtt, QoS 1, one message
  per sample, a sample object of the daemon's shape and size, pipelined: a task per publish, at
  most 256 in flight like the daemon's default max_inflight), no daemon in between; the same
  subscriber. latency = the moment the sample is handed to aiomqtt (create_task(publish), which
  runs in the same loop turn) -> receipt. The floor for any MQTT design on this machine.
- lsl: one pylsl outlet per dial (one channel, double, nominal rate R) in one process, pushing
  each sample with push_sample(x, timestamp=local_clock()) (pushthrough); one process with an
  inlet per dial, a thread each blocking in pull_sample. latency = local_clock() when
  pull_sample returned - the pushed timestamp (local_clock is CLOCK_MONOTONIC on Linux). LSL is
  confined to this machine with an lsl_api.cfg (LSLAPICFG): ResolveScope = machine, KnownPeers =
  {127.0.0.1}, a session id of its own.

Every figure depends on the machine's load: the writer, the daemon, Mosquitto and the subscriber
share the CPUs (on a real station the dials' USB hardware costs the host nothing). The load
average is recorded with each configuration.

`--uvloop` runs the daemon as `python -c "import uvloop; uvloop.install(); from daq.cli import
main; ..." run --config FILE` (uvloop must be installed: scripts/bench --uvloop installs it) and
the floor publisher on uvloop too. `--daq-src DIR` runs the daemon from another copy of the source
tree (PYTHONPATH=DIR), to measure a prototype change before it is made in daq/.
`--profile-dir DIR` records a py-spy flame graph of the daemon over each write window.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import math
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROFILE = Path(__file__).resolve().parent / "bench_profile.toml"
STATION = "bench"
FLOOR_STATION = "floor"
FLOOR_INFLIGHT = 256
FLOOR_GIVE_UP_S = 5.0  # the floor publisher stops when it is this far behind its schedule
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROFILE_EXT = {"flamegraph": "svg", "raw": "folded", "speedscope": "json"}

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# --------------------------------------------------------------------------- small helpers


def emit(obj: dict[str, Any]) -> None:
    """A child's answer to the orchestrator: one JSON line on stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wall_mono_offset_ns() -> int:
    """Wall minus monotonic, as the daemon measures it (daq.readclock): best of a few brackets."""
    best: tuple[int, int] | None = None
    for _ in range(9):
        m0 = time.monotonic_ns()
        wall = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, wall - (m0 + m1) // 2)
    assert best is not None
    return best[1]


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence; nan when empty."""
    if not ordered:
        return float("nan")
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])


def stats_ms(values_ns: list[int] | list[float], prefix: str, scale: float = 1e-6) -> dict[str, float]:
    ordered = sorted(values_ns)
    return {
        f"{prefix}_p50_ms": round(percentile(ordered, 0.50) * scale, 4),
        f"{prefix}_p99_ms": round(percentile(ordered, 0.99) * scale, 4),
        f"{prefix}_max_ms": round(percentile(ordered, 1.0) * scale, 4),
    }


def proc_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process, all its threads."""
    user, system = proc_cpu_split_s(pid)
    return user + system


def proc_cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, all CPUs (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return total - idle, total


def machine_busy_pct(before: tuple[float, float], after: tuple[float, float]) -> float:
    """How busy all CPUs were between two cpu_times(), 100 = every CPU all the time."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(100 * busy / total, 1) if total > 0 else float("nan")


def wait_quiet(max_busy_pct: float, timeout_s: float) -> float:
    """Wait until the machine was at most max_busy_pct busy over one second; return the last figure."""
    deadline = time.monotonic() + timeout_s
    while True:
        before = cpu_times()
        time.sleep(1.0)
        busy = machine_busy_pct(before, cpu_times())
        if busy <= max_busy_pct or time.monotonic() > deadline:
            return busy


def sleep_until_ns(deadline_ns: int) -> None:
    delay = deadline_ns - time.monotonic_ns()
    if delay > 0:
        time.sleep(delay / 1e9)


def sample_payload(dial: str, raw: int, t_ns: int) -> dict[str, object]:
    """A sample object shaped (and sized) like the daemon's (daq/pipeline.py), for the floor."""
    return {
        "v": 1,
        "station": FLOOR_STATION,
        "dial": dial,
        "session": "s-20261123T170000Z-3f2a",
        "boot": "6f1c0c2e9a4b4d51",
        "seq": raw,
        "t_ns": t_ns,
        "media_s": 12.345678,
        "timecode": "00:00:12:08",
        "frame": 308,
        "value": 0.001234,
        "raw": raw,
    }


def dial_id(index: int) -> str:
    return f"d{index:03d}"


# --------------------------------------------------------------------------- child: the dials


def role_writer(args: argparse.Namespace) -> None:
    """N PtyDials; on command: prime them, play ticks on an absolute schedule, record write times."""
    from tests.ptydial import PtyDial

    dials = [PtyDial(args.dir, dial_id(i)) for i in range(args.dials)]
    emit({"paths": [str(d.path) for d in dials], "offset_ns": wall_mono_offset_ns()})
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["cmd"] == "prime":  # the daemon drops the first line after opening a port
                for d in dials:
                    d.write(b"\n")
                emit({"ok": True})
            elif cmd["cmd"] == "play":
                emit(play(dials, cmd["start_ns"], cmd["ticks"], cmd["rate"], cmd["out"]))
            elif cmd["cmd"] == "quit":
                break
    finally:
        for d in dials:
            d.close()


def play(dials: list[Any], start_ns: int, ticks: int, rate: float, out: str) -> dict[str, Any]:
    n = len(dials)
    period_ns = 1e9 / rate
    times = array.array("q", bytes(8 * ticks * n))
    writes = [d.write for d in dials]
    late_max = 0
    idx = 0
    for k in range(ticks):
        due = start_ns + int(k * period_ns)
        now = time.monotonic_ns()
        if due > now:
            time.sleep((due - now) / 1e9)
        else:
            late_max = max(late_max, now - due)
        line = b"%d\n" % k
        for write in writes:
            times[idx] = write(line)
            idx += 1
    end = time.monotonic_ns()
    with open(out, "wb") as f:
        times.tofile(f)
    return {
        "written": ticks * n,
        "late_max_ms": late_max / 1e6,
        "elapsed_s": (end - start_ns) / 1e9,
        "offset_ns": wall_mono_offset_ns(),
    }


# --------------------------------------------------------------------------- child: the subscriber


def role_sub(args: argparse.Namespace) -> None:
    """paho-mqtt, QoS 1: receipt time of every sample message; dials whose meta says connected."""
    import orjson
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    received: list[tuple[int, bytes]] = []
    connected: set[str] = set()
    ready = threading.Event()
    monotonic_ns = time.monotonic_ns
    append = received.append

    def on_sample(client: Any, userdata: Any, msg: Any) -> None:
        append((monotonic_ns(), msg.payload))

    def on_meta(client: Any, userdata: Any, msg: Any) -> None:
        body = orjson.loads(msg.payload)
        if body.get("connected"):
            connected.add(body["dial"])
        else:
            connected.discard(body["dial"])

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe([(f"daq/{args.station}/dials/+/samples", 1), (f"daq/{args.station}/dials/+/meta", 1)])

    def on_subscribe(client: Any, userdata: Any, mid: Any, reasons: Any, properties: Any) -> None:
        ready.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.on_message = on_sample
    client.message_callback_add(f"daq/{args.station}/dials/+/meta", on_meta)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    counted = 0
    samples = 0
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["cmd"] == "status":
                upto = len(received)
                samples += sum(p.count(b'"raw":') for _, p in received[counted:upto])
                counted = upto
                emit({"ready": ready.is_set(), "connected": len(connected), "samples": samples})
            elif cmd["cmd"] == "dump":
                client.loop_stop()
                client.disconnect()
                dials: list[str] = []
                raws: list[int] = []
                t_ns: list[int] = []
                recv: list[int] = []
                for when, payload in received:
                    body = orjson.loads(payload)
                    for s in body if isinstance(body, list) else [body]:
                        dials.append(s["dial"])
                        raws.append(s["raw"])
                        t_ns.append(s["t_ns"])
                        recv.append(when)
                with open(cmd["out"], "wb") as f:
                    f.write(orjson.dumps({"dial": dials, "raw": raws, "t_ns": t_ns, "recv_ns": recv}))
                emit({"messages": len(received), "samples": len(raws)})
                break
    finally:
        client.loop_stop()


# --------------------------------------------------------------------------- child: the floor


def role_floor(args: argparse.Namespace) -> None:
    if args.uvloop:
        import uvloop

        uvloop.install()
    times, summary = asyncio.run(floor_main(args))
    with open(args.out, "wb") as f:
        times.tofile(f)
    emit(summary)


async def floor_main(args: argparse.Namespace) -> tuple[array.array[int], dict[str, Any]]:
    """N x R samples published straight to the broker: aiomqtt, QoS 1, one message per sample."""
    import aiomqtt
    import orjson

    n, rate, ticks = args.dials, args.rate, args.ticks
    offset = wall_mono_offset_ns()
    topics = [f"daq/{FLOOR_STATION}/dials/{dial_id(i)}/samples" for i in range(n)]
    names = [dial_id(i) for i in range(n)]
    times = array.array("q", bytes(8 * ticks * n))
    window = asyncio.Semaphore(FLOOR_INFLIGHT)
    inflight: set[asyncio.Task[None]] = set()
    errors: list[BaseException] = []

    client = aiomqtt.Client(
        "127.0.0.1", args.port, identifier=f"bench-floor-{uuid.uuid4().hex[:8]}", protocol=aiomqtt.ProtocolVersion.V5
    )
    client.pending_calls_threshold = 10**9  # pipelining on purpose, as the daemon (daq/mqtt_client.py)

    def finished(task: asyncio.Task[None]) -> None:
        inflight.discard(task)
        window.release()
        if not task.cancelled() and task.exception() is not None:
            errors.append(task.exception())  # type: ignore[arg-type]

    async with client:
        loop = asyncio.get_running_loop()
        emit({"ready": True})
        start_ns = json.loads(await loop.run_in_executor(None, sys.stdin.readline))["start_ns"]
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9))
        period_ns = 1e9 / rate
        late_max = 0
        idx = 0
        monotonic_ns = time.monotonic_ns
        gave_up = False
        for k in range(ticks):
            due = start_ns + int(k * period_ns)
            now = monotonic_ns()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
            else:
                late_max = max(late_max, now - due)
                if now - due > FLOOR_GIVE_UP_S * 1e9:
                    gave_up = True
                    break
                await asyncio.sleep(0)
            for i in range(n):
                await window.acquire()
                t = monotonic_ns()
                payload = orjson.dumps(sample_payload(names[i], k, t + offset))
                task = loop.create_task(client.publish(topics[i], payload, qos=1, timeout=math.inf))
                times[idx] = t
                idx += 1
                inflight.add(task)
                task.add_done_callback(finished)
        end = monotonic_ns()
        if inflight:
            await asyncio.wait(set(inflight))
    del times[idx:]
    summary = {
        "written": idx,
        "gave_up": gave_up,
        "late_max_ms": late_max / 1e6,
        "elapsed_s": (end - start_ns) / 1e9,
        "errors": len(errors),
    }
    return times, summary


# --------------------------------------------------------------------------- children: LSL


def role_lsl_outlet(args: argparse.Namespace) -> None:
    """One outlet per dial; on command, push ticks on an absolute schedule, stamped local_clock()."""
    import pylsl

    outlets = []
    for i in range(args.dials):
        info = pylsl.StreamInfo(
            f"bench-{dial_id(i)}", "Rating", 1, args.rate, pylsl.cf_double64, f"{args.session}-{dial_id(i)}"
        )
        outlets.append(pylsl.StreamOutlet(info))
    emit({"ready": True})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "wait_consumers":
            ok = all(o.wait_for_consumers(cmd["timeout"]) for o in outlets)
            emit({"consumers": ok})
        elif cmd["cmd"] == "play":
            start_ns, ticks, period_ns = cmd["start_ns"], cmd["ticks"], 1e9 / args.rate
            local_clock = pylsl.local_clock
            pushes = [o.push_sample for o in outlets]
            late_max = 0
            for k in range(ticks):
                due = start_ns + int(k * period_ns)
                now = time.monotonic_ns()
                if due > now:
                    time.sleep((due - now) / 1e9)
                else:
                    late_max = max(late_max, now - due)
                x = [float(k)]
                for push in pushes:
                    push(x, local_clock())
            emit({"written": ticks * len(outlets), "late_max_ms": late_max / 1e6})
        elif cmd["cmd"] == "quit":
            break


def role_lsl_inlet(args: argparse.Namespace) -> None:
    """One inlet per dial, a thread each blocking in pull_sample; latency = receipt - pushed stamp."""
    import pylsl

    # One resolve for all the streams of this run (one resolve per stream takes too long for 64).
    found = pylsl.resolve_bypred(f"starts-with(source_id,'{args.session}-')", args.dials, 60)
    by_id = {info.source_id(): info for info in found}
    inlets = []
    for i in range(args.dials):
        sid = f"{args.session}-{dial_id(i)}"
        if sid not in by_id:
            emit({"error": f"LSL stream {sid} not found ({len(by_id)} of {args.dials} resolved)"})
            return
        inlet = pylsl.StreamInlet(by_id[sid], max_buflen=60, processing_flags=0)
        inlet.open_stream(timeout=10)
        inlets.append(inlet)
    stop = threading.Event()
    results: list[list[tuple[int, int, float]]] = [[] for _ in inlets]

    def pull(index: int, inlet: Any, out: list[tuple[int, int, float]]) -> None:
        local_clock = pylsl.local_clock
        while not stop.is_set():
            sample, ts = inlet.pull_sample(timeout=0.2)
            if sample is None:
                continue
            now = local_clock()
            out.append((index, int(sample[0]), now - ts))
            chunk, stamps = inlet.pull_chunk(timeout=0.0)
            if chunk:
                now = local_clock()
                out.extend((index, int(s[0]), now - t) for s, t in zip(chunk, stamps, strict=True))

    threads = [
        threading.Thread(target=pull, args=(i, inlet, results[i]), daemon=True) for i, inlet in enumerate(inlets)
    ]
    for t in threads:
        t.start()
    emit({"ready": True})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "status":
            emit({"samples": sum(len(r) for r in results)})
        elif cmd["cmd"] == "dump":
            stop.set()
            for t in threads:
                t.join(2)
            with open(cmd["out"], "w", encoding="ascii") as f:
                json.dump([x for r in results for x in r], f)
            emit({"samples": sum(len(r) for r in results)})
            break


# --------------------------------------------------------------------------- the orchestrator


class Child:
    """A benchmark child process speaking JSON lines on stdin/stdout; stopped by its pid."""

    def __init__(self, role: str, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.role = role
        self.log = log
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--role", role, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                start_new_session=True,
            )
        self._buf = b""

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def read(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.role}: no answer in {timeout} s (log: {self.log})")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    tail = self.log.read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"{self.role} exited ({self.proc.poll()}): {tail}")
                self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return dict(json.loads(line))

    def ask(self, obj: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        self.send(obj)
        return self.read(timeout)

    def stop(self) -> None:
        from tests.support.procs import stop_process

        if self.proc.poll() is None:
            try:
                self.send({"cmd": "quit"})
                self.proc.wait(3)
            except (OSError, subprocess.TimeoutExpired):
                stop_process(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a child that has exited: a broken pipe
                    stream.close()


@dataclass
class Options:
    seconds: float
    idle_seconds: float
    drain_s: float
    batch_max: int | None
    linger_ms: float | None
    max_inflight: int | None
    uvloop: bool
    daq_src: Path | None
    alternatives: tuple[str, ...]
    profile_dir: Path | None
    profile_format: str
    profile_gil: bool
    work: Path
    broker_port: int
    broker_pid: int
    wait_quiet: float | None = None
    wait_quiet_timeout: float = 600.0
    lsl_cfg: Path | None = None
    notes: list[str] = field(default_factory=list)


def daemon_cmd(cfg: Path, opts: Options) -> list[str]:
    if opts.uvloop:
        code = "import sys, uvloop; uvloop.install(); from daq.cli import main; sys.exit(main(sys.argv[1:]))"
        return [sys.executable, "-c", code, "run", "--config", str(cfg)]
    return [sys.executable, "-m", "daq", "run", "--config", str(cfg)]


def child_env(opts: Options, daq_src: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAQ_")}
    env["PYTHONUNBUFFERED"] = "1"
    paths = [str(opts.daq_src)] if daq_src and opts.daq_src else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO)])
    if opts.lsl_cfg is not None:
        env["LSLAPICFG"] = str(opts.lsl_cfg)
    return env


def write_config(path: Path, station: str, port: int, dials: list[str], opts: Options) -> None:
    publish = []
    if opts.batch_max is not None:
        publish.append(f"batch_max = {opts.batch_max}")
    if opts.linger_ms is not None:
        publish.append(f"batch_linger_ms = {opts.linger_ms}")
    if opts.max_inflight is not None:
        publish.append(f"max_inflight = {opts.max_inflight}")
    text = f'[station]\nid = "{station}"\n[broker]\nurl = "mqtt://127.0.0.1:{port}"\n'
    # The outbox on disk, as shipped; in this configuration's own folder, so no run replays another's.
    text += f'[outbox]\npath = "{path.parent / "outbox"}"\n'
    if publish:
        text += "[publish]\n" + "\n".join(publish) + "\n"
    for i, dial_path in enumerate(dials):
        text += textwrap.dedent(f"""
            [[dials]]
            id = "{dial_id(i)}"
            profile = "{PROFILE}"
            port = "{dial_path}"
            """)
    path.write_text(text)


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


def match(
    n: int, first_raw: int, write_ns: array.array[int], got: dict[str, list[Any]]
) -> tuple[dict[tuple[int, int], tuple[int, int]], int]:
    """(dial index, raw) -> (t_ns, recv_ns) of its first receipt; and the number of duplicates."""
    seen: dict[tuple[int, int], tuple[int, int]] = {}
    dups = 0
    for dial, raw, t_ns, recv in zip(got["dial"], got["raw"], got["t_ns"], got["recv_ns"], strict=True):
        key = (int(dial[1:]), int(raw) - first_raw)
        if key in seen:
            dups += 1
        else:
            seen[key] = (t_ns, recv)
    return seen, dups


def analyse(
    n: int, write_ns: array.array[int], offset_ns: int, got: dict[str, list[Any]], prefix: str, ts: bool
) -> dict[str, Any]:
    seen, dups = match(n, 0, write_ns, got)
    latency: list[int] = []
    ts_error: list[int] = []
    lost = 0
    lost_examples: list[str] = []
    for idx, written in enumerate(write_ns):
        k, i = divmod(idx, n)
        hit = seen.get((i, k))
        if hit is None:
            lost += 1
            if len(lost_examples) < 10:
                lost_examples.append(f"{dial_id(i)}:{k}")
            continue
        t_ns, recv = hit
        latency.append(recv - written)
        if ts:
            ts_error.append(t_ns - (written + offset_ns))
    out: dict[str, Any] = {
        f"{prefix}received": len(write_ns) - lost,
        f"{prefix}lost": lost,
        f"{prefix}duplicates": dups,
        f"{prefix}unexpected": len(seen) - (len(write_ns) - lost),
    }
    if lost_examples:
        out[f"{prefix}lost_examples"] = lost_examples
    out.update(stats_ms(latency, f"{prefix}latency"))
    if ts:
        out.update(stats_ms(ts_error, "ts_error"))
    return out


def run_daemon(n: int, rate: float, opts: Options, seconds: float, idle: bool) -> dict[str, Any]:
    from tests.support.procs import stop_process

    tag = f"daemon-{n}x{rate:g}"
    run_id = uuid.uuid4().hex[:6]
    station = f"{STATION}-{run_id}"  # its own topics: retained state of an earlier run must not count
    work = opts.work / f"{tag}-{run_id}"
    work.mkdir(parents=True)
    ticks = int(seconds * rate)
    writer = Child("writer", ["--dir", str(work), "--dials", str(n)], work / "writer.log", child_env(opts))
    sub = Child("sub", ["--port", str(opts.broker_port), "--station", station], work / "sub.log", child_env(opts))
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
            c0, w0 = proc_cpu_s(pid), time.monotonic()
            time.sleep(opts.idle_seconds)
            result["idle_cpu_pct"] = round(100 * (proc_cpu_s(pid) - c0) / (time.monotonic() - w0), 2)
        result["load_start"] = load1()
        start_ns = time.monotonic_ns() + 300_000_000
        times_path = work / "writes.bin"
        writer.send({"cmd": "play", "start_ns": start_ns, "ticks": ticks, "rate": rate, "out": str(times_path)})
        py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
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
        sleep_until_ns(start_ns)
        u0, s0 = proc_cpu_split_s(pid)
        b0, m0, w0 = proc_cpu_s(opts.broker_pid), cpu_times(), time.monotonic()
        sleep_until_ns(start_ns + int(seconds * 1e9))
        u1, s1 = proc_cpu_split_s(pid)
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
        got_path = work / "received.json"
        sub.ask({"cmd": "dump", "out": str(got_path)}, timeout=120)
        got = json.loads(got_path.read_text())
        write_ns = array.array("q")
        with times_path.open("rb") as f:
            write_ns.frombytes(f.read())
        result.update(
            {
                "written": played["written"],
                "writer_late_max_ms": round(played["late_max_ms"], 3),
                "writer_rate_hz": round(ticks / max(played["elapsed_s"], 1e-9), 1),
                "cpu_pct": round(100 * (c1 - c0) / (w1 - w0), 1),
                "cpu_sys_pct": round(100 * (s1 - s0) / (w1 - w0), 1),
                "cpu_us_per_sample": round(1e6 * (c1 - c0) / max(1, played["written"]), 1),
                "broker_cpu_pct": round(100 * (b1 - b0) / (w1 - w0), 1),
                "machine_busy_pct": machine_busy_pct(m0, m1),
            }
        )
        result.update(analyse(n, write_ns, info["offset_ns"], got, "", ts=True))
        result["offset_drift_us"] = round((played["offset_ns"] - info["offset_ns"]) / 1e3, 1)
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
    ticks = int(seconds * rate)
    sub = Child("sub", ["--port", str(opts.broker_port), "--station", FLOOR_STATION], work / "sub.log", child_env(opts))
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
        sleep_until_ns(start_ns)
        c0, w0 = proc_cpu_s(pub.proc.pid), time.monotonic()
        sleep_until_ns(start_ns + int(seconds * 1e9))
        c1, w1 = proc_cpu_s(pub.proc.pid), time.monotonic()
        done = pub.read(timeout=seconds * 5 + 60)
        drain(sub, done["written"], opts.drain_s)
        got_path = work / "received.json"
        sub.ask({"cmd": "dump", "out": str(got_path)}, timeout=120)
        got = json.loads(got_path.read_text())
        write_ns = array.array("q")
        with times_path.open("rb") as f:
            write_ns.frombytes(f.read())
        out = analyse(n, write_ns, 0, got, "floor_", ts=False)
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
    ticks = int(seconds * rate)
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
        sleep_until_ns(start_ns)
        c0, w0 = proc_cpu_s(outlet.proc.pid), time.monotonic()
        sleep_until_ns(start_ns + int(seconds * 1e9))
        c1, w1 = proc_cpu_s(outlet.proc.pid), time.monotonic()
        done = outlet.read(timeout=seconds * 5 + 60)
        deadline = time.monotonic() + opts.drain_s
        while inlet.ask({"cmd": "status"})["samples"] < done["written"] and time.monotonic() < deadline:
            time.sleep(0.05)
        got_path = work / "received.json"
        inlet.ask({"cmd": "dump", "out": str(got_path)}, timeout=60)
        got = json.loads(got_path.read_text())
        keys = {(i, k) for i, k, _ in got}
        latency = [lat for _, _, lat in got]
        out: dict[str, Any] = {
            "lsl_lost": done["written"] - len(keys & {(i, k) for k in range(ticks) for i in range(n)}),
            "lsl_cpu_pct": round(100 * (c1 - c0) / (w1 - w0), 1),
        }
        out.update(stats_ms(latency, "lsl_latency", scale=1e3))
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


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    for mod in ("aiomqtt", "paho-mqtt", "pylsl", "orjson", "pyserial", "uvloop"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod)
        except Exception:
            versions[mod] = "not installed"
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False).stdout.splitlines()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": mosq[0] if mosq else "?",
        "versions": versions,
    }


COLUMNS = [
    # header, key, format
    ("dials", "dials", "{:>5}"),
    ("Hz", "rate_hz", "{:>6g}"),
    ("lat p50", "latency_p50_ms", "{:>9.2f}"),
    ("p99", "latency_p99_ms", "{:>9.2f}"),
    ("max", "latency_max_ms", "{:>8.1f}"),
    ("ts p50", "ts_error_p50_ms", "{:>7.3f}"),
    ("p99", "ts_error_p99_ms", "{:>7.2f}"),
    ("max", "ts_error_max_ms", "{:>6.1f}"),
    ("lost", "lost", "{:>5}"),
    ("CPU%", "cpu_pct", "{:>6.1f}"),
    ("RSS MB", "rss_mb", "{:>7.1f}"),
    ("idle%", "idle_cpu_pct", "{:>6.2f}"),
    ("floor p50", "floor_latency_p50_ms", "{:>10.2f}"),
    ("p99", "floor_latency_p99_ms", "{:>8.2f}"),
    ("LSL p50", "lsl_latency_p50_ms", "{:>8.2f}"),
    ("p99", "lsl_latency_p99_ms", "{:>7.2f}"),
    ("x floor", "latency_p99_vs_floor", "{:>8.2f}"),
    ("x LSL", "latency_p99_vs_lsl", "{:>6.1f}"),
    ("busy%", "machine_busy_pct", "{:>6.0f}"),
    ("load", "load_start", "{:>5.1f}"),
]


def table(results: list[dict[str, Any]]) -> str:
    widths = [len(fmt.format(0 if "g" not in fmt else 0.0)) for _, _, fmt in COLUMNS]
    lines = ["".join(h.rjust(w) for (h, _, _), w in zip(COLUMNS, widths, strict=True))]
    for r in results:
        cells = []
        for (_, key, fmt), w in zip(COLUMNS, widths, strict=True):
            value = r.get(key)
            cells.append("-".rjust(w) if value is None else fmt.format(value))
        lines.append("".join(cells))
    return "\n".join(lines)


def start_broker(folder: Path) -> Any:
    from tests.support.procs import Mosquitto

    return Mosquitto(folder).start()


def orchestrate(args: argparse.Namespace) -> int:
    dials = [int(x) for x in args.dials.split(",")]
    rates = [float(x) for x in args.rates.split(",")]
    seconds, idle_seconds = args.seconds, args.idle_seconds
    if args.quick:
        dials, rates, seconds, idle_seconds = [1, 16], [100.0], 3.0, 3.0
    alternatives: tuple[str, ...] = () if args.no_alternatives else ("floor", "lsl")
    if "lsl" in alternatives:
        try:
            import pylsl  # noqa: F401
        except ImportError:
            print("pylsl is not installed: LSL skipped (scripts/bench installs it)", file=sys.stderr)
            alternatives = ("floor",)
    if args.uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("--uvloop: uvloop is not installed (scripts/bench --uvloop installs it)", file=sys.stderr)
            return 2
    keep = args.keep
    work = Path(tempfile.mkdtemp(prefix="dialdaq-bench-"))
    broker = start_broker(work / "broker")
    assert broker.proc is not None
    lsl_cfg = work / "lsl_api.cfg"
    lsl_cfg.write_text(
        "[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n"
        f"[lab]\nKnownPeers = {{127.0.0.1}}\nSessionID = bench-{uuid.uuid4().hex[:8]}\n[log]\nlevel = -2\n"
    )
    opts = Options(
        seconds=seconds,
        idle_seconds=idle_seconds,
        drain_s=args.drain,
        batch_max=args.publish_batch_max,
        linger_ms=args.publish_linger_ms,
        max_inflight=args.publish_max_inflight,
        uvloop=args.uvloop,
        daq_src=Path(args.daq_src).resolve() if args.daq_src else None,
        alternatives=alternatives,
        profile_dir=Path(args.profile_dir).resolve() if args.profile_dir else None,
        profile_format=args.profile_format,
        profile_gil=args.profile_gil,
        work=work,
        broker_port=broker.port,
        broker_pid=broker.proc.pid,
        lsl_cfg=lsl_cfg,
        wait_quiet=args.wait_quiet,
        wait_quiet_timeout=args.wait_quiet_timeout,
    )
    info = machine()
    started = time.time()
    print(
        f"dialdaq benchmark: {info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, Python {info['python']}, "
        f"{info['mosquitto']}; load {os.getloadavg()[0]:.2f}\n"
        f"daemon: {'uvloop' if args.uvloop else 'asyncio'}, publish batch_max={args.publish_batch_max or 'default'} "
        f"linger_ms={args.publish_linger_ms if args.publish_linger_ms is not None else 'default'}"
        f"{', source ' + str(opts.daq_src) if opts.daq_src else ''}; {seconds:g} s per run, idle {idle_seconds:g} s",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    max_rates: list[dict[str, Any]] = []
    try:
        if not args.max_rate:
            for n in dials:
                for rate in rates:
                    r = run_config(n, rate, opts)
                    results.append(r)
                    print(table([r]).splitlines()[1] if len(results) > 1 else table([r]), flush=True)
        else:
            for n in dials:
                max_rates.append(find_max_rate(n, opts, args.max_rate_start, args.max_rate_limit, args.sustain_p99_ms))
    finally:
        broker.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    if results:
        print("\n" + table(results))
    for m in max_rates:
        print(f"{m['dials']} dials: highest sustained rate {m['max_sustained_hz']:g} Hz per dial ({m['criterion']})")
    for note in opts.notes:
        print("note:", note)
    if args.json:
        out = {
            "machine": info,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "duration_s": round(time.time() - started, 1),
            "options": {
                "seconds": seconds,
                "idle_seconds": idle_seconds,
                "drain_s": args.drain,
                "publish_batch_max": args.publish_batch_max,
                "publish_linger_ms": args.publish_linger_ms,
                "publish_max_inflight": args.publish_max_inflight,
                "uvloop": args.uvloop,
                "daq_src": str(opts.daq_src) if opts.daq_src else None,
                "alternatives": list(alternatives),
                "lsl": "one outlet per dial (1 channel, double), one inlet thread per dial",
                "tag": args.tag,
            },
            "results": results,
            "max_rate": max_rates,
            "notes": opts.notes,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    if keep:
        print(f"kept {work}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dials", default="1,16,64", help="dial counts, comma separated (default 1,16,64)")
    parser.add_argument("--rates", default="100,1000", help="rates per dial in Hz, comma separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="write window per run (default 10)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle CPU window; 0 skips it")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds after the last write before counting lost")
    parser.add_argument("--quick", action="store_true", help="1 and 16 dials at 100 Hz, 3 s each (< 60 s)")
    parser.add_argument("--publish-batch-max", type=int, help="[publish] batch_max of the daemon")
    parser.add_argument("--publish-linger-ms", type=float, help="[publish] batch_linger_ms of the daemon")
    parser.add_argument("--publish-max-inflight", type=int, help="[publish] max_inflight of the daemon")
    parser.add_argument("--uvloop", action="store_true", help="run the daemon and the floor on uvloop")
    parser.add_argument("--daq-src", help="run the daemon from this source tree (PYTHONPATH) instead")
    parser.add_argument("--no-alternatives", action="store_true", help="the daemon only: no floor, no LSL")
    parser.add_argument("--max-rate", action="store_true", help="find the highest sustained rate per dial count")
    parser.add_argument("--max-rate-start", type=float, default=1000.0)
    parser.add_argument("--max-rate-limit", type=float, default=16000.0)
    parser.add_argument("--sustain-p99-ms", type=float, default=100.0, help="max-rate: p99 latency bound")
    parser.add_argument("--profile-dir", help="py-spy flame graph of the daemon per run into this folder")
    parser.add_argument(
        "--profile-format", default="flamegraph", choices=sorted(PROFILE_EXT), help="py-spy's output format"
    )
    parser.add_argument("--profile-gil", action="store_true", help="py-spy --gil: only samples holding the GIL")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        metavar="PCT",
        help="before each configuration wait until the machine is at most PCT%% busy over 1 s",
    )
    parser.add_argument("--wait-quiet-timeout", type=float, default=180.0, help="longest wait for --wait-quiet (s)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--tag", help="a label stored in the JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, raw data)")
    # children
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--station", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--ticks", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--session", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        if args.role in ("writer", "floor", "lsl-outlet", "lsl-inlet"):
            args.dials = int(args.dials)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the orchestrator, which stops us
        {
            "writer": role_writer,
            "sub": role_sub,
            "floor": role_floor,
            "lsl-outlet": role_lsl_outlet,
            "lsl-inlet": role_lsl_inlet,
        }[args.role](args)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children on the way out
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
