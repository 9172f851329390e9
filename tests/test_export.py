"""`daq export`: recorder files written here by hand, every expected number worked out by hand below."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daq.cli import main
from daq.config import BrokerConfig
from daq.export import ExportError, HeldSignal, Row, icc, read_session, resample, session_summary
from daq.export.resample import held_signals
from daq.export.segments import find_segments
from daq.subscribers.recorder import Recorder
from tests.support.procs import clean_env, daq_cmd

STATION = "lab-x"
SESSION = "s-test"
T0 = 1_795_451_400_000_000_000
COLUMNS = "boot,seq,t_ns,media_s,timecode,frame,value,raw,replay"

# One sample: (media_s or None, value); optional third item: seq (default: its index).
Spec = tuple[float | None, float] | tuple[float | None, float, int]


def write_dial(folder: Path, dial: str, samples: Sequence[Spec], rate: str = "25") -> Path:
    """A dial file exactly as `daq record` writes it: '#' header lines, the column line, the rows."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "# dialdaq recording",
        f"# station: {STATION}",
        f"# dial: {dial}",
        f"# session: {SESSION}",
        "# profile: simulated",
        "# device: sim",
        '# scale: {"labels": {}, "max": 10.0, "min": 0.0, "step": 0.0, "unit": ""}',
        "# rate_hz: 10.0",
        f"# timecode_rate: {rate}",
        "# media_clock: session",
        COLUMNS,
    ]
    for i, spec in enumerate(samples):
        media, value = spec[0], spec[1]
        seq = spec[2] if len(spec) == 3 else i
        t_ns = T0 + i * 100_000_000  # read time rises with file order
        media_cell = "" if media is None else repr(media)
        lines.append(f"b1,{seq},{t_ns},{media_cell},,,{value!r},{int(value)},")
    path = folder / f"{dial}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def session_dir(tmp_path: Path) -> Path:
    return tmp_path / "rec" / STATION / SESSION


def run_export(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        daq_cmd("export", *args), cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def num(cell: str) -> float | None:
    return float(cell) if cell else None


# -- reading ----------------------------------------------------------------------------------


def test_reader_reads_what_the_recorder_writes(tmp_path: Path) -> None:
    recorder = Recorder(BrokerConfig(url="mqtt://127.0.0.1:1"), tmp_path)
    meta = {
        "v": 1,
        "station": STATION,
        "dial": "d1",
        "boot": "b9",
        "connected": True,
        "profile": "simulated",
        "transport": "simulated",
        "scale": {"min": -3.0, "max": 3.0},
        "rate_hz": 20.0,
        "t_ns": T0,
    }
    recorder.handle(f"daq/{STATION}/dials/d1/meta", json.dumps(meta).encode())
    recorder.handle(f"daq/{STATION}/session", json.dumps({"clock": {"rate": "29.97df", "kind": "session"}}).encode())
    base = {"v": 1, "station": STATION, "dial": "d1", "session": "s-9", "boot": "b9"}
    samples = [
        {**base, "seq": 0, "t_ns": T0, "media_s": None, "timecode": None, "frame": None, "value": -1.5, "raw": 3},
        {
            **base,
            "seq": 1,
            "t_ns": T0 + 5,
            "media_s": 12.5,
            "timecode": "00:00:12;14",
            "frame": 374,
            "value": 2.25,
            "raw": 17,
            "replay": True,
        },
    ]
    recorder.handle(f"daq/{STATION}/dials/d1/samples", json.dumps(samples).encode())
    recorder.close()
    session = read_session(tmp_path / STATION / "s-9")
    assert (session.station, session.session, session.timecode_rate) == (STATION, "s-9", "29.97df")
    (dial,) = session.dials
    assert dial.dial == "d1" and dial.scale == {"min": -3.0, "max": 3.0} and dial.rate_hz == 20.0
    first, second = dial.rows
    assert (first.boot, first.seq, first.t_ns, first.media_s, first.timecode, first.frame) == (
        "b9",
        0,
        T0,
        None,
        None,
        None,
    )
    assert (first.value, first.raw, first.replay) == (-1.5, 3.0, False)
    assert (second.media_s, second.timecode, second.frame, second.value, second.replay) == (
        12.5,
        "00:00:12;14",
        374,
        2.25,
        True,
    )
    assert session.recorder_summary is not None and session.recorder_summary["dials"]["d1"]["rows"] == 2


def test_reader_names_the_file_and_line_of_a_bad_row(tmp_path: Path) -> None:
    path = write_dial(session_dir(tmp_path), "a", [(0.0, 1.0)])
    path.write_text(path.read_text() + "b1,x,1,0.1,,,1,1,\n")
    with pytest.raises(ExportError, match=r"a\.csv: line 13: not a sample row"):
        read_session(session_dir(tmp_path))
    with pytest.raises(ExportError, match="no dial files"):
        read_session(tmp_path)


# -- resampling -------------------------------------------------------------------------------


def test_rate_grid_holds_the_last_value_and_leaves_gaps_empty(tmp_path: Path) -> None:
    folder = session_dir(tmp_path)
    # a: a sample without media time (left out), then 0.05 -> 1, 0.25 -> 3, 0.32 -> 5, a gap, 1.8 -> 7, 2.0 -> 9
    write_dial(folder, "a", [(None, 99.0), (0.05, 1.0), (0.25, 3.0), (0.32, 5.0), (1.8, 7.0), (2.0, 9.0)])
    write_dial(folder, "b", [(0.0, 10.0), (0.5, 10.0), (1.0, 10.0), (1.5, 10.0), (2.0, 10.0)])
    session = read_session(folder)
    grid = resample(session, rate_hz=10, max_hold=1.0)
    # The span is 0.0 (b's first) .. 2.0: points k/10 for k = 0..20.
    assert grid.starts == [k / 10 for k in range(21)]
    expected_a = (
        [None]  # 0.0: before a's first sample
        + [1.0, 1.0]  # 0.1, 0.2: the sample at 0.05
        + [3.0]  # 0.3: the sample at 0.25 (0.32 comes after)
        + [5.0] * 10  # 0.4 .. 1.3: 0.32 held for max_hold = 1 s, until 1.32
        + [None] * 4  # 1.4 .. 1.7: the rest of the gap to 1.8 is empty, not held
        + [7.0, 7.0, 9.0]  # 1.8, 1.9, 2.0
    )
    assert grid.values["a"] == expected_a
    assert grid.values["b"] == [10.0] * 21
    mean = grid.group_mean()
    assert mean[0] == 10.0 and mean[1] == 5.5 and mean[3] == 6.5 and mean[15] == 10.0
    # Timecodes at 25 fps: the frame showing at each point.
    assert grid.timecodes()[:4] == ["00:00:00:00", "00:00:00:02", "00:00:00:05", "00:00:00:07"]

    signal = HeldSignal.from_rows(session.dials[0].rows, 1.0)
    # Empty on [0, 0.05) and [1.32, 1.8) of the span [0, 2]: coverage (2 - 0.05 - 0.48) / 2.
    gaps = signal.empty_intervals(0.0, 2.0)
    assert [(round(a, 9), round(b, 9)) for a, b in gaps] == [(0.0, 0.05), (1.32, 1.8)]
    assert math.isclose(signal.covered(0.0, 2.0) / 2.0, 0.735)


def test_seek_back_the_later_rating_wins_and_a_pause_keeps_the_last(tmp_path: Path) -> None:
    folder = session_dir(tmp_path)
    # Pass 1 rates 0..2 s at 1; the client seeks back to 1.0 and rates 1.0 and 1.5 at 5 (pass 2).
    write_dial(folder, "a", [(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (1.5, 1.0), (2.0, 1.0), (1.0, 5.0), (1.5, 5.0)])
    # Paused at 0.5 while the dial moved 2 -> 3 -> 4: the last one counts.
    write_dial(folder, "p", [(0.0, 1.0), (0.5, 2.0), (0.5, 3.0), (0.5, 4.0), (1.0, 5.0)])
    session = read_session(folder)
    signals = held_signals(session, 1.0)
    assert signals["a"].passes == 2 and signals["p"].passes == 1
    grid = resample(session, rate_hz=10, max_hold=1.0, signals=signals)
    # 0.0-0.9: pass 1; 1.0-1.4: pass 2 rated it again, later wins; 1.5-2.0: pass 2's last sample
    # (1.5) is only a trailing hold, which does not replace pass 1's rating of 1.5-2.0.
    assert grid.values["a"] == [1.0] * 10 + [5.0] * 5 + [1.0] * 6
    # p: 0.0-0.4 -> 1, 0.5-0.9 -> 4 (the last at 0.5), 1.0 -> 5 held to 2.0.
    assert grid.values["p"] == [1.0] * 5 + [4.0] * 5 + [5.0] * 11


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(-5, 5)), min_size=1, max_size=30),
    st.sampled_from([0.15, 0.35, 1.0]),
)
def test_one_pass_grid_is_the_last_sample_at_or_before_within_max_hold(
    samples: list[tuple[int, int]], max_hold: float
) -> None:
    """Without seeks back, the grid is exactly the stated rule, checked naively point by point."""
    rows = [
        Row("b", i, T0 + i, tenths / 10, None, None, float(v), float(v))
        for i, (tenths, v) in enumerate(sorted(samples, key=lambda s: s[0]))
    ]
    signal = HeldSignal.from_rows(rows, max_hold)
    for k in range(0, 75):
        g = k / 10
        before = [r for r in rows if r.media_s is not None and r.media_s <= g + 1e-9]
        last = before[-1] if before else None  # the latest of several at the same media_s
        expected = (
            last.value
            if last is not None and last.media_s is not None and g - last.media_s <= max_hold + 1e-9
            else None
        )
        assert signal.value_at(g) == expected, (g, rows)


def test_bins_take_the_time_weighted_mean_and_need_half_a_bin(tmp_path: Path) -> None:
    folder = session_dir(tmp_path)
    # Held signal (max_hold 1): [0,0.5)=2, [0.5,1)=4, [1,2)=6 (hold cut at 1 s), [2,2.4) empty, [2.4,3)=8, 3.0 -> 10.
    write_dial(folder, "a", [(0.0, 2.0), (0.5, 4.0), (1.0, 6.0), (2.4, 8.0), (3.0, 10.0)])
    session = read_session(folder)
    one = resample(session, bin_s=1.0, max_hold=1.0)
    assert one.starts == [0.0, 1.0, 2.0]  # bins cover the span [0, 3)
    # [0,1): (0.5*2 + 0.5*4) / 1 = 3; [1,2): 6; [2,3): covered 0.6 s (>= half) by 8 -> 8.
    assert one.values["a"] == [3.0, 6.0, 8.0]
    half = resample(session, bin_s=0.5, max_hold=1.0)
    # [2,2.5) is covered for 0.1 s only (< half of 0.5 s): empty.
    assert half.values["a"] == [2.0, 4.0, 6.0, 6.0, None, 8.0]


# -- summary and agreement --------------------------------------------------------------------

# 4 targets (grid points) x 3 judges (dials), worked out by hand:
#   grand mean = 72 / 12 = 6; row means 3, 5, 7, 9; column means 5, 6, 7
#   SS_rows  = 3 * (9 + 1 + 1 + 9) = 60          BMS = 60 / 3 = 20
#   SS_cols  = 4 * (1 + 0 + 1) = 8               JMS = 8 / 2 = 4
#   SS_total = (16+9+4) + (4+4+1) + (0+4+1) + (4+9+16) = 72
#   SS_error = 72 - 60 - 8 = 4                   EMS = 4 / (3 * 2) = 2/3
#   ICC(2,1) = (20 - 2/3) / (20 + 2 * 2/3 + 3 * (4 - 2/3) / 4) = (58/3) / (143/6) = 116/143
#   ICC(3,k) = (20 - 2/3) / 20 = 29/30
TABLE = [[2.0, 3.0, 4.0], [4.0, 4.0, 7.0], [6.0, 8.0, 7.0], [8.0, 9.0, 10.0]]


def test_icc_of_a_hand_computed_table() -> None:
    result = icc(TABLE)
    assert result is not None
    assert (result.n, result.k) == (4, 3)
    assert math.isclose(result.bms, 20) and math.isclose(result.jms, 4) and math.isclose(result.ems, 2 / 3)
    assert result.icc_2_1 is not None and math.isclose(result.icc_2_1, 116 / 143)
    assert result.icc_3_k is not None and math.isclose(result.icc_3_k, 29 / 30)
    assert icc([[1.0, 2.0]]) is None


def write_table_session(folder: Path) -> None:
    """Dials a, b, c with the TABLE's columns at media 0, 1, 2, 3; b lost seq 2 (a seq gap only)."""
    for j, dial in enumerate("abc"):
        seqs = [0, 1, 3, 4] if dial == "b" else [0, 1, 2, 3]
        write_dial(folder, dial, [(float(i), TABLE[i][j], seqs[i]) for i in range(4)])


def test_summary_statistics_and_agreement(tmp_path: Path) -> None:
    folder = session_dir(tmp_path)
    write_table_session(folder)
    session = read_session(folder)
    signals = held_signals(session, 1.0)
    grid = resample(session, rate_hz=1, signals=signals)
    summary = session_summary(session, signals, grid)
    a = summary["dials"]["a"]
    # a = 2, 4, 6, 8: mean 5, SD sqrt((9 + 1 + 1 + 9) / 3)
    assert (a["count"], a["count_media"], a["mean"], a["min"], a["max"]) == (4, 4, 5.0, 2.0, 8.0)
    assert math.isclose(a["sd"], math.sqrt(20 / 3))
    assert a["coverage"] == 1.0 and a["media_gaps"] == [] and a["seq_gaps"] == []
    b = summary["dials"]["b"]
    assert b["seq_gaps"] == [{"boot": "b1", "first": 2, "last": 2, "count": 1}] and b["missing_samples"] == 1
    agree = summary["agreement"]
    assert agree["k"] == 3 and agree["complete_points"] == 4
    assert math.isclose(agree["icc_2_1"], 116 / 143) and math.isclose(agree["icc_3_k"], 29 / 30)
    assert summary["media_span"]["start_s"] == 0.0 and summary["media_span"]["end_timecode"] == "00:00:03:00"


# -- segments ---------------------------------------------------------------------------------

SERIES = [5.0, 6.0, 9.0, 8.0, 2.0, 1.0, 5.0, 7.0, 7.0, 3.0]  # at media 0, 1, ..., 9


def test_top_segments_are_the_hand_computed_windows(tmp_path: Path) -> None:
    folder = session_dir(tmp_path)
    write_dial(folder, "a", [(float(i), v) for i, v in enumerate(SERIES)])
    grid = resample(read_session(folder), rate_hz=1)
    # 2 s windows = 2 grid points; means by start: 0:5.5 1:7.5 2:8.5 3:5 4:1.5 5:3 6:6 7:7 8:5
    # helpful: 8.5 @2; 7.5 @1 overlaps it; 7 @7.       hindering: 1.5 @4; 3 @5, 5 @3, 5 @8 overlap; 5.5 @0.
    windows = find_segments(grid, 2, 2.0)
    got = [(w.target, w.kind, w.rank, w.start_s, w.end_s, w.start_timecode, w.end_timecode, w.mean) for w in windows]
    assert got == [
        ("mean", "helpful", 1, 2.0, 4.0, "00:00:02:00", "00:00:04:00", 8.5),
        ("mean", "helpful", 2, 7.0, 9.0, "00:00:07:00", "00:00:09:00", 7.0),
        ("mean", "hindering", 1, 4.0, 6.0, "00:00:04:00", "00:00:06:00", 1.5),
        ("mean", "hindering", 2, 0.0, 2.0, "00:00:00:00", "00:00:02:00", 5.5),
    ]
    assert [w.target for w in find_segments(grid, 1, 2.0, "dial")] == ["a", "a"]
    with pytest.raises(ExportError, match="whole number of grid steps"):
        find_segments(grid, 1, 2.5)


# -- the command ------------------------------------------------------------------------------


def test_cli_exports_tidy_resampled_summary_and_segments(tmp_path: Path) -> None:
    folder = session_dir(tmp_path)
    write_table_session(folder)
    out = tmp_path / "out"
    done = run_export(
        str(folder), "--out", str(out), "--rate", "1", "--summary", "--segments", "1", "--window", "2", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "ICC(2,1) = 0.811, ICC(3,k) = 0.967" in done.stdout  # 116/143, 29/30
    tidy = read_csv(out / "samples.csv")
    assert list(tidy[0]) == [
        "station",
        "session",
        "dial",
        "boot",
        "seq",
        "t_ns",
        "media_s",
        "timecode",
        "frame",
        "value",
        "raw",
    ]
    assert len(tidy) == 12
    assert tidy[4] == {
        "station": STATION,
        "session": SESSION,
        "dial": "b",
        "boot": "b1",
        "seq": "0",
        "t_ns": str(T0),
        "media_s": "0",
        "timecode": "",
        "frame": "",
        "value": "3",
        "raw": "3",
    }
    grid = read_csv(out / "resampled.csv")
    assert [(r["media_s"], r["timecode"], r["a"], r["b"], r["c"]) for r in grid] == [
        ("0", "00:00:00:00", "2", "3", "4"),
        ("1", "00:00:01:00", "4", "4", "7"),
        ("2", "00:00:02:00", "6", "8", "7"),
        ("3", "00:00:03:00", "8", "9", "10"),
    ]
    assert [num(r["group_mean"]) for r in grid] == [3.0, 5.0, 7.0, 9.0]
    summary = json.loads((out / "summary.json").read_text())
    assert math.isclose(summary["agreement"]["icc_2_1"], 116 / 143)
    # group mean 3, 5, 7, 9: 2 s windows 4 @0, 6 @1, 8 @2 -> helpful 8 @2, hindering 4 @0
    segments = read_csv(out / "segments.csv")
    assert [(s["kind"], s["start_s"], s["end_s"], s["mean"]) for s in segments] == [
        ("helpful", "2", "4", "8"),
        ("hindering", "0", "2", "4"),
    ]
    assert summary["segments"][0]["start_timecode"] == "00:00:02:00"
    # The recorder's files are untouched and nothing else was written.
    assert sorted(p.name for p in out.iterdir()) == ["resampled.csv", "samples.csv", "segments.csv", "summary.json"]


def test_cli_bins_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = session_dir(tmp_path)
    write_table_session(folder)
    assert main(["export", str(folder), "--out", str(tmp_path / "bins"), "--bin", "2"]) == 0
    rows = read_csv(tmp_path / "bins" / "resampled.csv")
    # bins [0,2) and [2,4): the mean of a's held 2 and 4 is 3; of 6 and 8 (8 held past the span) is 7
    assert [(r["media_s"], r["bin_end_s"], r["a"]) for r in rows] == [("0", "2", "3"), ("2", "4", "7")]


def test_cli_parquet_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    folder = session_dir(tmp_path)
    write_dial(folder, "a", [(None, 1.5), (0.0, 2.0), (0.5, 4.0)])
    assert main(["export", str(folder), "--format", "parquet", "--rate", "2"]) == 0, capsys.readouterr().err
    out = folder / "export"  # the default --out
    table = pq.read_table(out / "samples.parquet")
    assert [str(t) for t in table.schema.types] == [
        "string",
        "string",
        "string",
        "string",
        "int64",
        "int64",
        "double",
        "string",
        "int64",
        "double",
        "double",
    ]
    assert table.to_pylist() == [
        {
            "station": STATION,
            "session": SESSION,
            "dial": "a",
            "boot": "b1",
            "seq": i,
            "t_ns": T0 + i * 100_000_000,
            "media_s": media,
            "timecode": None,
            "frame": None,
            "value": value,
            "raw": float(int(value)),
        }
        for i, (media, value) in enumerate([(None, 1.5), (0.0, 2.0), (0.5, 4.0)])
    ]
    assert json.loads(table.schema.metadata[b"dialdaq"])["dials"]["a"]["scale"]["max"] == 10.0
    grid = pq.read_table(out / "resampled.parquet").to_pylist()
    assert [(r["media_s"], r["a"]) for r in grid] == [(0.0, 2.0), (0.5, 4.0)]


def test_cli_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails as if not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    folder = session_dir(tmp_path)
    write_dial(folder, "a", [(0.0, 2.0)])
    assert main(["export", str(folder), "--format", "parquet"]) == 2
    assert capsys.readouterr().err == (
        "daq: error: --format parquet needs the 'pyarrow' library: install it with pip install 'dialdaq[parquet]'\n"
    )
    assert not (folder / "export").exists()


def test_cli_refuses_what_it_cannot_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = session_dir(tmp_path)
    write_dial(folder, "a", [(0.0, 2.0), (1.0, 3.0)])
    cases = [
        ([str(tmp_path / "nowhere")], "not a folder"),
        ([str(folder), "--segments", "2"], "--segments N and --window SECONDS go together"),
        ([str(folder), "--summary", "--out", str(folder)], "its summary.json is the recorder's"),
        ([str(folder), "--rate", "0"], "--rate 0.0: give a rate above 0"),
        ([str(folder), "--rate", "1", "--max-hold", "0"], "--max-hold 0.0: give a time above 0"),
    ]
    for args, message in cases:
        assert main(["export", *args]) == 2, args
        assert message in capsys.readouterr().err, args
