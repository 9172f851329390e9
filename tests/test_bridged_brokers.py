"""Issue 9: many rooms, one study. Two edge brokers bridged into a central one, a station on each edge,
one recorder on the central broker: every sample of both stations arrives, also across a cut link.

The brokers run the shipped files config/brokers/edge-bridge.conf, central.conf and acl-many-stations,
with only ports, paths, names and passwords substituted (see `render`).
"""

from __future__ import annotations

import csv
import getpass
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.procs import (
    REPO,
    Mosquitto,
    Sub,
    clean_env,
    daq_cmd,
    need,
    render_conf,
    start_daq,
    stop_process,
    wait_for,
)

BROKERS = REPO / "config" / "brokers"
STATIONS = ("lab-a", "lab-b")
DIALS = 4
RATE = 200
PASSWORDS = {"lab-a": "pw-lab-a", "lab-b": "pw-lab-b", "recorder": "pw-recorder"}


class ConfiguredMosquitto(Mosquitto):
    """A Mosquitto that runs a given configuration text (rendered from a shipped file)."""

    def __init__(self, folder: Path, conf: str | None = None) -> None:
        super().__init__(folder)
        self.conf = conf or ""

    def write_conf(self) -> Path:
        path = self.folder / "mosquitto.conf"
        path.write_text(self.conf, encoding="utf-8")
        return path


def head() -> list[str]:
    # As root, Mosquitto would switch to the `mosquitto` user, who cannot read pytest's tmp folders.
    return ["# rendered by tests/test_bridged_brokers.py", f"user {getpass.getuser()}"]


def password_file(path: Path, users: Sequence[str]) -> Path:
    passwd = need("mosquitto_passwd")
    for i, user in enumerate(users):
        subprocess.run(
            [passwd, *(["-c"] if i == 0 else []), "-b", str(path), user, PASSWORDS[user]],
            check=True,
            capture_output=True,
        )
    return path


def central_broker(folder: Path) -> ConfiguredMosquitto:
    broker = ConfiguredMosquitto(folder)
    acl = shutil.copy(BROKERS / "acl-many-stations", folder / "acl")
    broker.conf = render_conf(
        BROKERS / "central.conf",
        {
            "listener": f"{broker.port} 127.0.0.1",
            "persistence_location": f"{folder}/",
            "password_file": str(password_file(folder / "passwd", ["lab-a", "lab-b", "recorder"])),
            "acl_file": str(acl),
        },
        head(),
    )
    return broker


def edge_broker(folder: Path, station: str, central: Mosquitto) -> ConfiguredMosquitto:
    broker = ConfiguredMosquitto(folder)
    acl = shutil.copy(REPO / "config" / "mosquitto" / "acl", folder / "acl")
    broker.conf = render_conf(
        BROKERS / "edge-bridge.conf",
        {
            "listener": f"{broker.port} 127.0.0.1",
            "persistence_location": f"{folder}/",
            "password_file": str(password_file(folder / "passwd", [station])),
            "acl_file": str(acl),
            "connection": f"edge-{station}",
            "remote_clientid": f"edge-{station}",
            "address": f"127.0.0.1:{central.port}",
            "remote_username": station,
            "remote_password": PASSWORDS[station],
        },
        head(),
    )
    return broker


def credentials(user: str) -> dict[str, str]:
    return {"DAQ_BROKER_USERNAME": user, "DAQ_BROKER_PASSWORD": PASSWORDS[user]}


def read_seqs(path: Path) -> list[int]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return [int(row["seq"]) for row in csv.DictReader(lines) if row.get("seq")]


def recorded(out: Path) -> dict[tuple[str, str], list[int]]:
    """(station, dial) -> the seqs in its file(s), in file order."""
    got: dict[tuple[str, str], list[int]] = {}
    for station in STATIONS:
        for path in sorted(out.glob(f"{station}/*/*.csv")):
            got.setdefault((station, path.stem), []).extend(read_seqs(path))
    return got


def final_counts(central: Mosquitto, tmp_path: Path) -> dict[tuple[str, str], int]:
    """What each station says it read: the health it publishes at stop, just before its `offline` status.

    Both are retained and come over the bridge in order, so once a station's `offline` is at the
    central broker, the health received last for it is the final one.
    """
    topics = [f"daq/{s}/{what}" for s in STATIONS for what in ("health", "status")]
    topics.append("$SYS/broker/connection/+/state")  # the bridges' link states (notifications)
    sub = Sub(central.port, topics, tmp_path / "final.jsonl", extra=["-u", "recorder", "-P", PASSWORDS["recorder"]])

    def stopped() -> set[str]:
        return {
            m["topic"].split("/")[1]
            for m in sub.messages()
            if m["topic"].endswith("/status") and m["payload"].get("state") == "offline"
        }

    try:
        wait_for(lambda: stopped() >= set(STATIONS), timeout=40, what="both stations offline at the central broker")
    finally:
        sub.stop()
    links = {m["topic"].split("/")[3]: m["payload"] for m in sub.messages() if m["topic"].startswith("$SYS/")}
    assert links == {f"edge-{s}": 1 for s in STATIONS}, links
    counts: dict[tuple[str, str], int] = {}
    for msg in sub.messages():
        if msg["topic"].endswith("/health"):
            for dial, d in msg["payload"]["dials"].items():
                counts[(msg["payload"]["station"], dial)] = d["samples"]
    return counts


def test_two_rooms_bridged_into_central_nothing_lost_across_a_cut_link(tmp_path: Path) -> None:
    central = central_broker(tmp_path / "central").start()
    edges = {s: edge_broker(tmp_path / f"edge-{s}", s, central).start() for s in STATIONS}
    out = tmp_path / "rec"
    record_log = tmp_path / "record.log"
    recorder = start_daq(
        [
            "-v",
            "record",
            "--broker",
            central.url,
            "--station",
            "+",
            "--out",
            str(out),
            "--client-id",
            "rec-central",
            "--persistent",
        ],
        tmp_path,
        "record",
        **credentials("recorder"),
    )
    stations: dict[str, subprocess.Popen[bytes]] = {}
    try:
        wait_for(lambda: "subscribed to" in record_log.read_text(), timeout=20, what="recorder subscribed")
        for s in STATIONS:
            stations[s] = start_daq(
                ["run", "--broker", edges[s].url, "--station", s, "--simulate", str(DIALS), "--rate", str(RATE)],
                tmp_path,
                f"station-{s}",
                **credentials(s),
            )
        # Both rooms' samples reach the central recorder, each station into its own folder.
        wait_for(lambda: len(recorded(out)) == len(STATIONS) * DIALS, timeout=30, what="files of both stations")
        text = record_log.read_text()
        assert all(f"new station: {s}" in text for s in STATIONS), text[-2000:]
        time.sleep(2.0)

        # Cut the links: the central broker goes away for 5 s (it saves its sessions on the way out).
        central.stop()
        time.sleep(5.0)
        central.start()
        wait_for(
            lambda: all(central.log_path.read_text().count(f" as edge-{s} ") >= 2 for s in STATIONS),
            timeout=40,
            what="both bridges connected again",
        )
        time.sleep(2.0)
        for s in STATIONS:
            assert stop_process(stations[s], timeout=30) == 0, (tmp_path / f"station-{s}.log").read_text()[-3000:]
        counts = final_counts(central, tmp_path)
        assert len(counts) == len(STATIONS) * DIALS and all(n >= RATE * 6 for n in counts.values()), counts
        wait_for(
            lambda: all(len(set(recorded(out).get(k, []))) >= n for k, n in counts.items()),
            timeout=60,
            what="every sample at the central recorder",
        )
    finally:
        for proc in stations.values():
            stop_process(proc)
        code = stop_process(recorder, timeout=30)
        for broker in (*edges.values(), central):
            broker.stop()
    log = record_log.read_text()
    assert code == 0, log[-3000:]
    assert "unreachable" in log or "lost the broker at" in log  # the recorder really lost the central broker
    got = recorded(out)
    late = 0
    for (station, dial), n in counts.items():
        seqs = got[(station, dial)]
        # Every sample once. Not always in seq order: see config/brokers/README.md (a bridge reconnect
        # attempt that fails half-way lets a fresh message overtake the backlog).
        assert sorted(seqs) == list(range(n)), f"{station}/{dial}: missing or duplicated samples"
        late += sum(1 for a, b in itertools.pairwise(seqs) if b < a)
    for station in STATIONS:
        (folder,) = {p.parent for p in out.glob(f"{station}/*/*.csv")}
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["station"] == station and summary["gaps"] == [], summary
    merge = subprocess.run(
        daq_cmd("record", "merge", str(out), "--check"), capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert merge.returncode == 0 and "samples missing (gaps): 0" in merge.stdout, merge.stdout + merge.stderr
    got = recorded(out)
    for (station, dial), n in counts.items():
        assert got[(station, dial)] == list(range(n)), f"{station}/{dial}: not in order after merge"
    print(
        f"samples per (station, dial) {counts}; places where a file went back in seq before merge: {late}; "
        f"recorder: {log.splitlines()[-1]}"
    )
