"""`daq lsl` end to end: Mosquitto, `daq run --simulate`, `daq lsl`, and an LSL inlet in another process.

LSL is configured for the test with an lsl_api.cfg (LSLAPICFG): resolve on this machine only, the
loopback address as a known peer, and a session id of its own, so streams of other runs on the
same machine or network are invisible to this test and its streams to them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

import aiomqtt
import pytest

from daq.cli import main
from daq.config import BrokerConfig
from daq.mqtt.client import Connection, ConnectOptions, DaqClient
from daq.subscribers.lsl import LslBridge
from tests.support.procs import Mosquitto, Sub, clean_env, start_daq, stop_process, wait_for

LSL_CFG = """\
[ports]
IPv6 = disable

[multicast]
ResolveScope = machine

[lab]
KnownPeers = {{127.0.0.1}}
SessionID = {session}

[log]
level = -2
"""

INLET = r"""
import json, os, sys, time
import pylsl

ids, stop_file, out_file = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
inlets = {}
deadline = time.monotonic() + 50
for sid in ids:
    found = pylsl.resolve_byprop("source_id", sid, 1, max(0.1, deadline - time.monotonic()))
    if not found:
        print(f"stream {sid} not found", flush=True)
        sys.exit(3)
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=0)
    inlet.open_stream(timeout=10)
    inlets[sid] = inlet
# This process's own mapping of wall time onto LSL's clock, to check the bridge's timestamps against.
best = None
for _ in range(5):
    l0 = pylsl.local_clock(); wall = time.time_ns(); l1 = pylsl.local_clock()
    if best is None or l1 - l0 < best[0]:
        best = (l1 - l0, (l0 + l1) / 2, wall)
print("inlet ready", flush=True)
samples = {sid: [] for sid in ids}

def drain():
    got = 0
    for sid, inlet in inlets.items():
        while True:
            chunk, stamps = inlet.pull_chunk(timeout=0.0)
            if not stamps:
                break
            for x, t in zip(chunk, stamps):
                samples[sid].append([x[0], t])
                got += 1
    return got

while not os.path.exists(stop_file):
    if not drain():
        time.sleep(0.02)
time.sleep(0.3)
drain()
infos = {sid: inlet.info(timeout=5).as_xml() for sid, inlet in inlets.items()}
with open(out_file, "w") as f:
    json.dump({"lsl_ref": best[1], "wall_ref_ns": best[2], "samples": samples, "infos": infos}, f)
"""


def mqtt_samples(sub: Sub) -> dict[str, list[dict[str, Any]]]:
    """Samples per dial from mosquitto_sub, duplicates dropped, in seq order."""
    seen: dict[tuple[str, str, int], dict[str, Any]] = {}
    for message in sub.messages():
        payload = message["payload"]
        for s in payload if isinstance(payload, list) else [payload]:
            seen.setdefault((s["dial"], s["boot"], s["seq"]), s)
    out: dict[str, list[dict[str, Any]]] = {}
    for (dial, _, _), s in sorted(seen.items()):
        out.setdefault(dial, []).append(s)
    return out


def test_lsl_bridge_republishes_every_sample_on_lsl_time(mosquitto: Mosquitto, tmp_path: Path) -> None:
    pytest.importorskip("pylsl", reason="needs the 'lsl' extra (pylsl with liblsl)")
    station = f"lsl-{uuid.uuid4().hex[:8]}"
    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text(LSL_CFG.format(session=f"dialdaq-test-{uuid.uuid4().hex}"))
    env = {"LSLAPICFG": str(cfg)}
    sub = Sub(mosquitto.port, [f"daq/{station}/dials/+/samples"], tmp_path / "sub.jsonl")
    bridge = start_daq(
        ["lsl", "--broker", mosquitto.url, "--station", station, "--wait-inlet", "60"], tmp_path, "lsl", **env
    )
    script = tmp_path / "inlet.py"
    script.write_text(INLET)
    ids = [f"dialdaq-{station}-sim-01", f"dialdaq-{station}-sim-02"]
    stop_file, out_file = tmp_path / "stop", tmp_path / "inlet.json"
    inlet_log = (tmp_path / "inlet.log").open("wb")
    inlet = subprocess.Popen(
        [sys.executable, str(script), ",".join(ids), str(stop_file), str(out_file)],
        stdout=inlet_log,
        stderr=subprocess.STDOUT,
        env=clean_env(**env),
        start_new_session=True,
    )
    inlet_log.close()
    daemon = None
    try:
        wait_for(lambda: "lsl: bridging" in (tmp_path / "lsl.log").read_text(), timeout=15, what="bridge start")
        time.sleep(0.3)
        daemon = start_daq(
            [
                "run",
                "--broker",
                mosquitto.url,
                "--station",
                station,
                "--simulate",
                "2",
                "--rate",
                "50",
                "--duration",
                "3",
            ],
            tmp_path,
        )
        wait_for(lambda: "inlet ready" in (tmp_path / "inlet.log").read_text(), timeout=60, what="inlet")
        assert daemon.wait(30) == 0, (tmp_path / "daq.log").read_text()
        # Everything the daemon published has reached mosquitto_sub; give the bridge and LSL a moment.
        counts: list[int] = []

        def settled() -> bool:
            counts.append(sum(len(v) for v in mqtt_samples(sub).values()))
            return len(counts) > 4 and counts[-1] == counts[-5] > 0

        wait_for(settled, timeout=10, interval=0.1, what="all samples on MQTT")
        time.sleep(0.5)
        stop_file.touch()
        assert inlet.wait(20) == 0, (tmp_path / "inlet.log").read_text()
    finally:
        if daemon is not None:
            stop_process(daemon)
        stop_process(inlet)
        sub.stop()
        bridge_code = stop_process(bridge)
    log = (tmp_path / "lsl.log").read_text()
    assert bridge_code == 0, log

    mqtt = mqtt_samples(sub)
    got = json.loads(out_file.read_text())
    lsl_ref, wall_ref_ns = got["lsl_ref"], got["wall_ref_ns"]
    assert set(mqtt) == {"sim-01", "sim-02"}
    for dial in ("sim-01", "sim-02"):
        sid = f"dialdaq-{station}-{dial}"
        sent, received = mqtt[dial], got["samples"][sid]
        assert len(sent) >= 100  # 3 s at 50 Hz
        assert len(received) == len(sent), (dial, len(received), len(sent), log)
        assert [v for v, _ in received] == [s["value"] for s in sent]
        worst = max(
            abs(t - (lsl_ref + (s["t_ns"] - wall_ref_ns) / 1e9)) for (_, t), s in zip(received, sent, strict=True)
        )
        assert worst < 1e-3, f"{dial}: LSL timestamps differ from t_ns on LSL's clock by up to {worst * 1e3:.3f} ms"

        info = ET.fromstring(got["infos"][sid])
        assert info.findtext("source_id") == sid and info.findtext("type") == "Rating"
        assert info.findtext("channel_count") == "1" and info.findtext("channel_format") == "double64"
        assert float(info.findtext("nominal_srate") or 0) == 50.0
        desc = info.find("desc")
        assert desc is not None
        assert desc.findtext("station") == station and desc.findtext("dial") == dial
        assert desc.findtext("boot") == sent[0]["boot"] and desc.findtext("profile") == "simulated"
        assert desc.findtext("channels/channel/label") == "value"
        assert float(desc.findtext("scale/max") or 0) == 100.0
    total = sum(len(v) for v in mqtt.values())
    assert f"lsl: {total} samples in 2 streams; duplicates dropped: 0" in log


# -- the bridge's bookkeeping, against a stand-in for pylsl -----------------------------------


class FakeElement:
    def __init__(self) -> None:
        self.children: list[tuple[str, Any]] = []

    def append_child(self, name: str) -> FakeElement:
        child = FakeElement()
        self.children.append((name, child))
        return child

    def append_child_value(self, name: str, value: str) -> FakeElement:
        self.children.append((name, value))
        return self

    def get(self, name: str) -> Any:
        return next(v for n, v in self.children if n == name)


class FakeInfo:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.element = FakeElement()

    def desc(self) -> FakeElement:
        return self.element


class FakeOutlet:
    consumers = False

    def __init__(self, info: FakeInfo) -> None:
        self.info = info
        self.pushed: list[tuple[list[float], float]] = []

    def push_sample(self, x: list[float], timestamp: float) -> None:
        self.pushed.append((x, timestamp))

    def have_consumers(self) -> bool:
        return self.consumers


def fake_pylsl() -> ModuleType:
    module = ModuleType("pylsl")
    module.local_clock = lambda: time.monotonic()  # type: ignore[attr-defined]
    module.IRREGULAR_RATE = 0.0  # type: ignore[attr-defined]
    module.cf_double64 = 2  # type: ignore[attr-defined]
    module.StreamInfo = FakeInfo  # type: ignore[attr-defined]
    module.StreamOutlet = FakeOutlet  # type: ignore[attr-defined]
    return module


def meta(boot: str = "b1", rate: float | None = 50.0) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "station": "st",
            "dial": "d1",
            "boot": boot,
            "connected": True,
            "profile": "simulated",
            "transport": "simulated",
            "scale": {"min": 0.0, "max": 10.0, "labels": {"0": "hindering"}},
            "rate_hz": rate,
            "t_ns": 1,
        }
    ).encode()


def sample(seq: int, value: float, boot: str = "b1") -> dict[str, Any]:
    return {
        "v": 1,
        "station": "st",
        "dial": "d1",
        "session": None,
        "boot": boot,
        "seq": seq,
        "t_ns": 1_795_451_400_000_000_000 + seq * 20_000_000,
        "media_s": None,
        "timecode": None,
        "frame": None,
        "value": value,
        "raw": value,
    }


def test_bridge_waits_for_meta_drops_duplicates_and_reopens_on_a_new_boot() -> None:
    lines: list[str] = []
    bridge = LslBridge(BrokerConfig(), pylsl=fake_pylsl(), announce=lines.append)
    samples, meta_topic = "daq/st/dials/d1/samples", "daq/st/dials/d1/meta"
    bridge.handle(samples, json.dumps(sample(0, 1.0)).encode())  # before its meta: held
    assert bridge.streams == {} and len(bridge.pending[("st", "d1")]) == 1
    bridge.handle(meta_topic, meta())
    outlet = bridge.streams[("st", "d1")].outlet
    info = outlet.info
    assert info.kwargs["source_id"] == "dialdaq-st-d1" and info.kwargs["nominal_srate"] == 50.0
    desc = info.element
    assert desc.get("boot") == "b1" and desc.get("scale").get("max") == "10.0"
    assert desc.get("scale").get("labels").get("label").get("text") == "hindering"
    bridge.handle(samples, json.dumps([sample(1, 2.0), sample(1, 2.0), sample(2, 3.0)]).encode())
    assert [x[0] for x, _ in outlet.pushed] == [1.0, 2.0, 3.0] and bridge.stats.duplicates == 1
    clock = bridge.clock
    assert [t for _, t in outlet.pushed] == [clock.lsl_time(sample(i, 0)["t_ns"]) for i in range(3)]
    assert abs(clock.lsl_time(10**18) - (10**18 / 1e9 + clock.offset)) < 1e-6
    bridge.handle(meta_topic, meta())  # the same meta again (retained, or connected toggled): same stream
    assert bridge.streams[("st", "d1")].outlet is outlet
    bridge.handle(meta_topic, meta(boot="b2", rate=None))  # the daemon restarted: a new stream, same source id
    bridge.handle(samples, json.dumps(sample(0, 4.0, boot="b2")).encode())
    reopened = bridge.streams[("st", "d1")].outlet
    assert reopened is not outlet and reopened.info.kwargs["nominal_srate"] == 0.0
    assert [x[0] for x, _ in reopened.pushed] == [4.0] and bridge.stats.streams_opened == 2
    assert len(lines) == 2 and "irregular rate" in lines[1]


def test_bridge_holds_a_new_stream_until_an_inlet_connects() -> None:
    bridge = LslBridge(BrokerConfig(), wait_inlet_s=30, pylsl=fake_pylsl(), announce=lambda _: None)
    bridge.handle("daq/st/dials/d1/meta", meta())
    bridge.handle("daq/st/dials/d1/samples", json.dumps([sample(0, 1.0), sample(1, 2.0)]).encode())
    stream = bridge.streams[("st", "d1")]
    assert stream.outlet.pushed == [] and len(stream.held) == 2
    stream.outlet.consumers = True
    bridge.tick()
    assert [x[0] for x, _ in stream.outlet.pushed] == [1.0, 2.0] and not stream.waiting
    # A dial whose meta never comes gets an irregular-rate stream after a while.
    bridge.handle("daq/st/dials/d9/samples", json.dumps({**sample(0, 5.0), "dial": "d9"}).encode())
    bridge.pending_since[("st", "d9")] -= 60
    bridge.tick()
    assert bridge.streams[("st", "d9")].outlet.info.kwargs["nominal_srate"] == 0.0


def test_lsl_without_pylsl_names_the_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pylsl", None)  # import pylsl now fails as if not installed
    assert main(["lsl", "--broker", "mqtt://127.0.0.1:1"]) == 2
    assert capsys.readouterr().err == (
        "daq: error: daq lsl needs the 'pylsl' library: install it with pip install 'dialdaq[lsl]'\n"
    )


def test_a_meta_behind_its_samples_is_waited_for_while_the_bridge_is_behind() -> None:
    """The race behind the flake of the end-to-end test, made deterministic: the samples are taken, the
    meta comes later. While the bridge has messages queued (it is behind: the meta may be among them)
    the wait does not run out, however long it takes; the stream opens at the meta's rate."""
    import daq.subscribers.lsl as lsl_module

    now = [1000.0]
    bridge = LslBridge(BrokerConfig(), pylsl=fake_pylsl(), announce=lambda _: None)
    bridge.now = lambda: now[0]
    queued = [50]
    bridge.backlog = lambda: queued[0]
    samples, meta_topic = "daq/st/dials/d1/samples", "daq/st/dials/d1/meta"
    bridge.handle(samples, json.dumps(sample(0, 1.0)).encode())
    for _ in range(40):  # 20 s behind: far beyond META_WAIT_S, yet no stream without its meta
        now[0] += 0.5
        bridge.tick()
    assert bridge.streams == {}
    queued[0] = 0
    now[0] += lsl_module.META_WAIT_S / 2
    bridge.tick()
    assert bridge.streams == {}  # caught up, and still within the wait
    bridge.handle(meta_topic, meta())
    stream = bridge.streams[("st", "d1")]
    assert stream.outlet.info.kwargs["nominal_srate"] == 50.0 and len(stream.outlet.pushed) == 1


def test_a_meta_after_an_irregular_stream_reopens_it_with_the_meta(caplog: pytest.LogCaptureFixture) -> None:
    import daq.subscribers.lsl as lsl_module

    now = [1000.0]
    lines: list[str] = []
    bridge = LslBridge(BrokerConfig(), pylsl=fake_pylsl(), announce=lines.append)
    bridge.now = lambda: now[0]
    bridge.handle("daq/st/dials/d1/samples", json.dumps(sample(0, 1.0)).encode())
    now[0] += lsl_module.META_WAIT_S + 0.1
    with caplog.at_level(logging.WARNING, logger="daq.subscribers.lsl"):
        bridge.tick()
        irregular = bridge.streams[("st", "d1")].outlet
        assert irregular.info.kwargs["nominal_srate"] == 0.0 and "irregular rate" in lines[-1]
        bridge.handle("daq/st/dials/d1/meta", meta())  # late: the stream is made again, at once, with it
    reopened = bridge.streams[("st", "d1")].outlet
    assert reopened is not irregular and reopened.info.kwargs["nominal_srate"] == 50.0
    assert "opening an irregular-rate stream" in caplog.text and "came after its irregular-rate stream" in caplog.text
    bridge.handle("daq/st/dials/d1/samples", json.dumps(sample(1, 2.0)).encode())
    assert [x[0] for x, _ in reopened.pushed] == [2.0] and bridge.without_meta == set()


def test_the_tick_never_drops_the_message_it_interrupts() -> None:
    """The cause of the flake (nominal_srate 0.0): the bridge's loop, before it moved onto `daq.mqtt.consume`,
    cancelled aiomqtt's `anext(client.messages)` at every 0.5 s tick. A message taken off aiomqtt's queue in
    the same loop turn as the timeout went with the cancelled task. The first message after an idle spell
    is the exposed one: in the end-to-end test the bridge ticks idle until the daemon starts, and the first
    message is a meta. Lost, its dial's samples waited META_WAIT_S and got an irregular stream.

    Here, for each interleaving of "the meta arrives" and "the tick cancels the wait": aiomqtt's own
    iterator loses the meta in some of them; `Connection.receive` (what `consume` waits on) never does."""

    def message(topic: str) -> aiomqtt.Message:
        return aiomqtt.Message(topic, b"{}", 1, False, 1, None)

    async def first_after_a_tick(shielded: bool, turns: int) -> str:
        client = DaqClient("127.0.0.1", 1)  # never connected: messages are put on its queue by hand
        iterator = aiter(client.messages)
        connection = Connection(client, BrokerConfig(), ConnectOptions())

        async def receive() -> Any:
            return await (connection.receive() if shielded else anext(iterator))

        getter = asyncio.ensure_future(receive())
        for _ in range(3):
            await asyncio.sleep(0)  # the getter waits on the queue
        client._queue.put_nowait(message("daq/st/dials/d1/meta"))
        for _ in range(turns):
            await asyncio.sleep(0)
        if not getter.done():
            getter.cancel()  # the tick's timeout
        done = (await asyncio.gather(getter, return_exceptions=True))[0]
        if not isinstance(done, BaseException):
            return str(done.topic)
        client._queue.put_nowait(message("daq/st/dials/d1/samples"))
        return str((await asyncio.wait_for(receive(), 1)).topic)

    raw = [asyncio.run(first_after_a_tick(False, turns)) for turns in range(4)]
    assert "daq/st/dials/d1/samples" in raw, "aiomqtt's iterator no longer drops it: the cause is gone upstream"
    for turns in range(4):
        assert asyncio.run(first_after_a_tick(True, turns)) == "daq/st/dials/d1/meta", turns
