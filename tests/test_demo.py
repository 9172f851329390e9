"""The README's first command: `daq demo` on a machine with nothing installed (embedded broker)."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

from tests.support.procs import clean_env, daq_cmd


def test_demo_records_every_sample(tmp_path: Path) -> None:
    out = tmp_path / "recordings"
    result = subprocess.run(
        daq_cmd("demo", "--duration", "3", "--dials", "3", "--rate", "20", "--embedded", "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts = {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"(sim-\d+): (\d+) of (\d+) samples", result.stdout)}
    assert sorted(counts) == ["sim-01", "sim-02", "sim-03"]
    files = sorted(out.glob("demo/*/*.csv"))
    assert len(files) == 3
    for f in files:
        rows = list(csv.DictReader(line for line in f.read_text().splitlines() if not line.startswith("#")))
        recorded, published = counts[f.stem]
        assert recorded == published == len(rows)
        assert 40 <= len(rows) <= 80  # 3 s at 20 Hz
        assert all(-50 <= float(r["value"]) <= 50 for r in rows)
    assert str(out.resolve()) in result.stdout
