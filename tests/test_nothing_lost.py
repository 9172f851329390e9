"""Issue 6: nothing read is lost, whatever happens to the broker or the daemon."""

from __future__ import annotations

import json
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from daq.outbox.inventory import inventory
from tests.support.procs import Mosquitto, Sub, start_daq, stop_process, wait_for

STATION = "lab-o"


def samples_by_dial(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for msg in messages:
        if msg["topic"].endswith("/samples"):
            body = msg["payload"]
            for s in body if isinstance(body, list) else [body]:
                out[s["dial"]].append(s)
    return out


def final_counts(broker: Mosquitto, tmp_path: Path) -> dict[str, int]:
    """What the daemon says it read, from its last retained health message."""
    sub = Sub(broker.port, [f"daq/{STATION}/health"], tmp_path / "health.jsonl")
    try:
        wait_for(lambda: len(sub.messages()) >= 1, timeout=5, what="retained health")
    finally:
        sub.stop()
    health = sub.messages()[-1]["payload"]
    return {dial: d["samples"] for dial, d in health["dials"].items()}


def assert_complete_in_order(samples: dict[str, list[dict[str, Any]]], counts: dict[str, int]) -> int:
    """Every seq of every dial arrived; first arrivals in seq order; only duplicates beyond that."""
    duplicates = 0
    assert sorted(samples) == sorted(counts)
    for dial, got in samples.items():
        seen: set[tuple[str, int]] = set()
        first: list[int] = []
        for s in got:
            key = (s["boot"], s["seq"])
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            first.append(s["seq"])
        assert first == list(range(counts[dial])), f"{dial}: missing or out of order"
    return duplicates


def test_broker_restarts_twice_nothing_lost(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", persistence=True).start()
    sub = Sub(
        broker.port,
        [f"daq/{STATION}/dials/+/samples"],
        tmp_path / "sub.jsonl",
        extra=["-c", "-i", "persistent-recorder", "-x", "3600"],
    )
    daemon = None
    try:
        sub.wait_subscribed()
        daemon = start_daq(
            ["run", "--broker", broker.url, "--station", STATION, "--simulate", "4", "--rate", "500"], tmp_path
        )
        log_path = tmp_path / "daq.log"
        for outage in range(3):
            # Each outage starts once the daemon is connected (a loaded machine starts it slowly),
            # and the end waits for it to be back too, so both outages happen to a connected daemon.
            wait_for(
                lambda n=outage: log_path.read_text().count("station: connected to") > n,
                timeout=30,
                what=f"the daemon connected ({outage + 1})",
            )
            time.sleep(2.0)
            if outage == 2:
                break
            broker.stop()
            time.sleep(5.0)
            broker.start()
        assert stop_process(daemon, timeout=30) == 0, (tmp_path / "daq.log").read_text()[-3000:]
        counts = final_counts(broker, tmp_path)
        assert all(n >= 4000 for n in counts.values()), counts  # 11 s at 500 Hz, outages included
        wait_for(
            lambda: sum(len(v) for v in samples_by_dial(sub.messages()).values()) >= sum(counts.values()),
            timeout=30,
            what="every sample at the subscriber",
        )
        time.sleep(0.5)
    finally:
        sub.stop()
        if daemon is not None:
            stop_process(daemon)
        broker.stop()
    log = (tmp_path / "daq.log").read_text()
    assert log.count("lost the broker at") == 2, log[-3000:]  # both outages really happened to the daemon
    dups = assert_complete_in_order(samples_by_dial(sub.messages()), counts)
    print(f"samples per dial {counts}, duplicates {dups}")


def test_status_is_restored_after_reconnect(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker").start()  # no persistence: the broker forgets retained state
    daemon = start_daq(
        ["run", "--broker", broker.url, "--station", STATION, "--simulate", "1", "--rate", "10"], tmp_path
    )
    try:
        wait_for(lambda: "station: connected to" in (tmp_path / "daq.log").read_text(), timeout=15, what="connected")
        broker.stop()
        time.sleep(1.0)
        broker.start()
        sub = Sub(broker.port, [f"daq/{STATION}/status", f"daq/{STATION}/dials/+/meta"], tmp_path / "r.jsonl")
        try:
            # The restarted broker remembers nothing: whatever arrives was published again by the daemon.
            wait_for(
                lambda: len({m["topic"] for m in sub.messages()}) >= 2,
                timeout=15,
                what="status and meta published again",
            )
        finally:
            sub.stop()
        status = [m["payload"] for m in sub.messages() if m["topic"].endswith("/status")][-1]
        assert status["state"] == "online"
    finally:
        code = stop_process(daemon)
        broker.stop()
    assert code == 0
    assert json.loads(json.dumps(status))["boot"]


def test_sigkill_loses_nothing_that_was_read(tmp_path: Path) -> None:
    """Samples read while the broker is down live only in the outbox; kill -9 the daemon, start it
    again: every one of them reaches the subscriber, with its first boot and seq."""
    from tests.ptydial import PtyDial

    broker = Mosquitto(tmp_path / "broker", persistence=True).start()
    sub = Sub(
        broker.port,
        [f"daq/{STATION}/dials/+/samples", f"daq/{STATION}/dials/+/meta"],
        tmp_path / "sub.jsonl",
        extra=["-c", "-i", "kill-recorder", "-x", "3600"],
    )
    cfg = tmp_path / "station.toml"
    daemons = []
    with PtyDial(tmp_path) as dial:
        cfg.write_text(
            f'[station]\nid = "{STATION}"\n[broker]\nurl = "{broker.url}"\n'
            f'[outbox]\npath = "{tmp_path / "outbox"}"\n'
            f'[[dials]]\nid = "p1"\nprofile = "teensy-fast"\nport = "{dial.path}"\n'
        )
        try:
            sub.wait_subscribed()
            daemons.append(start_daq(["run", "--config", str(cfg)], tmp_path, "daq1"))
            wait_for(
                lambda: any(m["topic"].endswith("/meta") and m["payload"]["connected"] for m in sub.messages()),
                timeout=15,
                what="the daemon reading the dial",
            )
            dial.write(b"\n")  # the first line after open is dropped by design
            for v in range(300):  # 300 readings reach the broker
                dial.write(b"%d\n" % v)
                time.sleep(0.002)
            wait_for(lambda: len(samples_by_dial(sub.messages()).get("p1", [])) >= 300, what="the first 300")
            broker.stop()
            for v in range(300, 1300):  # 1000 readings while the broker is gone: only the outbox has them
                dial.write(b"%d\n" % v)
                time.sleep(0.002)
            assert dial.wait_consumed(5)
            # Killed once the last reading is in the outbox (what was read and not yet decoded when a
            # process is killed is lost by any design; the test is about what reached the outbox).
            wait_for(
                lambda: any(
                    g.dial == "p1" and g.seq_last == 1299 for g in inventory(tmp_path / "outbox").groups.values()
                ),
                what="the last reading in the outbox",
            )
            stop_process(daemons[0], signal.SIGKILL)
            broker.start()
            daemons.append(start_daq(["run", "--config", str(cfg)], tmp_path, "daq2"))
            wait_for(
                lambda: {s["raw"] for s in samples_by_dial(sub.messages()).get("p1", [])} >= set(range(1300)),
                timeout=30,
                what="every reading at the subscriber",
            )
        finally:
            for daemon in daemons:
                stop_process(daemon)
            sub.stop()
            broker.stop()
    got = samples_by_dial(sub.messages())["p1"]
    first_boot = got[0]["boot"]
    replayed = [s for s in got if s.get("replay")]
    assert replayed and all(s["boot"] == first_boot for s in replayed), "replayed samples keep their boot"
    counts = {"p1": max(s["seq"] for s in got if s["boot"] == first_boot) + 1}
    assert_complete_in_order({"p1": [s for s in got if s["boot"] == first_boot]}, counts)
    assert counts["p1"] == 1300
    assert all(s["raw"] == s["seq"] for s in got if s["boot"] == first_boot)  # each reading is the one written


def test_unwritable_outbox_degrades_and_publishing_goes_on(mosquitto: Mosquitto, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the outbox folder should be\n")  # root ignores chmod; this cannot be written
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f'[station]\nid = "{STATION}"\n[broker]\nurl = "{mosquitto.url}"\n[outbox]\npath = "{blocker / "outbox"}"\n'
    )
    sub = Sub(mosquitto.port, [f"daq/{STATION}/#"], tmp_path / "sub.jsonl")
    sub.wait_subscribed()
    daemon = start_daq(["run", "--config", str(cfg), "--simulate", "2", "--rate", "50"], tmp_path)
    try:
        wait_for(
            lambda: sum(len(v) for v in samples_by_dial(sub.messages()).values()) >= 100,
            timeout=15,
            what="samples despite the outbox",
        )
    finally:
        code = stop_process(daemon)
        sub.stop()
    assert code == 0
    events = [m["payload"] for m in sub.messages() if m["topic"].endswith("/events")]
    degraded = [e for e in events if e["kind"] == "outbox.degraded"]
    assert degraded and str(blocker) in degraded[0]["message"]
    log = (tmp_path / "daq.log").read_text()
    assert "outbox" in log and str(blocker) in log


def test_a_stale_will_cannot_mark_a_live_station_offline(mosquitto: Mosquitto, tmp_path: Path) -> None:
    import subprocess

    from tests.support.procs import need

    daemon = start_daq(
        ["run", "--broker", mosquitto.url, "--station", STATION, "--simulate", "1", "--rate", "10"], tmp_path
    )
    try:
        wait_for(lambda: "station: connected to" in (tmp_path / "daq.log").read_text(), timeout=15, what="connected")
        # What a broker publishes when an earlier connection's Last Will fires late: offline, retained.
        stale = {"v": 1, "station": STATION, "boot": "0123456789abcdef", "state": "offline", "reason": "lost"}
        subprocess.run(
            [
                need("mosquitto_pub"),
                "-p",
                str(mosquitto.port),
                "-q",
                "1",
                "-r",
                "-t",
                f"daq/{STATION}/status",
                "-m",
                json.dumps(stale),
            ],
            check=True,
        )
        # The daemon sees its status overwritten and publishes its own again: the retained one is read after that.
        wait_for(lambda: "status was overwritten" in (tmp_path / "daq.log").read_text(), timeout=15, what="noticed")
        sub = Sub(mosquitto.port, [f"daq/{STATION}/status"], tmp_path / "status.jsonl")
        try:
            # the stale one may still be the retained status for a moment: the station's own must follow it
            wait_for(
                lambda: any(m["payload"]["state"] == "online" for m in sub.messages()), timeout=5, what="online again"
            )
        finally:
            sub.stop()
        status = sub.messages()[-1]["payload"]
        assert status["state"] == "online" and status["boot"] != stale["boot"]
    finally:
        assert stop_process(daemon) == 0
    assert "status was overwritten" in (tmp_path / "daq.log").read_text()


def test_a_refused_message_is_kept_not_dropped(tmp_path: Path) -> None:
    """MQTT 5: the broker acknowledges a denied publish with a failure code. The sample stays in the outbox."""
    acl = tmp_path / "acl"
    acl.write_text(f"topic readwrite daq/#\ntopic deny daq/{STATION}/dials/+/samples\n")
    broker = Mosquitto(tmp_path / "broker", extra_conf=[f"acl_file {acl}"]).start()
    try:
        daemon = start_daq(
            ["run", "--broker", broker.url, "--station", STATION, "--simulate", "1", "--rate", "20", "--duration", "3"],
            tmp_path,
        )
        assert daemon.wait(30) == 0
    finally:
        broker.stop()
    log = (tmp_path / "daq.log").read_text()
    assert "the broker refused a message: Not authorized" in log
    assert "samples not delivered at exit (kept in the outbox for the next start)" in log
