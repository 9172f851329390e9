"""Issue 9: two recorders in one MQTT shared-subscription group; `daq record merge` makes one file per dial.

One station at 4 x 200 Hz, recorders rA and rB (`--share g1 --persistent`). Recorder A stops in the
middle of the stream and comes back; after `merge` every sample of every dial is there exactly once.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.procs import Mosquitto, Sub, clean_env, daq_cmd, start_daq, stop_process, wait_for

STATION = "lab-s"
DIALS = 4
RATE = 200


def read_rows(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def part_keys(out: Path) -> dict[str, list[tuple[str, int]]]:
    """(boot, seq) per dial over every recorder's part file, duplicates included."""
    keys: dict[str, list[tuple[str, int]]] = {}
    for path in out.glob(f"{STATION}/*/*@*.csv"):
        dial = path.name.split("@")[0]
        keys.setdefault(dial, []).extend((r["boot"], int(r["seq"])) for r in read_rows(path) if r.get("seq"))
    return keys


def final_counts(broker: Mosquitto, tmp_path: Path) -> dict[str, int]:
    """What the station says it read: its last retained health message (published at stop)."""
    sub = Sub(broker.port, [f"daq/{STATION}/health"], tmp_path / "health.jsonl")
    try:
        wait_for(lambda: len(sub.messages()) >= 1, timeout=10, what="retained health")
    finally:
        sub.stop()
    health = sub.messages()[-1]["payload"]
    return {dial: d["samples"] for dial, d in health["dials"].items()}


def start_recorder(broker: Mosquitto, out: Path, tmp_path: Path, rid: str) -> subprocess.Popen[bytes]:
    log = tmp_path / f"record-{rid}.log"
    before = log.read_text() if log.exists() else ""
    proc = start_daq(
        [
            "-v",
            "record",
            "--broker",
            broker.url,
            "--station",
            STATION,
            "--out",
            str(out),
            "--share",
            "g1",
            "--client-id",
            rid,
            "--persistent",
        ],
        tmp_path,
        f"record-{rid}",
    )
    wait_for(
        lambda: log.read_text().count("subscribed to") > before.count("subscribed to"),
        timeout=20,
        what=f"recorder {rid} subscribed",
    )
    return proc


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_shared_group_every_sample_once_after_merge(tmp_path: Path, how: str) -> None:
    """sigterm: A leaves the group (B takes its turn), later rejoins. sigkill: A's turn is queued for it
    by the broker while it is away (Mosquitto keeps a persistent member in the rotation) and A,
    restarted with the same client id, gets it."""
    broker = Mosquitto(tmp_path / "broker").start()
    out = tmp_path / "rec"
    procs: list[subprocess.Popen[bytes]] = []
    station = None
    try:
        rec_a = start_recorder(broker, out, tmp_path, "rA")
        rec_b = start_recorder(broker, out, tmp_path, "rB")
        procs += [rec_a, rec_b]
        station = start_daq(
            ["run", "--broker", broker.url, "--station", STATION, "--simulate", str(DIALS), "--rate", str(RATE)],
            tmp_path,
            "station",
        )
        # Both recorders get samples before A goes.
        wait_for(
            lambda: (
                # The broker hands out whole messages in turn: which dials each member sees depends on
                # how the station's messages interleave, so ask only that both work and all dials arrive.
                bool(list(out.glob(f"{STATION}/*/*@rA.csv")))
                and bool(list(out.glob(f"{STATION}/*/*@rB.csv")))
                and len({p.name.split("@")[0] for p in out.glob(f"{STATION}/*/*@*.csv")}) == DIALS
            ),
            timeout=20,
            what="both write",
        )
        time.sleep(1.5)
        if how == "sigterm":
            assert stop_process(rec_a, timeout=30) == 0
            assert "left shared group g1" in (tmp_path / "record-rA.log").read_text()
        else:
            stop_process(rec_a, signal.SIGKILL)
        time.sleep(2.0)  # the stream goes on without A
        rec_a = start_recorder(broker, out, tmp_path, "rA")
        procs.append(rec_a)
        time.sleep(1.5)
        assert stop_process(station, timeout=30) == 0, (tmp_path / "station.log").read_text()[-3000:]
        counts = final_counts(broker, tmp_path)
        assert sorted(counts) == [f"sim-{i:02d}" for i in range(1, DIALS + 1)]
        assert all(n >= RATE * 4 for n in counts.values()), counts
        wait_for(
            lambda: all(len(set(part_keys(out).get(d, []))) >= n for d, n in counts.items()),
            timeout=30,
            what="every sample in some recorder's file",
        )
    finally:
        if station is not None:
            stop_process(station)
        codes = [stop_process(p, timeout=30) for p in procs]
        broker.stop()
    assert codes[1:] == [0] * (len(codes) - 1) and codes[0] in (0, -signal.SIGKILL), codes

    keys = part_keys(out)
    parts = {d: Counter(k) for d, k in keys.items()}
    duplicates = sum(n - 1 for c in parts.values() for n in c.values() if n > 1)
    by_recorder = Counter(p.name.split("@")[1] for p in out.glob(f"{STATION}/*/*@*.csv"))
    assert set(by_recorder) == {"rA.csv", "rB.csv"}
    assert {p.name.split("@")[0] for p in out.glob(f"{STATION}/*/*@*.csv")} == {
        f"sim-{i:02d}" for i in range(1, DIALS + 1)
    }

    merge = subprocess.run(
        daq_cmd("record", "merge", str(out), "--check"), capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert f"duplicates dropped: {duplicates}; samples missing (gaps): 0" in merge.stdout, merge.stdout
    session_dirs = {p.parent for p in out.glob(f"{STATION}/*/*.csv")}
    assert len(session_dirs) == 1
    folder = session_dirs.pop()
    for dial, n in counts.items():
        rows = read_rows(folder / f"{dial}.csv")
        assert [int(r["seq"]) for r in rows] == list(range(n)), dial  # each once, in seq order
        assert len({r["boot"] for r in rows}) == 1
        header = [line for line in (folder / f"{dial}.csv").read_text().splitlines() if line.startswith("#")]
        assert f"# dial: {dial}" in header and any(h.startswith("# merged_from: ") for h in header)
        assert not any(h.startswith("# recorder:") for h in header)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["gaps"] == [] and summary["duplicates_dropped"] == duplicates
    per_recorder: Counter[str] = Counter()
    for path in out.glob(f"{STATION}/*/*@*.csv"):
        per_recorder[path.stem.split("@")[1]] += len(read_rows(path))
    print(
        f"{how}: samples per dial {counts}; rows before merge "
        f"{sum(len(k) for k in keys.values())} ({dict(per_recorder)}), duplicates before merge {duplicates}"
    )


# -- merge and friends, without a broker --------------------------------------------------------


def write_part(path: Path, dial: str, recorder: str, rows: list[str], torn: str = "") -> None:
    header = (
        f"# dialdaq recording\n# station: {STATION}\n# dial: {dial}\n# session: s-1\n# profile: sim\n"
        f"# recorder: {recorder}\n# share: g1\n"
    )
    cols = "boot,seq,t_ns,media_s,timecode,frame,value,raw,replay\n"
    path.write_text(header + cols + "".join(r + "\n" for r in rows) + torn, encoding="utf-8")


def test_merge_dedups_orders_boots_by_time_and_reports_gaps(tmp_path: Path) -> None:
    folder = tmp_path / "rec" / STATION / "s-1"
    folder.mkdir(parents=True)
    # boot "b-late" started after boot "a-early" (t_ns), though it sorts first by name
    write_part(
        folder / "d.1@rA.csv",
        "d.1",
        "rA",
        ["b-late,0,2000,,,,1.0,1,", "a-early,0,1000,,,,1.0,1,", "a-early,3,1003,,,,1.0,1,"],
        torn="a-early,4,10",
    )
    write_part(
        folder / "d.1@rB.csv",
        "d.1",
        "rB",
        ["a-early,2,1002,,,,1.0,1,", "a-early,3,1003,,,,1.0,1,True", "b-late,1,2001,,,,1.0,1,"],
    )
    (folder / "notes.csv").write_text("a,b\n1,2\n")
    merge = subprocess.run(
        daq_cmd("record", "merge", str(tmp_path / "rec"), "--check"),
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert merge.returncode == 1, merge.stdout + merge.stderr  # --check: a gap remains
    assert "notes.csv: not a dialdaq recording; skipped" in merge.stdout
    assert "gap: boot a-early is missing seq 1 (1 samples)" in merge.stdout
    assert "duplicates dropped: 1; samples missing (gaps): 1" in merge.stdout
    assert "1 torn rows skipped" in merge.stdout
    text = (folder / "d.1.csv").read_text()
    assert "# merged_from: d.1@rA.csv, d.1@rB.csv" in text and "# recorder:" not in text and "# dial: d.1" in text
    assert [(r["boot"], int(r["seq"])) for r in read_rows(folder / "d.1.csv")] == [
        ("a-early", 0),
        ("a-early", 2),
        ("a-early", 3),
        ("b-late", 0),
        ("b-late", 1),
    ]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["gaps"] == [{"dial": "d.1", "boot": "a-early", "missing": [[1, 1]]}]
    assert summary["dials"]["d.1"]["sources"] == {"d.1@rA.csv": 3, "d.1@rB.csv": 3}
    # Merging again (the merged file is one more input now) changes nothing.
    again = subprocess.run(
        daq_cmd("record", "merge", str(folder)), capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert again.returncode == 0 and (folder / "d.1.csv").read_text() == text.replace(
        "# merged_from: d.1@rA.csv, d.1@rB.csv", "# merged_from: d.1.csv, d.1@rA.csv, d.1@rB.csv"
    )


def test_station_lists_and_recent_seqs() -> None:
    from daq.ids import parse_stations
    from daq.subscribers.record_seqs import RecentSeqs

    assert parse_stations(["lab-a,lab-b", "lab-c", "lab-a"]) == ["lab-a", "lab-b", "lab-c"]
    assert parse_stations(["lab-a", "+"]) == ["+"]
    with pytest.raises(ValueError, match="not a station id"):
        parse_stations("lab a")
    recent = RecentSeqs()
    assert [recent.add(s) for s in (0, 2, 4, 2, 6)] == [True, True, True, False, True]
    for s in range(8, 8 + 3 * RecentSeqs.WINDOW, 2):
        recent.add(s)
    assert len(recent.seqs) <= 2 * RecentSeqs.WINDOW and not recent.add(recent.top)
