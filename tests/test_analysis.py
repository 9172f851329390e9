"""Several raters of one video: `daq export` aligns sittings, estimates lags, and its agreement and
empathic-accuracy figures match independent computations (scipy, the krippendorff
package, and direct formulas written out here) to 1e-9.

The recordings are built in the recorder's CSV format (tests/support/sittings.py): raters are
copies of one slowly varying signal, each lagging the video by a known number of seconds, plus noise.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daq.cli import main
from daq.export.agreement import krippendorff_interval
from daq.export.reader import ExportError
from tests.support.procs import clean_env, daq_cmd
from tests.support.sittings import rater_samples, smooth_signal, write_dial_file, write_summary

DURATION = 180.0
LAGS = {"client": 0.0, "therapist": 1.3, "observer-1": 2.55, "observer-2": 4.1}
VIDEO = {"name": "session-07.mp4", "size": 123456789, "sha256": "ab" * 32}
TOL = 1e-9


def make_sittings(root: Path, noise_rater: str | None = None, lags: dict[str, float] = LAGS) -> list[Path]:
    """One sitting (session folder) per rater, each started at a different point of the video."""
    signal = smooth_signal(7, DURATION)
    folders: list[Path] = []
    for i, (label, lag) in enumerate(lags.items()):
        session = f"s-2026120{i + 1}T100000Z-{i:04x}"
        folder = root / "rec" / "lab-a" / session
        samples = rater_samples(signal, lag, 0.4, 100 + i, DURATION, phase=0.013 * i, pure_noise=label == noise_rater)
        write_dial_file(folder, "lab-a", session, "p07", samples)
        write_summary(folder, "lab-a", session, ["p07"], rater=label, video=VIDEO, dimension="helpfulness")
        folders.append(folder)
    return folders


def export(folders: list[Path], out: Path, *extra: str) -> dict[str, Any]:
    code = main(["export", *map(str, folders), "--out", str(out), "--rate", "10", "--summary", *extra])
    assert code == 0
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def complete_grid(out: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(times, n x k matrix) of the exported resampled.csv, rows where every rater has a value."""
    with (out / "resampled.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    times, matrix = [], []
    for row in rows:
        cells = [row[label] for label in labels]
        if all(cells):
            times.append(float(row["media_s"]))
            matrix.append([float(c) for c in cells])
    return np.array(times), np.array(matrix)


def pair_grid(out: Path, a: str, b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with (out / "resampled.csv").open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r[a] and r[b]]
    return (
        np.array([float(r["media_s"]) for r in rows]),
        np.array([float(r[a]) for r in rows]),
        np.array([float(r[b]) for r in rows]),
    )


# -- independent computations -------------------------------------------------------------------


def icc_direct(x: np.ndarray) -> dict[str, float]:
    """McGraw & Wong (1996) Table 4, written from the sums of squares with plain loops."""
    n, k = x.shape
    grand = math.fsum(x.flat) / (n * k)
    ssr = k * math.fsum((math.fsum(x[i]) / k - grand) ** 2 for i in range(n))
    ssc = n * math.fsum((math.fsum(x[:, j]) / n - grand) ** 2 for j in range(k))
    sst = math.fsum((v - grand) ** 2 for v in x.flat)
    msr, msc, mse = ssr / (n - 1), ssc / (k - 1), (sst - ssr - ssc) / ((n - 1) * (k - 1))
    return {
        "icc_2_1": (msr - mse) / (msr + (k - 1) * mse + k / n * (msc - mse)),
        "icc_2_k": (msr - mse) / (msr + (msc - mse) / n),
        "icc_3_1": (msr - mse) / (msr + (k - 1) * mse),
        "icc_3_k": (msr - mse) / msr,
    }


def ccc_direct(a: np.ndarray, b: np.ndarray) -> float:
    cov = np.cov(a, b, bias=True)
    return float(2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (a.mean() - b.mean()) ** 2))


def krippendorff_direct(x: np.ndarray) -> float:
    """Krippendorff (2011), interval metric, complete data: pairs within units against all pairs."""
    n_values = x.size
    within = math.fsum((a - b) ** 2 / (len(row) - 1) for row in x for a, b in itertools.permutations(row.tolist(), 2))
    flat = x.ravel()
    total = math.fsum(((flat - v) ** 2).sum() for v in flat)  # every ordered pair of values, itself included (0)
    return 1 - (within / n_values) / (total / (n_values * (n_values - 1)))


def cronbach_direct(x: np.ndarray) -> float:
    k = x.shape[1]
    return float(k / (k - 1) * (1 - x.var(axis=0, ddof=1).sum() / x.sum(axis=1).var(ddof=1)))


def check_agreement(agree: dict[str, Any], x: np.ndarray, labels: list[str]) -> None:
    from scipy import stats  # the test extra

    krippendorff = pytest.importorskip("krippendorff")
    assert agree["raters"] == labels and agree["complete_points"] == len(x)
    for key, value in icc_direct(x).items():
        assert abs(agree[key] - value) < TOL, key
    pairs = list(itertools.combinations(range(len(labels)), 2))
    for (i, j), got_ccc, got_r in zip(pairs, agree["ccc"], agree["pearson"], strict=True):
        assert (got_ccc["a"], got_ccc["b"]) == (labels[i], labels[j])
        assert abs(got_ccc["ccc"] - ccc_direct(x[:, i], x[:, j])) < TOL
        assert abs(got_r["r"] - stats.pearsonr(x[:, i], x[:, j]).statistic) < TOL
    assert abs(agree["ccc_mean"] - np.mean([ccc_direct(x[:, i], x[:, j]) for i, j in pairs])) < TOL
    mean_r = np.mean([stats.pearsonr(x[:, i], x[:, j]).statistic for i, j in pairs])
    assert abs(agree["pearson_mean"] - mean_r) < TOL
    assert abs(agree["krippendorff_alpha"] - krippendorff_direct(x)) < TOL
    # the library builds a values x values coincidence matrix per unit: compare on every 25th grid point
    sub = x[::25]
    library = krippendorff.alpha(reliability_data=sub.T, level_of_measurement="interval")
    assert abs(krippendorff_interval(sub.T) - library) < TOL
    assert abs(agree["cronbach_alpha"] - cronbach_direct(x)) < TOL


def accuracy_direct(times: np.ndarray, rater: np.ndarray, target: np.ndarray, epoch: float) -> tuple[float, int]:
    epochs = np.floor(times / epoch + 1e-9).astype(int)
    rs = [np.corrcoef(rater[epochs == e], target[epochs == e])[0, 1] for e in np.unique(epochs)]
    rs = [r for e, r in zip(np.unique(epochs), rs, strict=True) if np.sum(epochs == e) >= 3]
    return float(np.tanh(np.mean(np.arctanh(rs)))), len(rs)


# -- the tests ----------------------------------------------------------------------------------


def test_lag_auto_recovers_each_lag_and_every_figure_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = make_sittings(tmp_path)
    out = tmp_path / "out"
    summary = export(folders, out, "--lag", "auto", "--target", "client", "--epoch", "30")
    printed = capsys.readouterr().out
    labels = list(LAGS)
    lags = summary["lag"]["raters"]
    for label, lag in LAGS.items():
        assert abs(lags[label]["lag_s"] - lag) < 0.1, (label, lags[label])
        assert lags[label]["r"] > 0.9
    assert "lags (each trace shifted back" in printed and "autocorrelated" in printed
    assert summary["video"] == VIDEO and summary["raters"]["therapist"]["dimension"] == "helpfulness"
    assert "autocorrelated" in summary["agreement"]["note"] and any("autocorrelated" in n for n in summary["notes"])

    _, x = complete_grid(out, labels)
    assert len(x) > 1500
    agree = summary["agreement"]
    check_agreement(agree, x, labels)
    assert agree["icc_2_1"] > 0.9 and agree["krippendorff_alpha"] > 0.9

    accuracy = {row["rater"]: row for row in summary["accuracy"]["raters"]}
    assert sorted(accuracy) == sorted(labels[1:])
    for label in labels[1:]:
        times, rater, target = pair_grid(out, label, "client")
        row = accuracy[label]
        assert abs(row["r"] - float(np.corrcoef(rater, target)[0, 1])) < TOL
        mean_r, count = accuracy_direct(times, rater, target, 30.0)
        assert abs(row["mean_r"] - mean_r) < TOL and row["epochs"] == count == 6  # 180 s of the client: 6 epochs
        assert abs(row["mean_z"] - math.atanh(mean_r)) < TOL


def test_one_rater_replaced_by_noise(tmp_path: Path) -> None:
    good = export(make_sittings(tmp_path / "good"), tmp_path / "good-out", "--lag", "auto", "--target", "client")
    noisy_out = tmp_path / "noisy-out"
    noisy = export(
        make_sittings(tmp_path / "noisy", noise_rater="observer-2"), noisy_out, "--lag", "auto", "--target", "client"
    )
    labels = list(LAGS)
    _, x = complete_grid(noisy_out, labels)
    check_agreement(noisy["agreement"], x, labels)  # still the right numbers, for the new data
    g, n = good["agreement"], noisy["agreement"]
    for key in ("icc_2_1", "icc_3_1", "krippendorff_alpha", "pearson_mean", "ccc_mean"):
        assert n[key] < g[key] - 0.3, key  # single-rater agreement falls by far more than a third
    for key in ("icc_2_k", "icc_3_k", "cronbach_alpha"):
        assert n[key] < g[key] - 0.05, key  # the mean of k still holds three good raters
    for pair in n["ccc"]:
        if "observer-2" in (pair["a"], pair["b"]):
            assert abs(pair["ccc"]) < 0.15, pair
        else:
            assert pair["ccc"] > 0.85, pair
    accuracy = {row["rater"]: row for row in noisy["accuracy"]["raters"]}
    assert abs(accuracy["observer-2"]["r"]) < 0.15 and abs(accuracy["observer-2"]["mean_r"]) < 0.2
    assert accuracy["therapist"]["r"] > 0.85
    # the good raters' lags are still found; the noise gets none and says so
    lags = noisy["lag"]["raters"]
    for label in ("client", "therapist", "observer-1"):
        assert abs(lags[label]["lag_s"] - LAGS[label]) < 0.1, label
    assert lags["observer-2"]["r"] is None or abs(lags["observer-2"]["r"]) < 0.2
    assert any("observer-2: no lag estimated" in note for note in noisy["notes"])


def test_lag_base_and_fixed_lag(tmp_path: Path) -> None:
    lags = {"a": 1.0, "b": 2.2, "c": 3.4}
    folders = make_sittings(tmp_path, lags=lags)
    summary = export(folders, tmp_path / "auto", "--lag", "auto", "--lag-base", "1")
    for label, lag in lags.items():
        assert abs(summary["lag"]["raters"][label]["lag_s"] - lag) < 0.1, label
    fixed = export(folders, tmp_path / "fixed", "--lag", "2")
    assert {k: v["lag_s"] for k, v in fixed["lag"]["raters"].items()} == {"a": 2.0, "b": 2.0, "c": 2.0}
    # shifted back by 2 s: the span ends 2 s earlier; what would fall before media 0 is left out
    plain = export(folders, tmp_path / "plain")
    assert math.isclose(fixed["media_span"]["end_s"], plain["media_span"]["end_s"] - 2.0, abs_tol=1e-9)
    assert fixed["media_span"]["start_s"] >= 0 and plain["media_span"]["start_s"] == 0


def test_labels_without_rater_metadata_and_one_session_with_several_dials(tmp_path: Path) -> None:
    signal = smooth_signal(3, 60)
    folder = tmp_path / "rec" / "lab-a" / "s-1"
    for i, dial in enumerate(("p01", "p02")):
        write_dial_file(folder, "lab-a", "s-1", dial, rater_samples(signal, 1.0 * i, 0.2, i, 60))
    other = tmp_path / "rec" / "lab-b" / "s-2"
    write_dial_file(other, "lab-b", "s-2", "p01", rater_samples(signal, 0.5, 0.2, 9, 60))
    one = export([folder], tmp_path / "one", "--lag", "auto")
    assert sorted(one["lag"]["raters"]) == ["p01", "p02"]  # one session: the dial ids, as before
    assert abs(one["lag"]["raters"]["p02"]["lag_s"] - 1.0) < 0.1
    both = export([folder, other], tmp_path / "both")
    assert sorted(both["raters"]) == ["lab-a/s-1/p01", "lab-a/s-1/p02", "lab-b/s-2/p01"]
    with (tmp_path / "both" / "samples.csv").open(encoding="utf-8") as handle:
        assert handle.readline().startswith("rater,station,session,dial,")


def test_segments_shift_keep_a_gap_and_say_when_fewer_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = make_sittings(tmp_path)[:2]
    out = tmp_path / "out"
    code = main(
        ["export", *map(str, folders), "--out", str(out), "--rate", "10", "--lag", "auto",
         "--segments", "3", "--window", "10", "--gap", "5", "--summary"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    windows = sorted(summary["segments"], key=lambda w: w["start_s"])
    assert len(windows) == 6
    for a, b in itertools.pairwise(windows):
        assert b["start_s"] - a["end_s"] >= 5 - 1e-9
    # 180 s cannot hold 2 x 10 windows of 10 s that are 20 s apart: the output says so and why
    code = main(
        ["export", *map(str, folders), "--out", str(tmp_path / "few"), "--rate", "10",
         "--segments", "10", "--window", "10", "--gap", "20", "--summary"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    few = json.loads((tmp_path / "few" / "summary.json").read_text())
    assert len(few["segments"]) < 20
    assert few["segment_notes"] and "only" in few["segment_notes"][0] and "20 s minimum gap" in few["segment_notes"][0]
    assert "note: mean: only" in printed


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(daq_cmd(*args), cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60)


def test_different_videos_are_refused_naming_both(tmp_path: Path) -> None:
    folders = make_sittings(tmp_path)[:2]
    other = {"name": "session-08.mp4", "size": 99, "sha256": "cd" * 32}
    write_summary(folders[1], "lab-a", folders[1].name, ["p07"], rater="therapist", video=other)
    done = run_cli("export", *map(str, folders), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2
    assert "different videos" in done.stderr
    assert "session-07.mp4" in done.stderr and "session-08.mp4" in done.stderr and "--force" in done.stderr
    forced = run_cli("export", *map(str, folders), "--out", str(tmp_path / "out"), "--force", "--summary", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "combined because of --force" in forced.stdout


def test_sittings_of_daq_rate_are_matched_and_labelled_by_their_sitting_json(tmp_path: Path) -> None:
    """`daq rate` writes <session>/sitting.json (daq.study.sitting): its video, rater and dimension are
    what `daq export` matches and labels by; another video is refused naming both files."""
    from daq.study.sitting import VideoId, write_json_atomic

    folders = []
    for i, rater in enumerate(("client", "therapist")):
        session = f"s-2026120{i + 1}T100000Z-r{i}"
        folder = tmp_path / "rec" / "lab-a" / session
        write_dial_file(folder, "lab-a", session, "p07", [(k, k * 0.5, float(k % 5)) for k in range(40)])
        video = VideoId("session-07.mp4", "/videos/session-07.mp4", 1234, "ab" * 32)
        sitting = {"v": 1, "rater": rater, "dimension": "helpfulness", "dial": "p07", "video": video.as_json()}
        write_json_atomic(folder / "sitting.json", sitting)
        folders.append(folder)
    summary = export(folders, tmp_path / "out")
    assert sorted(summary["raters"]) == ["client", "therapist"]
    assert {r["dimension"] for r in summary["raters"].values()} == {"helpfulness"}
    assert summary["video"] == {"name": "session-07.mp4", "size": 1234, "sha256": "ab" * 32}
    other = VideoId("session-08.mp4", "/videos/session-08.mp4", 99, "cd" * 32)
    write_json_atomic(folders[1] / "sitting.json", {"rater": "therapist", "dial": "p07", "video": other.as_json()})
    done = run_cli("export", *map(str, folders), "--out", str(tmp_path / "out2"), cwd=tmp_path)
    assert done.returncode == 2
    assert "session-07.mp4" in done.stderr and "session-08.mp4" in done.stderr


def test_empty_or_corrupt_session_folder_is_a_clear_error(tmp_path: Path) -> None:
    good = make_sittings(tmp_path)[0]
    empty = tmp_path / "rec" / "lab-a" / "empty"
    empty.mkdir(parents=True)
    corrupt = tmp_path / "rec" / "lab-a" / "corrupt"
    corrupt.mkdir()
    (corrupt / "p07.csv").write_text("# dialdaq recording\nboot,seq,t_ns\nb1,x,1\n")
    bad_json = tmp_path / "rec" / "lab-a" / "bad-json"
    write_dial_file(bad_json, "lab-a", "bad-json", "p07", [(1, 0.0, 1.0), (2, 0.1, 2.0)])
    (bad_json / "summary.json").write_text("{not json")
    cases = [
        (empty, "no dial files"),
        (corrupt, "missing column"),
        (bad_json, "summary.json: not readable as JSON"),
        (tmp_path / "nowhere", "not a folder"),
    ]
    for folder, message in cases:
        done = run_cli("export", str(good), str(folder), "--out", str(tmp_path / "out"), cwd=tmp_path)
        assert done.returncode == 2, (folder, done.stdout)
        assert message in done.stderr and str(folder) in done.stderr, done.stderr
    done = run_cli("export", str(good), str(good), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2 and "given twice" in done.stderr
    done = run_cli("export", str(good), str(empty), cwd=tmp_path)
    assert done.returncode == 2 and "give --out" in done.stderr


def test_video_identity_matching() -> None:
    from daq.export.sittings import VideoIdentity

    a = VideoIdentity("a.mp4", 10, "ab")
    assert a.same_video(VideoIdentity("renamed.mp4", 10, "AB".lower()))  # the hash decides
    assert not a.same_video(VideoIdentity("a.mp4", 10, "cd"))
    assert a.same_video(VideoIdentity("a.mp4", 10, None))  # no hash on one side: name and size
    assert not a.same_video(VideoIdentity("a.mp4", 11, None))
    assert VideoIdentity.parse({}, "x") is None and VideoIdentity.parse(None, "x") is None
    with pytest.raises(ExportError, match="not an object"):
        VideoIdentity.parse("a.mp4", "x")


def test_refusals_name_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = make_sittings(tmp_path)[:1]
    two = make_sittings(tmp_path)[:2]
    cases = [
        (one, ["--lag", "auto"], "--lag auto needs at least two raters"),
        (two, ["--lag", "soon"], "--lag soon: give 'auto' or a number of seconds"),
        (two, ["--lag", "-1"], "--lag -1: give a lag from 0 to 60 seconds"),
        (two, ["--target", "nobody"], "--target 'nobody': not one of the raters: client, therapist"),
        (two, ["--target", "client", "--epoch", "0"], "--epoch 0: give a length above 0 seconds"),
        (two, ["--segments", "2", "--window", "10", "--gap", "-1"], "--gap -1: give 0 or more seconds"),
    ]
    for folders, args, message in cases:
        code = main(["export", *map(str, folders), "--out", str(tmp_path / "out"), "--rate", "10", *args])
        assert code == 2, args
        assert message in capsys.readouterr().err, args


def test_labels_that_collide_get_their_source(tmp_path: Path) -> None:
    lags = {"observer": 0.0, "client": 1.0}
    folders = make_sittings(tmp_path, lags=lags)
    write_summary(folders[1], "lab-a", folders[1].name, ["p07"], rater="observer", video=VIDEO)
    summary = export(folders, tmp_path / "out")
    assert sorted(summary["raters"]) == sorted(f"observer (lab-a/{f.name}/p07)" for f in folders)


def test_box_means_are_the_held_signals_time_weighted_means() -> None:
    from daq.export.lag import box_means
    from daq.export.resample import HeldSignal, Segment

    signal = HeldSignal([Segment(0.0, 1.0, 2.0), Segment(1.0, 1.5, 4.0), Segment(2.0, 3.0, 6.0)])
    centres = np.array([0.5, 1.0, 1.75, 2.6, 5.0])
    got = box_means(signal, centres, 1.0)
    for centre, value in zip(centres, got, strict=True):
        mean, covered = signal.mean_over(centre - 0.5, centre + 0.5)
        if covered >= 0.5:
            assert mean is not None and abs(value - mean) < 1e-12, centre
        else:
            assert np.isnan(value), centre


def test_a_dials_sample_phase_is_not_taken_for_lag(tmp_path: Path) -> None:
    """Two raters read at 20 Hz, one 11 ms past the other's readings: the lag found is the true one."""
    lags = {"a": 0.0, "b": 1.1}
    signal = smooth_signal(3, 180)
    folders = []
    for i, (label, lag) in enumerate(lags.items()):
        folder = tmp_path / "rec" / "lab-a" / f"s-{i}"
        write_dial_file(folder, "lab-a", f"s-{i}", "p07", rater_samples(signal, lag, 0.05, i, 180, phase=0.011 * i))
        write_summary(folder, "lab-a", f"s-{i}", ["p07"], rater=label)
        folders.append(folder)
    summary = export(folders, tmp_path / "out", "--lag", "auto")
    assert abs(summary["lag"]["raters"]["b"]["lag_s"] - 1.1) < 0.01
