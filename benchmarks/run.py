"""End-to-end benchmark of a station: latency, throughput, timestamp accuracy, CPU, memory,
side by side with Lab Streaming Layer and a bare MQTT publisher on the same machine.

    scripts/bench --quick                                   # ~90 s: 1, 16, 64 x 100 Hz and 16 x 1000 Hz
    scripts/bench --quick --baseline 8411831                # the same, an earlier daemon right before each
    scripts/bench --json benchmarks/results/full.json       # 1, 16, 64 dials x 100, 1000 Hz, 10 s each
    scripts/bench --dials 16 --rates 1000 --publish-batch-max 100 --publish-linger-ms 1 --no-alternatives
    scripts/bench --dials 16 --max-rate                     # highest sustained rate with zero loss
    scripts/bench --uvloop                                  # uvloop installed into the daemon and the floor

The path measured, per configuration (N dials at R Hz each):

  writer process --pty--> `daq run --config` --MQTT--> Mosquitto --MQTT--> subscriber process
  (the dials)              (the daemon, a subprocess)   (real, loopback)   (mosquitto_sub, QoS 1)

- The dials are firmware on real pseudo-terminals (tests/ptydial.py), one per dial, played by a
  separate writer process on an absolute schedule: tick k writes `<k>\\n` (benchmarks/
  bench_profile.toml) to every dial, the time taken with time.monotonic_ns() just before each
  write. The writer also measures its wall-minus-monotonic offset (midpoint of two monotonic
  reads around a wall read). A sample is identified on the wire by (dial, raw).
- The subscriber, Mosquitto's C client (mosquitto_sub -F %U), stamps each message when
  libmosquitto hands it over (one time for all samples of a batched array), on the wall clock to
  the nanosecond; its wrapper turns that monotonic with its own wall-minus-monotonic offset.
  CLOCK_MONOTONIC is system-wide on Linux, so one clock spans the processes. (`--subscriber paho`:
  paho-mqtt in Python, time.monotonic_ns() in its callback, as before 2026-12-02's third round; on
  the slower days of the AMD EPYC VM it takes ~120 us a message and at 64 x 100 Hz its own queue
  is what the latency measures.)
- latency     = subscriber receipt - write time (monotonic): what an app subscribed to the station sees.
- ts error    = the sample's t_ns - (write time + the writer's offset): how far the published read
                time is from the moment the bytes were sent (pty transfer, poll wake-up, GIL wait).
- lost        = (dial, raw) written but not received `--drain` seconds after the last write.
- lead-in     = `--lead-in` s (0.5) of ticks played first, for the daemon, the baseline, the floor and
                LSL alike: counted for loss, left out of latency, ts error and CPU, so a 2.5 s run's
                p99 is not its first few samples (after the idle start this VM runs the first
                milliseconds of work 20-40x slower: benchmarks/README.md, "Cold wake-ups");
                `1st` = the first tick's latency alone (median over the dials).
- cpu_pct     = the daemon's user+sys time with its reader process (/proc/PID/stat, all threads,
                live children) over the write window,
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

The daemon picks its own loop (uvloop where installed, since this round; `--event-loop` sets
DAQ_EVENT_LOOP for it). `--uvloop` runs the daemon (of any commit) as
`python -c "import uvloop; uvloop.install(); from daq.cli import main; ..." run --config FILE`
(uvloop must be installed: scripts/bench installs it) and the floor publisher on uvloop too.
`--daq-src DIR` runs the daemon from another copy of the source tree (PYTHONPATH=DIR), to measure
a prototype change before it is made in daq/. `--baseline REF` exports that git commit (git
archive) and runs its daemon the same way, right before the current one in every configuration,
and prints current / baseline for CPU per sample, p99 latency and p99 timestamp error
(benchmarks/e2e/baseline.py). `--event-loop asyncio|uvloop|auto` sets the current daemon's
DAQ_EVENT_LOOP.
`--profile-dir DIR` records a py-spy flame graph of the daemon over each write window.

This file is the entry point (the options, the orchestration, and `--role` for the child
processes); the parts are in benchmarks/e2e/ (see its __init__) and benchmarks/procstats.py.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.e2e import baseline, report, rounds  # noqa: E402
from benchmarks.e2e.common import PROFILE_EXT  # noqa: E402
from benchmarks.e2e.options import Options  # noqa: E402
from benchmarks.e2e.roles import ROLES  # noqa: E402
from benchmarks.e2e.runs import find_max_rate, py_spy_path, run_config  # noqa: E402


def start_broker(folder: Path) -> Any:
    from tests.support.procs import Mosquitto

    return Mosquitto(folder).start()


QUICK = [(1, 100.0), (16, 100.0), (64, 100.0), (16, 1000.0)]  # --quick: (dials, Hz)
QUICK_ALTERNATIVES = {(1, 100.0), (16, 100.0)}  # --quick: floor and LSL beside these only
QUICK_SECONDS, QUICK_IDLE_SECONDS = 2.5, 2.0


def configurations(args: argparse.Namespace) -> list[tuple[int, float]]:
    """The (dials, Hz) measured, in order: --quick's list, else every --dials x --rates."""
    if args.quick:
        return list(QUICK)
    return [(int(n), float(r)) for n in args.dials.split(",") for r in args.rates.split(",")]


def orchestrate(args: argparse.Namespace) -> int:
    configs = configurations(args)
    seconds, idle_seconds = args.seconds, args.idle_seconds
    if args.quick:
        seconds, idle_seconds = QUICK_SECONDS, QUICK_IDLE_SECONDS
    alternatives: tuple[str, ...] = () if args.no_alternatives else ("floor", "lsl")
    if "lsl" in alternatives:
        try:
            import pylsl  # noqa: F401
        except ImportError:
            print("pylsl is not installed: LSL skipped (scripts/bench installs it)", file=sys.stderr)
            alternatives = ("floor",)
    if args.rounds < 1:
        print("--rounds: at least 1", file=sys.stderr)
        return 2
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
    baseline_opts: Options | None = None
    baseline_commit = ""
    if args.baseline:
        try:
            tree, baseline_commit = baseline.export_tree(args.baseline, work / "baseline-src")
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            broker.stop()
            shutil.rmtree(work, ignore_errors=True)
            err = getattr(exc, "stderr", b"") or b""
            print(f"--baseline {args.baseline}: {exc} {err.decode(errors='replace').strip()}", file=sys.stderr)
            return 2
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
        event_loop=args.event_loop,
        lead_in_s=args.lead_in,
        subscriber=args.subscriber,
    )
    if args.baseline:
        # The same harness, the daemon from the exported commit; on the loop it picks itself (or --uvloop's).
        baseline_opts = replace(opts, daq_src=tree, alternatives=(), event_loop=None)
    info = report.machine()
    started = time.time()
    print(report.banner(info, opts, args.uvloop, args.publish_batch_max, args.publish_linger_ms), flush=True)
    if args.baseline:
        print(f"baseline: {args.baseline} ({baseline_commit[:9]}), run right before the current daemon", flush=True)
    results: list[dict[str, Any]] = []
    max_rates: list[dict[str, Any]] = []
    try:
        if not args.max_rate:
            for n, rate in configs:
                run_opts = opts
                if args.quick and (n, rate) not in QUICK_ALTERNATIVES:
                    run_opts = replace(opts, alternatives=())
                ours: list[dict[str, Any]] = []
                theirs: list[dict[str, Any]] = []
                for k in range(args.rounds):
                    round_opts = run_opts if k == 0 else replace(run_opts, alternatives=())  # floor, LSL once
                    if baseline_opts is not None and k % 2 == 0:
                        theirs.append(run_config(n, rate, baseline_opts))
                    ours.append(run_config(n, rate, round_opts))
                    if baseline_opts is not None and k % 2 == 1:
                        theirs.append(run_config(n, rate, baseline_opts))
                r = rounds.merge(ours)
                if theirs:
                    base = rounds.merge(theirs)
                    r["baseline"] = {k: v for k, v in base.items() if k not in ("dials", "rate_hz")}
                    r.update(baseline.ratios(r, base))
                    if len(theirs) > 1:
                        r.update(baseline.ratio_ranges(ours, theirs))
                results.append(r)
                print(report.table([r]).splitlines()[1] if len(results) > 1 else report.table([r]), flush=True)
        else:
            for n in sorted({n for n, _ in configs}, key=[n for n, _ in configs].index):
                max_rates.append(find_max_rate(n, opts, args.max_rate_start, args.max_rate_limit, args.sustain_p99_ms))
    finally:
        broker.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    if text := report.summary(results, max_rates, opts.notes):
        print(text)
    if baseline_opts is not None and results:
        print(f"\ncurrent vs baseline {args.baseline} ({baseline_commit[:9]}); x = current / baseline:")
        print(baseline.comparison_table(results))
    if args.json:
        options = {
            "seconds": seconds,
            "idle_seconds": idle_seconds,
            "drain_s": args.drain,
            "lead_in_s": args.lead_in,
            "publish_batch_max": args.publish_batch_max,
            "publish_linger_ms": args.publish_linger_ms,
            "publish_max_inflight": args.publish_max_inflight,
            "uvloop": args.uvloop,
            "daq_src": str(opts.daq_src) if opts.daq_src else None,
            "event_loop": args.event_loop,
            "subscriber": args.subscriber,
            "rounds": args.rounds,
            "baseline": {"ref": args.baseline, "commit": baseline_commit} if args.baseline else None,
            "alternatives": list(alternatives),
            "lsl": "one outlet per dial (1 channel, double), one inlet thread per dial",
            "tag": args.tag,
        }
        report.write_json(Path(args.json), report.document(info, started, options, results, max_rates, opts.notes))
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
    parser.add_argument(
        "--lead-in",
        type=float,
        default=0.5,
        help="seconds of ticks played before the measured window, for every alternative alike: their loss is "
        "counted, their latency and CPU are not (the first tick's latency, after the idle start, is reported "
        "alone as '1st'); 0: measure from the first tick (default 0.5)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1, 16, 64 dials x 100 Hz and 16 x 1000 Hz, 2.5 s each, floor and LSL at 1 and 16 x 100 only (~90 s)",
    )
    parser.add_argument("--publish-batch-max", type=int, help="[publish] batch_max of the daemon")
    parser.add_argument("--publish-linger-ms", type=float, help="[publish] batch_linger_ms of the daemon")
    parser.add_argument("--publish-max-inflight", type=int, help="[publish] max_inflight of the daemon")
    parser.add_argument("--uvloop", action="store_true", help="run the daemon and the floor on uvloop")
    parser.add_argument("--daq-src", help="run the daemon from this source tree (PYTHONPATH) instead")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each configuration this many times (with --baseline alternating which goes first) "
        "and report the medians",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run the daemon of this git commit (same harness, same configurations, right before the "
        "current one) and print current / baseline ratios",
    )
    parser.add_argument(
        "--event-loop",
        choices=("auto", "asyncio", "uvloop"),
        help="the current daemon's event loop (DAQ_EVENT_LOOP; default: its config's, auto)",
    )
    parser.add_argument(
        "--subscriber",
        choices=("mosquitto_sub", "paho"),
        default="mosquitto_sub",
        help="what receives the samples: Mosquitto's C client (default) or paho-mqtt in Python, which "
        "falls behind at 64 x 100 Hz on a slow 2-core VM (the figures before 2026-12-02's third round)",
    )
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
        ROLES[args.role](args)
        return 0
    if args.profile_dir and py_spy_path() is None:
        parser.error("--profile-dir needs py-spy: .venv/bin/pip install py-spy")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children on the way out
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
