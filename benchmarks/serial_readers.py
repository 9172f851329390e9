"""Measure ways of reading many serial ports from an asyncio program, over real pseudo-terminals.

    .venv/bin/python benchmarks/serial_readers.py              # all, 16 ports x 1000 lines/s, 5 s
    .venv/bin/python benchmarks/serial_readers.py --busy-ms 20 # the loop stalls 20 ms every 100 ms
    .venv/bin/python benchmarks/serial_readers.py --approach thread --ports 4 --rate 100 --seconds 2

Each approach runs in its own process, so its CPU time is its own; the writer ("the dials")
is one more process that writes `<seq> <monotonic_ns>\\n` to every pty master on an absolute
schedule, the time taken just before each write. CLOCK_MONOTONIC is system-wide on Linux,
so the reader subtracts that time from the stamp of the chunk that completed the line.

Approaches:
  thread           one thread per port: poll(fd, wake pipe) then os.read(fd, 4096), stamp,
                   loop.call_soon_threadsafe(queue.put_nowait, chunk)
  thread-batched   as `thread`, but the thread appends to a deque and wakes the loop only when no
                   wake-up is pending yet (one call_soon_threadsafe per burst, not per chunk)
  thread-pyserial  one thread per port: serial.read(max(1, in_waiting)) with a timeout, stamp,
                   loop.call_soon_threadsafe(queue.put_nowait, chunk)
  fast             pyserial-asyncio-fast: loop.add_reader on the fd, stamp in data_received
  transport        daq.transports.serial.SerialTransport, the chosen implementation

Printed per approach: lines/s received (and lines lost), latency write -> chunk stamp p50/p99/max
(what a reading's timestamp sees), latency write -> the consumer has it p50/p99 (what the
pipeline sees), chunks per line, and CPU% of the reading process (user+system over wall time;
100% = one core). `--busy-ms` adds a task that blocks the event loop that long after every 100 ms idle
(decoding, publishing, a slow callback) to show whose stamps depend on the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import subprocess
import sys
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import serial

APPROACHES = ("thread", "thread-batched", "thread-pyserial", "fast", "transport")
DRAIN_S = 0.5


# --------------------------------------------------------------------------------------- the dials


def run_writer(fds: list[int], rate: float, seconds: float, start_ns: int) -> None:
    """Write one line to every fd per tick, ticks on an absolute schedule; report on stdout."""
    period_ns = int(1e9 / rate)
    ticks = int(seconds * rate)
    late_max = 0
    written = 0
    while time.monotonic_ns() < start_ns:
        time.sleep(0.001)
    for seq in range(ticks):
        due = start_ns + seq * period_ns
        now = time.monotonic_ns()
        if due > now:
            time.sleep((due - now) / 1e9)
        else:
            late_max = max(late_max, now - due)
        for fd in fds:
            os.write(fd, b"%d %d\n" % (seq, time.monotonic_ns()))
            written += 1
    print(json.dumps({"written": written, "late_max_ms": late_max / 1e6}), flush=True)


# --------------------------------------------------------------------------------------- readers


@dataclass
class Port:
    """One pty pair; the reader side opens `path`, the writer process gets `master`."""

    master: int
    slave: int
    path: str
    latencies_ns: list[int] = field(default_factory=list)  # write -> chunk stamp
    delivered_ns: list[int] = field(default_factory=list)  # write -> consumer has it
    lines: int = 0
    chunks: int = 0
    partial: bytes = b""

    def take(self, data: bytes, stamp_ns: int) -> None:
        now = time.monotonic_ns()
        self.chunks += 1
        buf = self.partial + data
        *complete, self.partial = buf.split(b"\n")
        for line in complete:
            written_ns = int(line.split(b" ")[1])
            self.latencies_ns.append(stamp_ns - written_ns)
            self.delivered_ns.append(now - written_ns)
            self.lines += 1


def open_pty() -> Port:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return Port(master, slave, os.ttyname(slave))


def open_serial(path: str, timeout: float | None) -> serial.Serial:
    return serial.Serial(path, 115200, timeout=timeout, exclusive=True)


Item = tuple[bytes, int] | None  # None: the reader stopped


class ThreadReader:
    """Approaches `thread` and `thread-pyserial`."""

    def __init__(
        self, port: Port, loop: asyncio.AbstractEventLoop, use_pyserial_read: bool, batched: bool = False
    ) -> None:
        self.port = port
        self.loop = loop
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.batched = batched
        self.pending: deque[Item] = deque()
        self.wake_pending = False
        self.ready = asyncio.Event()
        self.ser = open_serial(port.path, timeout=0.5)
        self.stop = threading.Event()
        self.wake_r, self.wake_w = os.pipe()
        target = self._run_pyserial if use_pyserial_read else self._run_os_read
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def _put(self, item: Item) -> None:
        if not self.batched:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
            return
        self.pending.append(item)  # before the check: a wake-up already pending will see it
        if not self.wake_pending:
            self.wake_pending = True
            self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self.wake_pending = False
        self.ready.set()

    def _run_os_read(self) -> None:
        fd = self.ser.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while not self.stop.is_set():
            if not poller.poll(500):
                continue
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            stamp = time.monotonic_ns()
            if not data:
                break
            self._put((data, stamp))
        self._put(None)

    def _run_pyserial(self) -> None:
        while not self.stop.is_set():
            data = self.ser.read(max(1, self.ser.in_waiting))
            stamp = time.monotonic_ns()
            if data:
                self._put((data, stamp))
        self._put(None)

    async def consume(self) -> None:
        if not self.batched:
            while (item := await self.queue.get()) is not None:
                self.port.take(*item)
            return
        while True:
            await self.ready.wait()
            self.ready.clear()
            while self.pending:
                item = self.pending.popleft()
                if item is None:
                    return
                self.port.take(*item)

    def close(self) -> None:
        self.stop.set()
        os.write(self.wake_w, b"x")
        self.ser.cancel_read()
        self.thread.join()
        self.ser.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


class FastReader:
    """Approach `fast`: pyserial-asyncio-fast, stamped in data_received."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.transport: Any = None
        self.done = asyncio.Event()

    async def start(self) -> None:
        import serial_asyncio_fast  # type: ignore[import-not-found,unused-ignore]  # optional

        reader = self

        class Proto(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                reader.port.take(data, time.monotonic_ns())

            def connection_lost(self, exc: Exception | None) -> None:
                reader.done.set()

        loop = asyncio.get_running_loop()
        self.transport, _ = await serial_asyncio_fast.create_serial_connection(
            loop, Proto, self.port.path, baudrate=115200, exclusive=True
        )

    async def consume(self) -> None:
        await self.done.wait()

    def close(self) -> None:
        self.transport.close()


class TransportReader:
    """Approach `transport`: the real SerialTransport."""

    def __init__(self, port: Port) -> None:
        from daq.profiles.serial_settings import SerialSettings
        from daq.transports.attachment import Attachment
        from daq.transports.serial import SerialTransport

        self.port = port
        self.transport = SerialTransport(SerialSettings(baud=115200), Attachment(port=port.path))

    async def start(self) -> None:
        await self.transport.open()

    async def consume(self) -> None:
        from daq.exceptions import DeviceGone

        try:
            while True:
                for chunk in await self.transport.read():
                    self.port.take(chunk.data, chunk.mono_ns)
        except DeviceGone:
            return


async def busy_loop(busy_ms: float) -> None:
    """Block the event loop for busy_ms after every 100 ms idle, like a slow decode or publish would."""
    while True:
        await asyncio.sleep(0.1)
        end = time.perf_counter() + busy_ms / 1000
        while time.perf_counter() < end:
            pass


def percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


async def run_reader(approach: str, n_ports: int, rate: float, seconds: float, busy_ms: float) -> dict[str, Any]:
    ports = [open_pty() for _ in range(n_ports)]
    loop = asyncio.get_running_loop()
    closers: list[Callable[[], Any]] = []
    consumers: list[asyncio.Task[None]] = []
    for port in ports:
        if approach.startswith("thread"):
            tr = ThreadReader(
                port,
                loop,
                use_pyserial_read=approach == "thread-pyserial",
                batched=approach == "thread-batched",
            )
            closers.append(tr.close)
            consumers.append(asyncio.create_task(tr.consume()))
        elif approach == "fast":
            fr = FastReader(port)
            await fr.start()
            closers.append(fr.close)
            consumers.append(asyncio.create_task(fr.consume()))
        else:
            ts = TransportReader(port)
            await ts.start()
            closers.append(ts.transport.close)
            consumers.append(asyncio.create_task(ts.consume()))
    busy = asyncio.create_task(busy_loop(busy_ms)) if busy_ms > 0 else None

    start_ns = time.monotonic_ns() + 300_000_000
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--writer",
        ",".join(str(p.master) for p in ports),
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--start-ns",
        str(start_ns),
        pass_fds=[p.master for p in ports],
        stdout=subprocess.PIPE,
    )
    await asyncio.sleep((start_ns - time.monotonic_ns()) / 1e9)
    cpu0, wall0 = os.times(), time.monotonic()
    await asyncio.sleep(seconds + DRAIN_S)
    cpu1, wall1 = os.times(), time.monotonic()
    out, _ = await writer.communicate()
    report = json.loads(out)

    if busy:
        busy.cancel()
    for close in closers:
        result = close()
        if asyncio.iscoroutine(result):
            await result
    for port in ports:
        os.close(port.master)
        os.close(port.slave)
    for task in consumers:
        task.cancel()
    await asyncio.gather(*consumers, *([busy] if busy else []), return_exceptions=True)

    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    lat = [x for p in ports for x in p.latencies_ns]
    dlv = [x for p in ports for x in p.delivered_ns]
    lines = sum(p.lines for p in ports)
    return {
        "approach": approach,
        "lines_per_s": lines / seconds,
        "lost": report["written"] - lines,
        "writer_late_max_ms": report["late_max_ms"],
        "stamp_p50_ms": percentile(lat, 0.50),
        "stamp_p99_ms": percentile(lat, 0.99),
        "stamp_max_ms": percentile(lat, 1.0),
        "deliver_p50_ms": percentile(dlv, 0.50),
        "deliver_p99_ms": percentile(dlv, 0.99),
        "chunks_per_line": sum(p.chunks for p in ports) / max(1, lines),
        "cpu_percent": 100 * cpu / (wall1 - wall0),
    }


# --------------------------------------------------------------------------------------- driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--approach", choices=(*APPROACHES, "all"), default="all")
    parser.add_argument("--ports", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1000.0, help="lines per second per port")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--busy-ms", type=float, default=0.0, help="block the loop this long every 100 ms")
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="sys.setswitchinterval in the reading process (default: Python's 5 ms)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per approach")
    parser.add_argument("--writer", help=argparse.SUPPRESS)
    parser.add_argument("--start-ns", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.writer:
        run_writer([int(fd) for fd in args.writer.split(",")], args.rate, args.seconds, args.start_ns)
        return
    if args.one:
        if args.switch_interval_ms is not None:
            sys.setswitchinterval(args.switch_interval_ms / 1000)
        result = asyncio.run(run_reader(args.approach, args.ports, args.rate, args.seconds, args.busy_ms))
        print(json.dumps(result), flush=True)
        return

    approaches = APPROACHES if args.approach == "all" else (args.approach,)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    switch = f"{args.switch_interval_ms:g} ms" if args.switch_interval_ms is not None else "default"
    print(
        f"{args.ports} ports x {args.rate:g} lines/s for {args.seconds:g} s, "
        f"loop busy {args.busy_ms:g} ms after every 100 ms idle, GIL switch interval {switch}"
    )
    header = (
        f"{'approach':<16}{'lines/s':>9}{'lost':>6}{'stamp p50':>11}{'p99':>8}{'max':>8}"
        f"{'deliver p50':>13}{'p99':>8}{'chunks/line':>13}{'CPU%':>7}"
    )
    if not args.json:
        print(header)
    for approach in approaches:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            "--approach",
            approach,
            "--ports",
            str(args.ports),
            "--rate",
            str(args.rate),
            "--seconds",
            str(args.seconds),
            "--busy-ms",
            str(args.busy_ms),
        ]
        if args.switch_interval_ms is not None:
            cmd += ["--switch-interval-ms", str(args.switch_interval_ms)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{approach:<16} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if args.json:
            print(json.dumps(r))
            continue
        print(
            f"{approach:<16}{r['lines_per_s']:>9.0f}{r['lost']:>6}{r['stamp_p50_ms']:>9.3f}ms"
            f"{r['stamp_p99_ms']:>8.3f}{r['stamp_max_ms']:>8.2f}{r['deliver_p50_ms']:>11.3f}ms"
            f"{r['deliver_p99_ms']:>8.3f}{r['chunks_per_line']:>13.2f}{r['cpu_percent']:>7.1f}"
        )


if __name__ == "__main__":
    main()
