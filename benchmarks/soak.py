"""Soak: a station for an hour under broker restarts; RSS, outbox depth and loss at the end.

    .venv/bin/python benchmarks/soak.py --minutes 60 --restart-every 300 --json benchmarks/results/soak.json
    .venv/bin/python benchmarks/soak.py --quick            # 2 minutes, a restart every 30 s

A real Mosquitto (persistence on, so the subscriber's persistent session survives restarts),
`daq run --simulate DIALS --rate HZ` with its outbox on disk, and a counting subscriber in its
own process (persistent session, QoS 1) that tracks every (boot, dial, seq). Every
`--restart-every` seconds the broker is stopped for `--down` seconds and started again. Every 10 s
the daemon's RSS and (from its retained health) outbox depth are sampled. At the end the daemon is
stopped (SIGTERM: it flushes), the subscriber drains, and loss is the count of seqs that never
arrived, checked against what the daemon says it read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.procstats import proc_rss_mb  # noqa: E402
from tests.support.procs import Mosquitto, start_daq, stop_process  # noqa: E402

STATION = "soak"


def subscriber(port: int, out: Path) -> None:
    """Count every sample; write a summary to `out` every 2 s and at SIGTERM."""
    import aiomqtt

    from daq.seqtrack import SeqTracker

    trackers: dict[tuple[str, str], SeqTracker] = {}
    health: dict[str, Any] = {}
    messages = 0
    stop = asyncio.Event()

    def dump() -> None:
        summary = {
            "messages": messages,
            "dials": {
                f"{b}/{d}": {
                    "accepted": t.accepted,
                    "last": t.last,
                    "missing": t.missing_count,
                    "duplicates": t.duplicates,
                }
                for (b, d), t in trackers.items()
            },
            "health": health,
        }
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary))
        tmp.replace(out)

    async def main() -> None:
        nonlocal messages, health
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        last_dump = time.monotonic()
        while not stop.is_set():
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    port,
                    identifier="soak-counter",
                    clean_session=False,
                    protocol=aiomqtt.ProtocolVersion.V311,
                ) as client:
                    client.pending_calls_threshold = 1_000_000
                    await client.subscribe(f"daq/{STATION}/dials/+/samples", qos=1)
                    await client.subscribe(f"daq/{STATION}/health", qos=1)
                    it = aiter(client.messages)
                    while not stop.is_set():
                        try:
                            msg = await asyncio.wait_for(anext(it), 1.0)
                        except TimeoutError:
                            msg = None
                        if msg is not None:
                            body = json.loads(bytes(msg.payload))
                            if str(msg.topic).endswith("/health"):
                                health = body
                            else:
                                messages += 1
                                for s in body if isinstance(body, list) else [body]:
                                    trackers.setdefault((s["boot"], s["dial"]), SeqTracker()).offer(s["seq"])
                        if time.monotonic() - last_dump > 2:
                            dump()
                            last_dump = time.monotonic()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.5)
        dump()

    asyncio.run(main())


def read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--restart-every", type=float, default=300, help="seconds between broker restarts")
    parser.add_argument("--down", type=float, default=5, help="seconds the broker stays down")
    parser.add_argument("--dials", type=int, default=16)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--quick", action="store_true", help="2 minutes, a restart every 30 s")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--subscriber", nargs=2, metavar=("PORT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber:
        subscriber(int(args.subscriber[0]), Path(args.subscriber[1]))
        return 0
    if args.quick:
        args.minutes, args.restart_every = 2, 30

    work = Path(os.environ.get("SOAK_DIR") or f"/tmp/dialdaq-soak-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(work / "broker", persistence=True).start()
    counts = work / "counts.json"
    sub = subprocess.Popen(
        [sys.executable, __file__, "--subscriber", str(broker.port), str(counts)], start_new_session=True
    )
    time.sleep(1.0)
    cfg = work / "station.toml"
    cfg.write_text(
        f'[station]\nid = "{STATION}"\n[broker]\nurl = "{broker.url}"\n[outbox]\npath = "{work / "outbox"}"\n'
    )
    daemon = start_daq(["run", "--config", str(cfg), "--simulate", str(args.dials), "--rate", str(args.rate)], work)
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    next_restart = t0 + args.restart_every
    rss: list[float] = []
    depth: list[int] = []
    restarts = 0
    try:
        while time.monotonic() < end:
            time.sleep(min(10.0, max(0.0, end - time.monotonic())))
            rss.append(proc_rss_mb(daemon.pid, missing=0.0))
            health = read_json(counts).get("health") or {}
            if health:
                depth.append(int(health["outbox"]["pending"]) + int(health["outbox"]["inflight"]))
            if time.monotonic() >= next_restart and time.monotonic() + args.down < end:
                broker.stop()
                time.sleep(args.down)
                broker.start()
                restarts += 1
                next_restart += args.restart_every
            print(
                f"{(time.monotonic() - t0) / 60:5.1f} min  rss {rss[-1]:6.1f} MB  outbox {depth[-1] if depth else '?'}"
                f"  restarts {restarts}",
                flush=True,
            )
        code = stop_process(daemon, timeout=60)
        # The daemon's last health (published at stop) says how many samples it read per dial.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            data = read_json(counts)
            final = data.get("health") or {}
            read = {d: v["samples"] for d, v in final.get("dials", {}).items()}
            got = {k.split("/")[1]: v["last"] + 1 - v["missing"] for k, v in data.get("dials", {}).items()}
            if (
                read
                and final.get("uptime_s", 0) >= args.minutes * 60 - 30
                and all(got.get(d, 0) >= n for d, n in read.items())
            ):
                break
            time.sleep(2)
    finally:
        stop_process(daemon)
        stop_process(sub)
        broker.stop()
    data = read_json(counts)
    final = data.get("health") or {}
    read = {d: v["samples"] for d, v in final.get("dials", {}).items()}
    per_dial = data.get("dials", {})
    lost = sum(max(0, read.get(k.split("/")[1], 0) - (v["last"] + 1)) + v["missing"] for k, v in per_dial.items())
    result = {
        "minutes": args.minutes,
        "dials": args.dials,
        "rate_hz": args.rate,
        "broker_restarts": restarts,
        "down_s": args.down,
        "samples_read": sum(read.values()),
        "lost": lost,
        "duplicates": sum(v["duplicates"] for v in per_dial.values()),
        "rss_mb_start": round(rss[0], 1) if rss else None,
        "rss_mb_max": round(max(rss), 1) if rss else None,
        "rss_mb_end": round(rss[-1], 1) if rss else None,
        "outbox_depth_max": max(depth) if depth else None,
        "daemon_exit": code,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if lost == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
