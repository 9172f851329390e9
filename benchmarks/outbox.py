"""Measure ways of keeping the outbox on disk, for 20,000 samples/s of ~230-byte payloads.

    .venv/bin/python benchmarks/outbox.py                       # all variants
    .venv/bin/python benchmarks/outbox.py --variant log --n 1000000
    .venv/bin/python benchmarks/outbox.py --variant log-fsync --n 2000 --seconds 1 --rate 200

Variants (each runs in its own process, in a fresh temporary folder):
  sqlite-commit   SQLite, WAL, synchronous=NORMAL, one INSERT + COMMIT per put: durable
                  against kill -9 when put() returns. Take = SELECT by id, ack = DELETE + COMMIT.
  sqlite-batched  as sqlite-commit, but commits every 64 puts or at the end of the event-loop
                  turn (loop.call_soon): puts since the last commit are only in the process's
                  memory, and kill -9 loses them.
  log             daq.outbox.disk.DiskOutbox: an append-only log, one os.write per put.
  log-fsync       DiskOutbox(fsync=True): one fsync per put (power-loss durable). Slow: run with
                  a small --n and --rate.
  memory          daq.outbox.memory.MemoryOutbox: not durable; what the harness itself costs.

Printed per variant:
  puts/s          puts in a tight loop (no consumer), --n of them
  take+ack/s      then take(320) + ack of all of them until empty
  p99 put         per-put latency while --rate puts/s are sustained for --seconds with a
                  consumer doing take(320)+ack beside them in the same event loop, as the daemon
                  does; CPU% is the process's CPU time over that wall time (100% = one core)
  MB per 1M       file size after the --n puts (db + WAL, or segments), scaled to 1M samples
  kill -9         a child process puts --n samples, 20 per event-loop turn, prints "done" and is
                  SIGKILLed at once; found = how many a new outbox on the folder returns;
                  recovery = opening it until the first take() returned entries

Last run (2 vCPU VM, ext4 on virtio, Python 3.11.7, SQLite 3.40.1), `--n 1000000 --seconds 10`:

variant          puts/s take+ack/s   rate  p50 put  p99 put  max put  CPU MB/1M     kill -9 found recovery
memory           840567    4382383  20000    0.8µs    3.2µs   3587µs  13%     0
sqlite-commit     21696     152062  18629   23.2µs   67.8µs  17021µs  72%   278   1000010/1000010   197ms
sqlite-batched    81722     110335  19999    5.5µs   38.8µs  20306µs  43%   276   1000000/1000010   160ms
log              150522     339417  19998    6.1µs   30.1µs  38506µs  28%   275   1000010/1000010    47ms

and `--variant log-fsync --n 3000 --rate 500 --seconds 3`:

log-fsync          5523    1037042    500  304.4µs 1215.4µs   2042µs  12%   275      3010/3010      11ms

(Figures from one VM vary by ~30% between runs; "memory" is daq.outbox.memory, the harness's
own cost. Recovery of the log with 1M records of which 450k acked, i.e. 450k ack ids to
read: 148 ms.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daq.outbox.base import Entry
from daq.outbox.disk import DiskOutbox
from daq.outbox.memory import MemoryOutbox

VARIANTS = ("memory", "sqlite-commit", "sqlite-batched", "log", "log-fsync")
DIALS = 20
TAKE = 320  # what the publisher takes at once: batch_max (20) * 16
BURST = 20  # puts per event-loop turn in the kill -9 child


class Box(Protocol):
    def put(self, dial: str, topic: str, payload: bytes) -> None: ...
    def take(self, max_entries: int) -> list[Entry]: ...
    def ack(self, entries: list[Entry]) -> None: ...
    @property
    def pending(self) -> int: ...
    def close(self) -> None: ...
    def size(self) -> int: ...


def payload(dial: int, seq: int) -> bytes:
    """A sample as the pipeline makes it: ~230 bytes of JSON."""
    return (
        b'{"v":1,"station":"lab-st-1","dial":"d%02d","session":"20240611T101500Z-7f3a","boot":"9c1e5b7a2d4f6e80",'
        b'"seq":%d,"t_ns":1718101234567890123,"media_s":12.345678,"timecode":"00:00:12:08","frame":296,'
        b'"value":57.25,"raw":0.572500}' % (dial, seq)
    )


class SqliteBox:
    def __init__(self, path: Path, batched: bool) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.file = path / "outbox.db"
        self.db = sqlite3.connect(self.file, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, dial TEXT, topic TEXT, payload BLOB)"
        )
        self.batched = batched
        self.uncommitted = 0
        self.flush_scheduled = False
        self.taken_to = 0
        self.pending_count = self.db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        self.replay_to = self.db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]
        self.next_id = self.replay_to + 1  # not SQLite's rowid: that reuses ids once the table empties
        self.insert = "INSERT INTO outbox (id, dial, topic, payload) VALUES (?, ?, ?, ?)"

    def put(self, dial: str, topic: str, payload: bytes) -> None:
        db = self.db
        if not self.batched:
            db.execute("BEGIN")
            db.execute(self.insert, (self.next_id, dial, topic, payload))
            db.execute("COMMIT")
        else:
            if self.uncommitted == 0:
                db.execute("BEGIN")
            db.execute(self.insert, (self.next_id, dial, topic, payload))
            self.uncommitted += 1
            if self.uncommitted >= 64:
                self.flush()
            elif not self.flush_scheduled:
                try:
                    asyncio.get_running_loop().call_soon(self.flush)
                    self.flush_scheduled = True
                except RuntimeError:
                    pass
        self.next_id += 1
        self.pending_count += 1

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.uncommitted:
            self.db.execute("COMMIT")
            self.uncommitted = 0

    def take(self, max_entries: int) -> list[Entry]:
        self.flush()
        rows = self.db.execute(
            "SELECT id, dial, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (self.taken_to, max_entries),
        ).fetchall()
        if rows:
            self.taken_to = rows[-1][0]
        self.pending_count -= len(rows)
        return [Entry(r[0], r[1], r[2], r[3], r[0] <= self.replay_to) for r in rows]

    def ack(self, entries: list[Entry]) -> None:
        self.flush()
        self.db.execute("BEGIN")
        self.db.executemany("DELETE FROM outbox WHERE id = ?", [(e.id,) for e in entries])
        self.db.execute("COMMIT")

    @property
    def pending(self) -> int:
        return int(self.pending_count)

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.file.parent.glob("outbox.db*"))

    def close(self) -> None:
        self.flush()
        self.db.close()


class LogBox(DiskOutbox):
    def size(self) -> int:
        return self.bytes_on_disk


class MemBox(MemoryOutbox):
    def size(self) -> int:
        return 0


def open_box(variant: str, path: Path) -> Box:
    if variant == "memory":
        return MemBox()
    if variant.startswith("sqlite"):
        return SqliteBox(path, batched=variant == "sqlite-batched")
    return LogBox(path, max_bytes=1 << 40, fsync=variant == "log-fsync")


def topics() -> list[tuple[str, str]]:
    return [(f"d{i:02d}", f"daq/lab-1/dials/d{i:02d}/samples") for i in range(DIALS)]


def throughput(variant: str, folder: Path, n: int) -> dict[str, float]:
    box = open_box(variant, folder / "fill")
    names = topics()
    bodies = [payload(i % DIALS, i) for i in range(min(n, 10_000))]
    t0 = time.perf_counter()
    for i in range(n):
        dial, topic = names[i % DIALS]
        box.put(dial, topic, bodies[i % len(bodies)])
    put_s = time.perf_counter() - t0
    size = box.size()
    t0 = time.perf_counter()
    taken = 0
    while box.pending:
        entries = box.take(TAKE)
        taken += len(entries)
        box.ack(entries)
    drain_s = time.perf_counter() - t0
    box.close()
    assert taken == n, (taken, n)
    return {
        "puts_per_s": n / put_s,
        "take_ack_per_s": n / drain_s,
        "mb_per_1m": size / n * 1_000_000 / 1e6,
        "bytes_per_sample": size / n,
    }


async def sustained(variant: str, folder: Path, rate: int, seconds: float) -> dict[str, float]:
    box = open_box(variant, folder / "sustained")
    names = topics()
    latencies: list[int] = []
    stop = asyncio.Event()

    async def consumer() -> None:
        while not stop.is_set() or box.pending:
            entries = box.take(TAKE)
            if entries:
                box.ack(entries)
            await asyncio.sleep(0.001 if not entries else 0)

    task = asyncio.create_task(consumer())
    tick_s = 0.001
    per_tick = rate * tick_s
    clock = time.perf_counter_ns
    cpu0 = time.process_time()
    start = time.perf_counter()
    owed = 0.0
    seq = 0
    ticks = int(seconds / tick_s)
    for k in range(ticks):
        owed += per_tick
        while owed >= 1:
            owed -= 1
            dial, topic = names[seq % DIALS]
            body = payload(seq % DIALS, seq)
            t = clock()
            box.put(dial, topic, body)
            latencies.append(clock() - t)
            seq += 1
        delay = start + (k + 1) * tick_s - time.perf_counter()
        await asyncio.sleep(max(0.0, delay))
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    stop.set()
    await task
    box.close()
    latencies.sort()
    return {
        "achieved_rate": seq / wall,
        "p50_put_us": latencies[len(latencies) // 2] / 1000,
        "p99_put_us": latencies[int(len(latencies) * 0.99)] / 1000,
        "max_put_us": latencies[-1] / 1000,
        "cpu_percent": cpu / wall * 100,
    }


async def child(variant: str, folder: Path, n: int) -> None:
    """Put n samples, BURST per event-loop turn, say done and wait to be killed."""
    box = open_box(variant, folder)
    await asyncio.sleep(0)
    names = topics()
    for i in range(n):
        dial, topic = names[i % DIALS]
        box.put(dial, topic, payload(i % DIALS, i))
        if i % BURST == BURST - 1 and i != n - 1:
            await asyncio.sleep(0)
    print("done", flush=True)
    time.sleep(3600)  # noqa: ASYNC251 - killed within this event-loop turn: a call_soon flush never runs


def crash(variant: str, folder: Path, n: int) -> dict[str, float]:
    target = folder / "crash"
    n += 10  # so that the last batch of sqlite-batched is partial (n = 200,000 is a multiple of 64)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", variant, "--n", str(n), "--folder", str(target)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert line.strip() == "done", line
    t0 = time.perf_counter()
    box = open_box(variant, target)
    first = box.take(TAKE)
    recovery = time.perf_counter() - t0
    found = len(first)
    while True:
        more = box.take(10_000)
        if not more:
            break
        found += len(more)
    box.close()
    return {"found": found, "put": n, "recovery_ms": recovery * 1000}


def run_one(variant: str, n: int, rate: int, seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("OUTBOX_BENCH_DIR")) as tmp:
        folder = Path(tmp)
        out: dict[str, object] = {"variant": variant}
        out.update(throughput(variant, folder, n))
        out.update(asyncio.run(sustained(variant, folder, rate, seconds)))
        if variant != "memory":
            out.update(crash(variant, folder, n))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, action="append")
    parser.add_argument("--n", type=int, default=200_000, help="samples for throughput, size and kill -9")
    parser.add_argument("--rate", type=int, default=20_000, help="sustained puts/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to sustain the rate")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child, Path(args.folder), args.n))
        return
    if args.one:
        print(json.dumps(run_one(args.variant[0], args.n, args.rate, args.seconds)))
        return
    variants = args.variant or [v for v in VARIANTS if v != "log-fsync"]
    if not args.json:
        print(
            f"{'variant':<15}{'puts/s':>8}{'take+ack/s':>11}{'rate':>7}{'p50 put':>9}{'p99 put':>9}{'max put':>9}"
            f"{'CPU':>5}{'MB/1M':>6}{'kill -9 found':>18}{'recovery':>9}"
        )
    for variant in variants:
        cmd = [sys.executable, __file__, "--one", "--variant", variant, "--n", str(args.n)]
        cmd += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{variant:<16} failed: {proc.stderr.strip().splitlines()[-3:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if args.json:
            print(json.dumps(r))
            continue
        crashed = f"{r['found']:>10}/{r['put']:<7}{r['recovery_ms']:>7.0f}ms" if "found" in r else ""
        print(
            f"{variant:<15}{r['puts_per_s']:>8.0f}{r['take_ack_per_s']:>11.0f}{r['achieved_rate']:>7.0f}"
            f"{r['p50_put_us']:>7.1f}µs{r['p99_put_us']:>7.1f}µs{r['max_put_us']:>7.0f}µs{r['cpu_percent']:>4.0f}%"
            f"{r['mb_per_1m']:>6.0f}{crashed}"
        )


if __name__ == "__main__":
    main()
