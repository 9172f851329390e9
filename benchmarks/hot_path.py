"""The station's per-sample work in one process, warm: what a change to the hot path saves.

    .venv/bin/python benchmarks/hot_path.py                       # 64 dials, 10 blocks of 100 ticks
    .venv/bin/python benchmarks/hot_path.py --src /tmp/old        # the same code path of another tree
    .venv/bin/python benchmarks/hot_path.py --json benchmarks/results/hot-path.json
    .venv/bin/python benchmarks/hot_path.py --dials 16 --pause 0.01              # ticks 10 ms apart: cold
    .venv/bin/python benchmarks/hot_path.py --dials 16 --pause 0.01 --gap spin   # the gap spent busy

The real objects, wired as the station wires them, without a reader process, a loop wake-up or a
broker: N dials of the benchmark profile (benchmarks/bench_profile.toml), each a DeviceReader with
its decoder and DialPipeline, a session clock running, and one DiskOutbox in a temporary folder.
Per tick every dial gets one line (`DeviceReader._take`, as the reader host hands it over); then
the publisher's steps (outbox.take, Gathering.route, bodies, DaqClient.publish_nowait, one
WireIO.flush) send the samples over a socketpair, whose far end answers each PUBLISH with its
PUBACK; WireIO reads those and the outbox is acknowledged.

It prints microseconds per sample for the three parts (pipeline: decode -> sample -> outbox;
publish; ack), the best block of `--blocks`: warm caches, one process, so far below what a
sample costs in `benchmarks/run.py` (a daemon woken per read, next to the reader process, the
broker and the writer), and far steadier; use it to compare two versions of the code, then
measure the daemon with run.py. `--src DIR` imports `daq` from another source tree.

`--pause S` leaves S seconds between ticks, as a 1/S Hz dial does (asleep, or with `--gap spin`
busy in a loop on the same thread: no idle CPU, no wake-up, no other process). The same code then
costs most of what it costs in the daemon (16 dials x 100 Hz: 51-61 of the daemon's 80 us a
sample, README "Performance"): on the 2-core AMD EPYC VM (2026-12-02) 16 dials took
2-3.5x their warm time per sample with 10 ms gaps asleep, 1.5-3x spinning, one dial 12-14x: the
host's other work takes the caches while time passes, and a tick pays for the code and data it
touches again.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmarks.* (daq comes from --src, put first in main)

from benchmarks.cold_wakeups import spin  # noqa: E402

PROFILE = REPO / "benchmarks" / "bench_profile.toml"
WARM_TICKS = 50  # played before the first block counts


def _pubacks(data: bytes) -> bytes:
    """The broker's side: a PUBACK for every QoS 1 PUBLISH in `data` (whole packets only)."""
    out = bytearray()
    i = 0
    while i < len(data):
        length, shift, j = 0, 0, i + 1
        while True:
            byte = data[j]
            length |= (byte & 0x7F) << shift
            shift += 7
            j += 1
            if not byte & 0x80:
                break
        topic_len = (data[j] << 8) | data[j + 1]
        out += b"\x40\x02" + data[j + 2 + topic_len : j + 4 + topic_len]
        i = j + length
    return bytes(out)


async def measure(dials: int, blocks: int, ticks: int, pause: float = 0.0, gap: str = "sleep") -> dict[str, Any]:
    from daq.calibration import Calibrator, RawRange
    from daq.config import DialConfig
    from daq.mediaclock.session_clock import SessionClock
    from daq.mqtt.client import DaqClient
    from daq.outbox.disk import DiskOutbox
    from daq.profiles.decode import make_decoder
    from daq.profiles.loader import load_profile
    from daq.readclock import ReadClock
    from daq.reading import Chunk
    from daq.station.device_reader import DeviceReader
    from daq.station.dial_pipeline import DialPipeline
    from daq.station.gather import Gathering
    from daq.station.publisher import bodies
    from daq.station.session_state import SessionState
    from daq.timecode import FrameRate

    profile = load_profile(PROFILE)
    folder = tempfile.TemporaryDirectory()
    outbox = DiskOutbox(Path(folder.name) / "outbox")
    session = SessionState(SessionClock(FrameRate.parse("25")))
    session.start(time.time_ns(), mono_ns=time.monotonic_ns())
    readers = []
    for i in range(dials):
        dial = DialConfig(id=f"d{i:03d}", profile=str(PROFILE), port=f"/dev/bench{i}")
        calibrator = Calibrator(dial.scale, dial.calibration, RawRange(0, 1_000_000_000))
        pipeline = DialPipeline(
            "bench", dial.id, "boot", f"daq/bench/{dial.id}/sample", calibrator, ReadClock(), session, outbox
        )
        readers.append(
            DeviceReader(
                transport=None,  # type: ignore[arg-type]  # _take alone is driven
                decoder=make_decoder(profile, synced=True),
                routes={"position": pipeline},
                on_event=lambda *a: None,
                on_connection=lambda *a: None,
            )
        )
    client = DaqClient(hostname="127.0.0.1", port=1)  # never connects: its socket is one end of a pair
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    broker.setblocking(False)
    client._client._sock = ours
    wire = client._wire
    acked: list[Any] = []
    gathering = Gathering(0)
    loop = asyncio.get_running_loop()

    def on_ack(entries: list[Any]) -> Any:
        return lambda failure: acked.extend(entries)

    results: list[tuple[float, float, float]] = []
    sums = [0, 0, 0]
    counted = 0
    gc.collect()
    wait = spin if gap == "spin" else time.sleep
    gaps_ns = gaps_cpu_ns = 0  # the gaps' wall and CPU time: spinning is busy, sleeping is not
    for tick in range(WARM_TICKS + blocks * ticks):
        if pause:
            w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            wait(pause)
            gaps_ns += time.perf_counter_ns() - w0
            gaps_cpu_ns += time.thread_time_ns() - c0
        now = time.monotonic_ns()
        line = b"%d\n" % tick
        t0 = time.perf_counter_ns()
        for reader in readers:
            reader._take([Chunk(line, now)])
        t1 = time.perf_counter_ns()
        for topic, payload, entries in bodies(gathering.route(outbox.take(1 << 20), loop.time()), 100):
            client.publish_nowait(topic, payload, on_ack(entries))
        wire.flush()
        t2 = time.perf_counter_ns()
        sent = b""
        while True:
            try:
                sent += broker.recv(1 << 20)
            except BlockingIOError:
                break
        broker.sendall(_pubacks(sent))
        t3 = time.perf_counter_ns()
        wire._loop_read()
        outbox.ack(acked)
        if len(acked) != dials:
            raise RuntimeError(f"tick {tick}: {len(acked)} of {dials} samples acknowledged")
        acked.clear()
        t4 = time.perf_counter_ns()
        if tick < WARM_TICKS:
            continue
        sums[0] += t1 - t0
        sums[1] += t2 - t1
        sums[2] += t4 - t3
        counted += 1
        if counted == ticks:
            n = counted * dials * 1000
            results.append((sums[0] / n, sums[1] / n, sums[2] / n))
            sums, counted = [0, 0, 0], 0
    outbox.close()
    ours.close()
    broker.close()
    folder.cleanup()
    best = min(results, key=sum)
    return {
        "dials": dials,
        "ticks_per_block": ticks,
        "blocks": blocks,
        "pause_s": pause,
        "gap": gap,
        "gaps_s": round(gaps_ns / 1e9, 4),
        "gaps_cpu_s": round(gaps_cpu_ns / 1e9, 4),
        "best_us": {"pipeline": round(best[0], 2), "publish": round(best[1], 2), "ack": round(best[2], 2)},
        "best_total_us": round(sum(best), 2),
        "median_total_us": round(sorted(sum(r) for r in results)[len(results) // 2], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dials", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=10, help="blocks timed; the best one is printed")
    parser.add_argument("--ticks", type=int, default=100, help="ticks (one line per dial) per block")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between ticks (default 0: back to back)")
    parser.add_argument("--gap", choices=("sleep", "spin"), default="sleep", help="--pause spent asleep or busy")
    parser.add_argument("--src", help="import daq from this source tree instead of this one")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.dials < 1 or args.blocks < 1 or args.ticks < 1:
        parser.error("--dials, --blocks and --ticks must be at least 1")
    if not 0 <= args.pause <= 1:
        parser.error("--pause must be 0 to 1 s")
    src = Path(args.src).resolve() if args.src else REPO
    if not (src / "daq" / "__init__.py").is_file():
        parser.error(f"--src {src}: no daq package there")
    sys.path.insert(0, str(src))
    result = asyncio.run(measure(args.dials, args.blocks, args.ticks, args.pause, args.gap))
    result["src"] = str(src)
    best = result["best_us"]
    print(
        f"{args.dials} dials, best of {args.blocks} blocks of {args.ticks} ticks"
        + (f" {args.pause * 1000:g} ms apart ({args.gap})" if args.pause else "")
        + ", us per sample: "
        f"pipeline {best['pipeline']:.2f}  publish {best['publish']:.2f}  ack {best['ack']:.2f}  "
        f"total {result['best_total_us']:.2f} (median block {result['median_total_us']:.2f})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
