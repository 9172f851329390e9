"""Per-session summary: per dial coverage, gaps and statistics; agreement across dials (ICC).

Per dial:
- `count`: rows in the file; `count_media`: rows with a media time; statistics (`mean`, `sd` with
  n-1, `min`, `max`) are over the samples WITH a media time, every pass included.
- `grid`: count, mean and SD of the dial's values on the resampled grid (time-weighted, one value
  per grid point; this is what the ICC uses).
- `coverage`: fraction of the session's media span (first to last media_s over all dials) where
  the dial's held signal (see `daq.export.resample`) has a value.
- `seq_gaps`: per boot, ranges of `seq` missing between the first and last seq in the file
  (lost samples), and the gaps the recorder's summary.json reports for this session (a gap just
  before the session's first row is seen only by the recorder): the same gaps the recorder reports.
  Seqs published before the recorder subscribed are no gap (the recorder's `before_subscribe`).
  `media_gaps`: the parts of the media span without a held value.

Agreement (two or more dials), on the resampled grid, over the grid points where EVERY dial has a
value (complete cases), from the two-way ANOVA mean squares of Shrout & Fleiss (1979), with
n grid points (targets) and k dials (judges):

    BMS = k * sum_i (row_mean_i - grand)^2 / (n - 1)        between targets
    JMS = n * sum_j (col_mean_j - grand)^2 / (k - 1)        between judges
    EMS = (SS_total - SS_targets - SS_judges) / ((n - 1)(k - 1))

    ICC(2,1) = (BMS - EMS) / (BMS + (k - 1) EMS + k (JMS - EMS) / n)
        absolute agreement of a single dial (judges a random sample of judges)
    ICC(3,k) = (BMS - EMS) / BMS
        consistency of the mean of the k dials (judges fixed; mean differences between dials ignored)

`agreement` (in `daq.export.agreement`) also gives ICC(2,k), ICC(3,1), Lin's CCC, Krippendorff's
alpha, Cronbach's alpha and the mean pairwise r. `icc` here is the plain-Python ICC kept for callers
without numpy arrays. Grid points of a continuous rating are autocorrelated, so these are
descriptive: no F test or confidence interval is given.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from daq.export.agreement import agreement
from daq.export.reader import DialRecording, Row, SessionRecording
from daq.export.resample import HeldSignal, Resampled, media_span, parse_rate, timecode_at


@dataclass(frozen=True, slots=True)
class Icc:
    n: int  # complete grid points (targets)
    k: int  # dials (judges)
    bms: float
    jms: float
    ems: float
    icc_2_1: float | None
    icc_3_k: float | None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den != 0 and math.isfinite(den) else None


def icc(table: Sequence[Sequence[float]]) -> Icc | None:
    """ICC(2,1) and ICC(3,k) of an n x k table (rows: targets, columns: judges); None when n<2 or k<2."""
    n = len(table)
    k = len(table[0]) if n else 0
    if n < 2 or k < 2:
        return None
    grand = math.fsum(x for row in table for x in row) / (n * k)
    row_means = [math.fsum(row) / k for row in table]
    col_means = [math.fsum(row[j] for row in table) / n for j in range(k)]
    ss_rows = k * math.fsum((m - grand) ** 2 for m in row_means)
    ss_cols = n * math.fsum((m - grand) ** 2 for m in col_means)
    ss_total = math.fsum((x - grand) ** 2 for row in table for x in row)
    ss_error = max(ss_total - ss_rows - ss_cols, 0.0)
    bms = ss_rows / (n - 1)
    jms = ss_cols / (k - 1)
    ems = ss_error / ((n - 1) * (k - 1))
    return Icc(
        n=n,
        k=k,
        bms=bms,
        jms=jms,
        ems=ems,
        icc_2_1=_ratio(bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n),
        icc_3_k=_ratio(bms - ems, bms),
    )


def complete_table(grid: Resampled) -> list[list[float]]:
    """Rows of the grid where every dial has a value."""
    columns = list(grid.values.values())
    out: list[list[float]] = []
    for i in range(len(grid.starts)):
        row = [c[i] for c in columns]
        if all(v is not None for v in row):
            out.append([v for v in row if v is not None])
    return out


def recorded_gaps(recorder_summary: dict[str, Any] | None, dial: str) -> list[tuple[str, int, int]]:
    """(boot, first, last) of each gap the recorder's summary.json gives for `dial`."""
    out: list[tuple[str, int, int]] = []
    for gap in (recorder_summary or {}).get("gaps", []) or []:
        if not isinstance(gap, dict) or gap.get("dial") != dial:
            continue
        for pair in gap.get("missing", []) or []:
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) for v in pair):
                out.append((str(gap.get("boot", "")), pair[0], pair[1]))
    return out


def seq_gaps(rows: Sequence[Row], recorded: Sequence[tuple[str, int, int]] = ()) -> tuple[list[dict[str, Any]], int]:
    """Missing seq ranges per boot and duplicate rows: between the first and last seq present, and
    the `recorded` gaps (the recorder's, `recorded_gaps`) that no row fills."""
    by_boot: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        by_boot[r.boot].append(r.seq)
    ranges: dict[str, list[tuple[int, int]]] = defaultdict(list)
    duplicates = 0
    for boot, seqs in by_boot.items():
        unique = sorted(set(seqs))
        duplicates += len(seqs) - len(unique)
        for a, b in itertools.pairwise(unique):
            if b > a + 1:
                ranges[boot].append((a + 1, b - 1))
    for boot, lo, hi in recorded:
        present = set(by_boot.get(boot, ()))
        if lo <= hi and not any(lo <= s <= hi for s in present):
            ranges[boot].append((lo, hi))
    gaps: list[dict[str, Any]] = []
    for boot in [*by_boot, *(b for b in ranges if b not in by_boot)]:
        merged: list[list[int]] = []
        for lo, hi in sorted(ranges.get(boot, [])):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        gaps += [{"boot": boot, "first": lo, "last": hi, "count": hi - lo + 1} for lo, hi in merged]
    return gaps, duplicates


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "sd": None, "min": None, "max": None}
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
    }


def dial_summary(
    dial: DialRecording,
    signal: HeldSignal,
    grid: Resampled,
    span: tuple[float, float] | None,
    recorder_summary: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rate = grid.rate
    media_values = [r.value for r in dial.rows if r.media_s is not None and math.isfinite(r.media_s)]
    gaps, duplicates = seq_gaps(dial.rows, recorded_gaps(recorder_summary, dial.dial))
    on_grid = [v for v in grid.values.get(dial.dial, []) if v is not None]
    out: dict[str, Any] = {
        "file": dial.path.name,
        "count": len(dial.rows),
        "count_media": len(media_values),
        **_stats(media_values),
        "grid": {
            "count": len(on_grid),
            "mean": statistics.fmean(on_grid) if on_grid else None,
            "sd": statistics.stdev(on_grid) if len(on_grid) > 1 else None,
        },
        "passes": signal.passes,
        "coverage": None,
        "seq_gaps": gaps,
        "missing_samples": sum(g["count"] for g in gaps),
        "duplicates": duplicates,
        "media_gaps": [],
        "scale": dial.scale,
    }
    if span is not None and span[1] > span[0]:
        out["coverage"] = signal.covered(span[0], span[1]) / (span[1] - span[0])
        out["media_gaps"] = [
            {
                "start_s": a,
                "end_s": b,
                "duration_s": b - a,
                "start_timecode": timecode_at(a, rate),
                "end_timecode": timecode_at(b, rate),
            }
            for a, b in signal.empty_intervals(span[0], span[1])
        ]
    return out


def session_summary(session: SessionRecording, signals: dict[str, HeldSignal], grid: Resampled) -> dict[str, Any]:
    span = media_span(session)
    rate = parse_rate(session.timecode_rate)
    grid_info: dict[str, Any] = {
        "kind": grid.kind,
        "step_s": grid.step,
        "max_hold_s": grid.max_hold,
        "points": len(grid.starts),
    }
    if grid.kind == "rate":
        grid_info["rate_hz"] = grid.rate_hz
    return {
        "station": session.station,
        "session": session.session,
        "source": str(session.folder),
        "timecode_rate": session.timecode_rate or None,
        "media_span": None
        if span is None
        else {
            "start_s": span[0],
            "end_s": span[1],
            "duration_s": span[1] - span[0],
            "start_timecode": timecode_at(span[0], rate),
            "end_timecode": timecode_at(span[1], rate),
        },
        "grid": grid_info,
        "dials": {
            d.dial: dial_summary(d, signals[d.dial], grid, span, session.recorder_summary) for d in session.dials
        },
        "agreement": agreement(grid),
    }


def _num(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a readable table."""
    lines: list[str] = []
    span = summary["media_span"]
    grid = summary["grid"]
    step = f"{grid['rate_hz']:g} Hz" if grid["kind"] == "rate" else f"bins of {grid['step_s']:g} s"
    where = (
        "no media time"
        if span is None
        else f"media {span['start_timecode'] or _num(span['start_s'])} .. {span['end_timecode'] or _num(span['end_s'])}"
        f" ({span['duration_s']:.1f} s)"
    )
    sittings = summary.get("sittings", [])
    several = len(sittings) > 1
    if several:
        names = ", ".join(f"{x['station']}/{x['session']}" for x in sittings)
        lines.append(f"{len(sittings)} sittings ({names}), {len(summary['dials'])} raters: {where}")
    else:
        lines.append(f"session {summary['session']} (station {summary['station']}): {where}")
    lines.append(f"grid: {step}, max hold {grid['max_hold_s']:g} s, {grid['points']} points")
    head = (
        "rater" if several else "dial",
        "samples",
        "media",
        "coverage",
        "mean",
        "sd",
        "min",
        "max",
        "missing",
        "empty s",
    )
    rows = [head]
    for dial, d in summary["dials"].items():
        rows.append(
            (
                dial,
                str(d["count"]),
                str(d["count_media"]),
                "-" if d["coverage"] is None else f"{100 * d['coverage']:.2f}%",
                _num(d["mean"]),
                _num(d["sd"]),
                _num(d["min"]),
                _num(d["max"]),
                str(d["missing_samples"]),
                f"{sum(g['duration_s'] for g in d['media_gaps']):.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    agree = summary["agreement"]
    if agree is not None:
        who = "raters" if several else "dials"
        lines.append(
            f"agreement of {agree['k']} {who} over {agree['complete_points']} complete grid points: "
            f"ICC(2,1) = {_num(agree['icc_2_1'])}, ICC(3,k) = {_num(agree['icc_3_k'])}"
        )
        lines += format_agreement_details(agree)
    return "\n".join(lines)


def format_agreement_details(agree: dict[str, Any]) -> list[str]:
    """The rest of the agreement figures, one line each."""
    if agree.get("icc_2_k") is None and agree.get("ccc_mean") is None:
        return ["  (fewer than 2 grid points where all raters have a value)"]
    lines = [
        "  ICC(2,1) = ICC(A,1) {}, ICC(2,k) = ICC(A,k) {}, ICC(3,1) = ICC(C,1) {}, ICC(3,k) = ICC(C,k) {}".format(
            *(_num(agree.get(key)) for key in ("icc_2_1", "icc_2_k", "icc_3_1", "icc_3_k"))
        ),
        f"  Lin's CCC mean {_num(agree.get('ccc_mean'))}, Krippendorff's alpha (interval) "
        f"{_num(agree.get('krippendorff_alpha'))}, Cronbach's alpha {_num(agree.get('cronbach_alpha'))}, "
        f"mean pairwise r {_num(agree.get('pearson_mean'))}",
    ]
    for pair, r in zip(agree.get("ccc", []), agree.get("pearson", []), strict=False):
        lines.append(f"    {pair['a']} ~ {pair['b']}: CCC {_num(pair['ccc'])}, r {_num(r['r'])}")
    return lines
