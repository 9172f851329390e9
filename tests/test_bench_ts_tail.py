"""benchmarks/ts_tail.py reads a kept run folder as benchmarks/run.py wrote it and finds a stalled
tick: the ts error is the sample's t_ns less the write time and the writer's offset, the lead-in's
ticks are left out, and a tick whose later dials all came late is reported dial by dial."""

from __future__ import annotations

import array
import json
import subprocess
import sys
from pathlib import Path

from benchmarks import ts_tail

REPO = Path(__file__).resolve().parents[1]


def kept_run(folder: Path, late: dict[tuple[int, int], int]) -> Path:
    """A run folder of 4 dials x 10 ticks (2 of them lead-in), every sample 0.1 ms late but `late`'s
    ((tick, dial) -> ns late), as run.py leaves it."""
    run = folder / "daemon-4x100-abcdef"
    run.mkdir(parents=True)
    n, ticks, offset = 4, 10, 1_700_000_000_000_000_000
    writes = array.array("q", [1_000_000_000 + k * 10_000_000 + i * 5_000 for k in range(ticks) for i in range(n)])
    run.joinpath("writes.bin").write_bytes(writes.tobytes())
    got: dict[str, list[object]] = {"dial": [], "raw": [], "t_ns": [], "recv_ns": []}
    for k in range(ticks):
        for i in range(n):
            got["dial"].append(f"d{i:03d}")
            got["raw"].append(k)
            got["t_ns"].append(writes[k * n + i] + offset + late.get((k, i), 100_000))
            got["recv_ns"].append(writes[k * n + i] + 2_000_000)
    run.joinpath("received.json").write_text(json.dumps(got))
    run.joinpath("run.json").write_text(json.dumps({"dials": n, "rate_hz": 100, "lead": 2, "offset_ns": offset}))
    return run


def test_a_stalled_tick_is_found_and_the_lead_in_left_out(tmp_path: Path) -> None:
    stall = {(5, 1): 900_000, (5, 2): 895_000, (5, 3): 890_000, (0, 0): 50_000_000}  # tick 0: the lead-in
    run = kept_run(tmp_path, stall)
    params, errors = ts_tail.errors_ms(run)
    assert params["dials"] == 4 and len(errors) == 8 * 4  # ticks 2..9
    assert errors[(5, 2)] == 0.895 and errors[(3, 0)] == 0.1 and (0, 0) not in errors
    lines = ts_tail.report(run, over_ms=0.5, show=1)
    assert "max 0.900 ms" in lines[0]
    assert "3 samples in 1 of 8 ticks" in lines[1]
    assert lines[2].strip() == "by dial: 0:0 1:1 2:1 3:1"
    assert lines[3] == "  tick 5: 0.10 0.90 0.90 0.89"


def test_the_command_reads_the_folder_bench_keep_left(tmp_path: Path) -> None:
    kept_run(tmp_path, {(4, 0): 700_000})
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "ts_tail.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "daemon-4x100-abcdef: 4 dials x 100 Hz, 32 samples" in done.stdout
    assert "1 samples in 1 of 8 ticks" in done.stdout
    empty = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "ts_tail.py"), str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert empty.returncode == 2 and "scripts/bench with --keep" in empty.stderr
