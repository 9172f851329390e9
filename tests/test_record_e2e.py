"""`daq record` against a real Mosquitto: files, rows, no duplicates, gaps reported."""

from __future__ import annotations

import csv
import json
import subprocess
import time
from pathlib import Path

from tests.support.procs import Mosquitto, need, start_daq, stop_process, wait_for

STATION = "lab-r"


def read_rows(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def test_record_writes_one_file_per_session_and_dial(mosquitto: Mosquitto, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    mark = mosquitto.log_mark()
    recorder = start_daq(
        ["record", "--broker", mosquitto.url, "--station", STATION, "--out", str(out)], tmp_path, "record"
    )
    try:
        wait_for(lambda: "recording" in (tmp_path / "record.log").read_text(), what="recorder start")
        mosquitto.wait_subscription(f"daq/{STATION}/dials/+/samples", mark)
        daemon = start_daq(
            [
                "run",
                "--broker",
                mosquitto.url,
                "--station",
                STATION,
                "--simulate",
                "2",
                "--rate",
                "100",
                "--duration",
                "2",
            ],
            tmp_path,
        )
        assert daemon.wait(30) == 0, (tmp_path / "daq.log").read_text()
        time.sleep(1.0)
    finally:
        assert stop_process(recorder) == 0
    log = (tmp_path / "record.log").read_text()
    files = sorted(out.glob(f"{STATION}/*/*.csv"))
    assert [f.name for f in files] == ["sim-01.csv", "sim-02.csv"], log
    session_dir = files[0].parent
    assert session_dir.name.startswith("s-")
    for f in files:
        header = [line for line in f.read_text().splitlines() if line.startswith("#")]
        assert f"# dial: {f.stem}" in header
        assert any(line.startswith("# scale: ") and '"max": 100.0' in line for line in header)
        assert "# timecode_rate: 25" in header
        rows = read_rows(f)
        seqs = [int(r["seq"]) for r in rows]
        assert seqs == list(range(len(seqs))) and len(seqs) >= 150
    summary = json.loads((session_dir / "summary.json").read_text())
    assert summary["gaps"] == [] and set(summary["dials"]) == {"sim-01", "sim-02"}


def test_record_drops_duplicates_and_reports_gaps(mosquitto: Mosquitto, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    mark = mosquitto.log_mark()
    recorder = start_daq(
        ["record", "--broker", mosquitto.url, "--station", STATION, "--out", str(out)], tmp_path, "record"
    )
    try:
        wait_for(lambda: "recording" in (tmp_path / "record.log").read_text(), what="recorder start")
        mosquitto.wait_subscription(f"daq/{STATION}/dials/+/samples", mark)
        base = {
            "v": 1,
            "station": STATION,
            "dial": "d1",
            "session": "s-1",
            "boot": "b1",
            "t_ns": 1,
            "media_s": None,
            "timecode": None,
            "frame": None,
            "value": 1.0,
            "raw": 1,
        }
        # seq 0,1,2 then 2 again (a duplicate) then 5,6 (3 and 4 lost); one message is a batch
        messages = [
            [{**base, "seq": 0}, {**base, "seq": 1}],
            {**base, "seq": 2},
            {**base, "seq": 2},
            [{**base, "seq": 5}, {**base, "seq": 6}],
        ]
        for body in messages:
            subprocess.run(
                [
                    need("mosquitto_pub"),
                    "-p",
                    str(mosquitto.port),
                    "-q",
                    "1",
                    "-t",
                    f"daq/{STATION}/dials/d1/samples",
                    "-m",
                    json.dumps(body),
                ],
                check=True,
            )
        wait_for(lambda: "gap" in (tmp_path / "record.log").read_text(), what="gap report")
        time.sleep(0.3)
    finally:
        assert stop_process(recorder) == 0
    log = (tmp_path / "record.log").read_text()
    assert "missing seq 3..4 (2 samples)" in log
    assert "duplicates dropped: 1; samples missing (gaps): 2" in log
    rows = read_rows(out / STATION / "s-1" / "d1.csv")
    assert [int(r["seq"]) for r in rows] == [0, 1, 2, 5, 6]
    summary = json.loads((out / STATION / "s-1" / "summary.json").read_text())
    assert summary["gaps"] == [{"dial": "d1", "boot": "b1", "missing": [[3, 4]]}]
