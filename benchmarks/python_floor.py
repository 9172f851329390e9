"""The least per-sample work a station written in Python must do, fused into one loop: the floor
that `benchmarks/hot_path.py`'s figures for the real, layered path can be read against.

    .venv/bin/python benchmarks/python_floor.py                          # 1, 16, 64 dials; back to back and 10 ms apart
    .venv/bin/python benchmarks/python_floor.py --dials 16 --pause 0.01
    .venv/bin/python benchmarks/python_floor.py --json benchmarks/results/python-floor.json

Per tick and dial: parse one decimal line, scale it, build the contract's sample (the fields of
`daq/contract.py`'s sample, media fields null), encode it with orjson, append one outbox-like
record (a header with its id, length and CRC-32, then the topic and payload) to a file with one
`os.write`, and build its QoS 1 PUBLISH; then one `send` of the tick's packets over a socketpair,
whose far end answers a PUBACK for each; those are read and one ack record is written. No
validation, no garbage or loss accounting, no media clock, no segments, no gathering, no refusals:
what any design must do, not what dialdaq does, so it is a bound, not a target. The station's CPU
time for that (thread CPU, the far end's part left out) is printed in µs a sample, the median of
the ticks after 50 warm ones.

With `--pause S` the ticks are S seconds apart, as a 1/S Hz dial leaves them: on the 2-core VMs
here the same code then costs 2-5x its back-to-back time (README "Performance": a tick pays for the
code and data it touches again), so compare it with `hot_path.py --pause S`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import orjson

WARM_TICKS = 50
RECORD = struct.Struct("<QII")  # id, body length, CRC-32 of the body
PUBACK = b"\x40\x02"


def measure(dials: int, ticks: int, pause: float) -> dict[str, Any]:
    """µs of this thread's CPU per sample over `ticks` measured ticks of `dials` dials."""
    topics = [b"daq/bench/dials/d%03d/samples" % i for i in range(dials)]
    heads = [len(t).to_bytes(2, "big") + t for t in topics]
    names = [f"d{i:03d}" for i in range(dials)]
    seqs = [0] * dials
    costs: list[float] = []
    mid = ident = 0
    with tempfile.TemporaryDirectory(prefix="dialdaq-floor-") as folder:
        fd = os.open(Path(folder) / "outbox", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        ours, broker = socket.socketpair()
        try:
            for tick in range(WARM_TICKS + ticks):
                if pause:
                    time.sleep(pause)
                line = b"%d\n" % tick
                now = time.monotonic_ns()
                t0 = time.thread_time_ns()
                packets = []
                for i in range(dials):
                    raw = int(line)
                    sample = {
                        "v": 1,
                        "station": "bench",
                        "dial": names[i],
                        "session": None,
                        "boot": "boot",
                        "seq": seqs[i],
                        "t_ns": now,
                        "media_s": None,
                        "timecode": None,
                        "frame": None,
                        "value": raw / 1e9,
                        "raw": raw,
                    }
                    payload = orjson.dumps(sample)
                    body = topics[i] + payload
                    os.write(fd, RECORD.pack(ident, len(body), zlib.crc32(body)) + body)
                    ident += 1
                    seqs[i] += 1
                    mid = mid % 65535 + 1
                    length = len(heads[i]) + 2 + len(payload)
                    size = bytes(((length & 0x7F) | 0x80, length >> 7)) if length >= 128 else bytes((length,))
                    packets.append(b"\x32" + size + heads[i] + mid.to_bytes(2, "big") + payload)
                ours.sendall(b"".join(packets))
                t1 = time.thread_time_ns()
                got = 0  # the broker's side, not counted: every PUBLISH of the tick answered
                want = sum(len(p) for p in packets)
                while got < want:
                    got += len(broker.recv(1 << 20))
                broker.sendall(b"".join(PUBACK + (k % 65535 + 1).to_bytes(2, "big") for k in range(dials)))
                t2 = time.thread_time_ns()
                acks = b""
                while len(acks) < 4 * dials:
                    acks += ours.recv(1 << 20)
                acked = [int.from_bytes(acks[k + 2 : k + 4], "big") for k in range(0, len(acks), 4)]
                os.write(fd, struct.pack(f"<{len(acked)}H", *acked))
                t3 = time.thread_time_ns()
                if tick >= WARM_TICKS:
                    costs.append((t1 - t0 + t3 - t2) / dials / 1000)
        finally:
            ours.close()
            broker.close()
            os.close(fd)
    return {
        "dials": dials,
        "ticks": ticks,
        "pause_s": pause,
        "median_us": round(statistics.median(costs), 2),
        "p10_us": round(sorted(costs)[len(costs) // 10], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dials", default="1,16,64", help="dial counts, comma separated (default 1,16,64)")
    parser.add_argument("--ticks", type=int, default=500, help="ticks measured per run (default 500)")
    parser.add_argument("--pause", help="seconds between ticks, comma separated (default 0,0.01)", default="0,0.01")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    try:
        dial_counts = [int(d) for d in args.dials.split(",")]
        pauses = [float(p) for p in args.pause.split(",")]
    except ValueError:
        parser.error("--dials takes whole numbers and --pause seconds, comma separated")
    if not dial_counts or min(dial_counts) < 1 or max(dial_counts) > 1024:
        parser.error("--dials must be 1 to 1024")
    if not pauses or min(pauses) < 0 or max(pauses) > 1 or args.ticks < 1:
        parser.error("--pause must be 0 to 1 s and --ticks at least 1")
    rows = []
    for dials in dial_counts:
        for pause in pauses:
            row = measure(dials, args.ticks, pause)
            rows.append(row)
            apart = f"{pause * 1000:g} ms apart" if pause else "back to back"
            print(f"{dials:4d} dials, {apart:>14}: {row['median_us']:8.2f} us a sample (p10 {row['p10_us']:.2f})")
    if args.json:
        doc = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": sys.version.split()[0], "results": rows}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
