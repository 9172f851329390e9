"""The child processes of the end-to-end benchmark (`run.py --role NAME`), each speaking JSON lines.

- writer: N pseudo-terminal dials (tests/ptydial.py) played on an absolute schedule, recording write times;
- sub: the subscriber recording the receipt time of every sample: Mosquitto's own C client
  (mosquitto_sub) by default, paho-mqtt with `--subscriber paho`;
- floor: the bare publisher, N x R samples straight to the broker with aiomqtt;
- lsl-outlet, lsl-inlet: Lab Streaming Layer's outlets and inlets for the same N x R.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.e2e.common import (
    FLOOR_GIVE_UP_S,
    FLOOR_INFLIGHT,
    FLOOR_STATION,
    dial_id,
    emit,
    sleep_until_due,
    wall_mono_offset_ns,
)


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
        late_max = max(late_max, sleep_until_due(start_ns + int(k * period_ns)))
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


def dump(received: list[tuple[int, bytes]], out: str) -> int:
    """Write each sample of the (receipt time, sample message) pairs as the analysis reads them
    (`dial`, `raw`, `t_ns`, `recv_ns` columns; an array's samples share its time); the sample count."""
    import orjson

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
    with open(out, "wb") as f:
        f.write(orjson.dumps({"dial": dials, "raw": raws, "t_ns": t_ns, "recv_ns": recv}))
    return len(raws)


def role_sub(args: argparse.Namespace) -> None:
    """The subscriber `--subscriber` names (mosquitto_sub unless paho)."""
    (role_sub_paho if args.subscriber == "paho" else role_sub_mosquitto)(args)


def role_sub_mosquitto(args: argparse.Namespace) -> None:
    """mosquitto_sub, QoS 1: receipt time of every sample message; dials whose meta says connected.

    Mosquitto's C client takes a message for a few microseconds of CPU, where paho-mqtt in Python
    took about 120 (2026-12-02, AMD EPYC VM): at 64 x 100 Hz paho's process ran at 80-98% of a core
    and fell behind, so the latency measured was the subscriber's queue, not the station's. It
    stamps each message when libmosquitto hands it over (`%U`, the wall clock to the nanosecond);
    the stamp is turned monotonic with this process's wall-minus-monotonic offset, the mean of one
    taken at start and one at the dump. Readiness: a retained message on a topic of its own,
    subscribed last, comes back once the subscriptions are in place.
    """
    import orjson

    exe = shutil.which("mosquitto_sub")
    if exe is None:
        raise SystemExit(
            "mosquitto_sub not found: install mosquitto-clients (scripts/bench does) or use --subscriber paho"
        )
    probe = f"bench-probe/{uuid.uuid4().hex}"
    publish = shutil.which("mosquitto_pub") or "mosquitto_pub"
    host = ["-h", "127.0.0.1", "-p", str(args.port)]
    subprocess.run([publish, *host, "-q", "1", "-r", "-t", probe, "-m", "ready"], check=True, timeout=30)
    offset_start = wall_mono_offset_ns()
    samples_topic = f"daq/{args.station}/dials/+/samples"
    meta_topic = f"daq/{args.station}/dials/+/meta"
    topics = ["-t", samples_topic, "-t", meta_topic, "-t", probe]  # the probe last: it says all are subscribed
    proc = subprocess.Popen(
        [exe, *host, "-q", "1", "-i", f"bench-sub-{uuid.uuid4().hex[:8]}", "-F", "%U %t %p", *topics],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    parts: list[bytes] = []  # whole lines, as read
    state = {"ready": False, "samples": 0}
    connected: set[str] = set()
    lock = threading.Lock()

    def take(lines: bytes) -> None:
        parts.append(lines)
        with lock:
            state["samples"] += lines.count(b'"raw":')
            if b"/meta " in lines or (not state["ready"] and probe.encode() in lines):
                for line in lines.split(b"\n"):
                    _, topic, payload = line.split(b" ", 2)
                    if topic.endswith(b"/meta"):
                        body = orjson.loads(payload)
                        (connected.add if body.get("connected") else connected.discard)(body["dial"])
                    elif topic == probe.encode():
                        state["ready"] = True

    def pump() -> None:
        rest = b""
        while data := os.read(out_fd, 1 << 20):
            data = rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1 :]
            take(data[:cut])

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["cmd"] == "status":
                with lock:
                    emit({"ready": state["ready"], "connected": len(connected), "samples": state["samples"]})
            elif cmd["cmd"] == "dump":
                proc.terminate()
                proc.wait(10)
                reader.join(10)
                offset = (offset_start + wall_mono_offset_ns()) // 2
                received: list[tuple[int, bytes]] = []
                for chunk in parts:
                    for entry in chunk.split(b"\n"):
                        stamp, topic, payload = entry.split(b" ", 2)
                        if topic.endswith(b"/samples"):
                            seconds, _, nanos = stamp.partition(b".")
                            when = int(seconds) * 1_000_000_000 + int(nanos.ljust(9, b"0")) - offset
                            received.append((when, payload))
                emit({"messages": len(received), "samples": dump(received, cmd["out"])})
                break
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def role_sub_paho(args: argparse.Namespace) -> None:
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
                emit({"messages": len(received), "samples": dump(received, cmd["out"])})
                break
    finally:
        client.loop_stop()


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
    client.pending_calls_threshold = 10**9  # pipelining on purpose, as the daemon (daq/mqtt/client.py)

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


def sample_payload(dial: str, raw: int, t_ns: int) -> dict[str, object]:
    """A sample object shaped (and sized) like the daemon's (daq/station/dial_pipeline.py), for the floor."""
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
                late_max = max(late_max, sleep_until_due(start_ns + int(k * period_ns)))
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


ROLES: dict[str, Callable[[argparse.Namespace], None]] = {
    "writer": role_writer,
    "sub": role_sub,
    "floor": role_floor,
    "lsl-outlet": role_lsl_outlet,
    "lsl-inlet": role_lsl_inlet,
}
