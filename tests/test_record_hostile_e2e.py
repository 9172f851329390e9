"""`daq record` against a real Mosquitto and hostile publishers (issue 13.3), and a late recorder (issue 14).

Hostile messages go out with mosquitto_pub (a client we did not write): samples of wrong types,
one whose station is another, a quoted newline with `# injected`, a 300-character dial topic
(it used to crash the recorder with `OSError: File name too long`, and with --persistent on
every restart), `p 1` next to `p-1`. Then valid samples: they are written, the hostile ones
refused and counted, the recorder alive; restarted with --persistent, it does not crash again.

A recorder started 2 s after a station reports no gap in any session for what was published
before it subscribed (`before_subscribe` in recorder.json, once), and `daq export --summary`
of each session agrees with the recorder's summary.json.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.procs import Mosquitto, clean_env, daq_cmd, need, start_daq, stop_process, wait_for

STATION = "lab-x"


def base(seq: int, dial: str = "p-1", **change: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "station": STATION,
        "dial": dial,
        "session": "s-1",
        "boot": "b1",
        "seq": seq,
        "t_ns": 1_795_451_400_000_000_000 + seq,
        "media_s": None,
        "timecode": None,
        "frame": None,
        "value": 1.0,
        "raw": 1,
        **change,
    }


def pub(port: int, topic: str, payload: str | bytes) -> None:
    args = [need("mosquitto_pub"), "-p", str(port), "-q", "1", "-t", topic]
    if isinstance(payload, bytes):
        subprocess.run([*args, "-s"], input=payload, check=True, timeout=10)
    else:
        subprocess.run([*args, "-m", payload], check=True, timeout=10)


def hostile(port: int) -> int:
    """Publish the attacks; return how many samples (or messages) they hold."""
    topic = f"daq/{STATION}/dials/p-1/samples"
    bodies = [
        base(10, value="abc"),
        base(11, t_ns="yesterday"),
        {**base(12), "seq": 5.7},
        {**base(13), "seq": 1e29},
        base(14, station="lab-other"),
        base(15, boot='b1"\n# injected'),
        base(16, session="s-1\n# injected,1,2"),
        base(17, timecode="00:00:00:00\n# injected"),
    ]
    for body in bodies:
        pub(port, topic, json.dumps(body))
    pub(port, topic, b"\x00\xff not json")
    pub(port, f"daq/{STATION}/dials/{'d' * 300}/samples", json.dumps(base(0, dial="d" * 300)))
    pub(port, f"daq/{STATION}/dials/p 1/samples", json.dumps(base(0, dial="p 1")))
    return len(bodies) + 3


def record_args(mosquitto: Mosquitto, out: Path, *extra: str) -> list[str]:
    return ["record", "--broker", mosquitto.url, "--station", STATION, "--out", str(out), *extra]


def test_hostile_messages_are_refused_and_counted_and_valid_ones_written(mosquitto: Mosquitto, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    log = tmp_path / "record.log"
    args = record_args(mosquitto, out, "--client-id", "rec-h", "--persistent")
    mark = mosquitto.log_mark()
    recorder = start_daq(args, tmp_path, "record")
    try:
        wait_for(lambda: "recording" in log.read_text(), what="recorder start")
        mosquitto.wait_subscription(f"daq/{STATION}/dials/+/samples", mark)
        pub(mosquitto.port, f"daq/{STATION}/dials/p-1/samples", json.dumps([base(0), base(1)]))
        attacks = hostile(mosquitto.port)
        pub(mosquitto.port, f"daq/{STATION}/dials/p-1/samples", json.dumps([base(2), base(3)]))
        wait_for(lambda: "refused" in log.read_text(), what="a refusal in the log")
        time.sleep(0.5)
        assert recorder.poll() is None, log.read_text()
    finally:
        assert stop_process(recorder) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text and f"refused (not written): {attacks}" in text, text
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert files == [f"{STATION}/s-1/p-1.csv"], files
    csv_text = (out / STATION / "s-1" / "p-1.csv").read_text()
    assert "injected" not in csv_text
    rows = [line for line in csv_text.splitlines() if not line.startswith("#")][1:]
    assert [r.split(",")[1] for r in rows] == ["0", "1", "2", "3"]
    summary = json.loads((out / STATION / "s-1" / "summary.json").read_text())
    assert summary["gaps"] == [] and summary["rejected"]["count"] == 7  # the ones that named session s-1
    assert summary["rejected"]["reasons"]["invalid seq"] == 2
    own = json.loads((out / "recorder@rec-h.json").read_text())
    assert own["rejected"]["count"] == attacks
    assert own["rejected"]["reasons"]["topic has an invalid station or dial id"] == 2

    # A persistent recorder restarted after hostile messages (some still queued for it) keeps running.
    hostile(mosquitto.port)  # while it is away: the broker keeps them in its session
    again = start_daq(args, tmp_path, "record2")
    try:
        wait_for(lambda: "recording" in (tmp_path / "record2.log").read_text(), what="restart")
        pub(mosquitto.port, f"daq/{STATION}/dials/p-1/samples", json.dumps(base(4)))
        wait_for(lambda: "refused" in (tmp_path / "record2.log").read_text(), what="queued hostile messages")
        time.sleep(1.0)
        assert again.poll() is None, (tmp_path / "record2.log").read_text()
    finally:
        assert stop_process(again) == 0
    rows = [line for line in (out / STATION / "s-1" / "p-1.csv").read_text().splitlines() if line.startswith("b1,")]
    assert [r.split(",")[1] for r in rows] == ["0", "1", "2", "3", "4"]


def session_cmd(mosquitto: Mosquitto, cwd: Path, action: str) -> str:
    done = subprocess.run(
        daq_cmd("session", action, "--broker", mosquitto.url, "--station", STATION),
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    reply: dict[str, Any] = json.loads(done.stdout)
    return str(reply.get("session") or reply.get("result", {}).get("session") or "")


def test_a_late_recorder_reports_before_subscribe_once_and_export_agrees(mosquitto: Mosquitto, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    station = start_daq(
        ["run", "--broker", mosquitto.url, "--station", STATION, "--simulate", "1", "--rate", "50"], tmp_path, "station"
    )
    recorder = None
    try:
        # commands go to a station that is there: connected and subscribed (it says so once it is)
        wait_for(lambda: "station: connected to" in (tmp_path / "station.log").read_text(), 30, what="station up")
        session_cmd(mosquitto, tmp_path, "start")
        time.sleep(2.0)  # the station publishes ~100 samples before the recorder subscribes
        recorder = start_daq(record_args(mosquitto, out), tmp_path, "record")
        wait_for(lambda: "recording" in (tmp_path / "record.log").read_text(), what="recorder start")
        time.sleep(1.5)
        session_cmd(mosquitto, tmp_path, "stop")
        session_cmd(mosquitto, tmp_path, "start")
        time.sleep(1.5)
    finally:
        if recorder is not None:
            assert stop_process(recorder) == 0, (tmp_path / "record.log").read_text()
        stop_process(station)
    folders = sorted(p.parent for p in out.glob(f"{STATION}/*/summary.json"))
    assert len(folders) >= 2, sorted(str(p) for p in out.rglob("*"))
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["gaps"] == [], (folder.name, summary)
        export = tmp_path / "export" / folder.name
        done = subprocess.run(
            daq_cmd("export", str(folder), "--summary", "--out", str(export)),
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        exported = json.loads(next(export.rglob("summary.json")).read_text())
        sessions = exported.get("sessions", [exported])
        for entry in sessions:
            for dial in entry["dials"].values():
                assert dial["seq_gaps"] == [] and dial["missing_samples"] == 0, folder.name
    own = json.loads((out / "recorder.json").read_text())
    [first] = own["before_subscribe"]
    assert first["dial"] == "sim-01" and first["first_seq_seen"] > 50 and first["not_received"] > 50
    assert first["session"] == folders[0].name or first["session"] in {f.name for f in folders}
    assert "first seq seen" in (tmp_path / "record.log").read_text()
