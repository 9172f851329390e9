"""`daq report`: one self-contained HTML file of an analysis (inline SVG, CSS and a little JS; no network).

On media time labelled by timecode: each rater's trace, the group mean with a +/- 1 SD band (across
the raters with a value at each grid point), the segments shaded and numbered (the numbers of the
segments table), marks, and each sitting's pauses and seeks in a lane of its own below. Then the
tables: raters and lags, agreement, empathic accuracy, segments, interview answers, notes. Traces
longer than MAX_POINTS grid points are drawn at every n-th point (the tables use every point).
"""

from __future__ import annotations

import html
import itertools
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from daq.export.analysis import Analysis
from daq.export.report_data import ClockEvent, interviews, read_events
from daq.export.report_style import CSS, SCRIPT
from daq.export.resample import timecode_at

MAX_POINTS = 3000
WIDTH, HEIGHT = 1100, 380
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 34
LANE = 22
COLOURS = ("#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626", "#4b5563")
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


class Chart:
    """Media time [lo, hi] and the rating range [ymin, ymax] onto the SVG's pixels."""

    def __init__(self, lo: float, hi: float, ymin: float, ymax: float, lanes: int) -> None:
        self.lo, self.hi = lo, hi if hi > lo else lo + 1
        self.ymin, self.ymax = ymin, ymax if ymax > ymin else ymin + 1
        self.plot_h = HEIGHT - TOP - BOTTOM
        self.height = HEIGHT + lanes * LANE + (8 if lanes else 0)

    def x(self, t: float) -> float:
        return LEFT + (t - self.lo) / (self.hi - self.lo) * (WIDTH - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return TOP + (self.ymax - v) / (self.ymax - self.ymin) * self.plot_h


def value_range(analysis: Analysis) -> tuple[float, float]:
    scales = [r.recording.scale for r in analysis.sittings.raters]
    lows = {s.get("min") for s in scales}
    highs = {s.get("max") for s in scales}
    if len(lows) == 1 and len(highs) == 1:
        lo, hi = lows.pop(), highs.pop()
        if isinstance(lo, int | float) and isinstance(hi, int | float) and lo != hi:
            return (float(min(lo, hi)), float(max(lo, hi)))
    values = [v for column in analysis.grid.values.values() for v in column if v is not None]
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or 1.0
    return lo - pad, hi + pad


def runs(times: Sequence[float], values: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    """Consecutive (t, v) with a value, split where a value is missing."""
    out: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for t, v in zip(times, values, strict=True):
        if v is None:
            if current:
                out.append(current)
            current = []
        else:
            current.append((t, v))
    if current:
        out.append(current)
    return out


def polyline(chart: Chart, points: list[tuple[float, float]], cls: str, colour: str, extra: str = "") -> str:
    coords = " ".join(f"{chart.x(t):.1f},{chart.y(v):.1f}" for t, v in points)
    return f'<polyline class="{cls}" points="{coords}" stroke="{colour}" fill="none"{extra}/>'


def ticks(chart: Chart, analysis: Analysis) -> str:
    span = chart.hi - chart.lo
    step = next((s for s in TICK_STEPS if span / s <= 10), TICK_STEPS[-1])
    parts: list[str] = []
    t = math.ceil(chart.lo / step) * step
    while t <= chart.hi + 1e-9:
        x = chart.x(t)
        label = timecode_at(t, analysis.grid.rate) or f"{int(t // 60):02d}:{t % 60:04.1f}"
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + chart.plot_h}"/>'
            f'<text class="tick" x="{x:.1f}" y="{TOP + chart.plot_h + 16}" text-anchor="middle">{esc(label)}</text>'
        )
        t += step
    for i in range(5):
        v = chart.ymin + (chart.ymax - chart.ymin) * i / 4
        y = chart.y(v)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>'
        )
    return "".join(parts)


def band(chart: Chart, times: list[float], matrix: np.ndarray) -> tuple[str, list[float | None]]:
    """The group mean's polyline(s) and its +/- 1 SD band."""
    count = np.sum(~np.isnan(matrix), axis=0)
    mean = np.where(count > 0, np.nansum(matrix, axis=0) / np.maximum(count, 1), np.nan)
    deviation = np.where(count > 0, np.sqrt(np.nansum((matrix - mean) ** 2, axis=0) / np.maximum(count - 1, 1)), 0.0)
    means: list[float | None] = [None if math.isnan(m) else float(m) for m in mean]
    parts: list[str] = []
    start = None
    for i in range(len(times) + 1):
        present = i < len(times) and not math.isnan(mean[i])
        if present and start is None:
            start = i
        elif not present and start is not None:
            upper = [(times[j], float(mean[j] + deviation[j])) for j in range(start, i)]
            lower = [(times[j], float(mean[j] - deviation[j])) for j in reversed(range(start, i))]
            coords = " ".join(f"{chart.x(t):.1f},{chart.y(v):.1f}" for t, v in upper + lower)
            parts.append(f'<polygon class="band" points="{coords}"/>')
            start = None
    for run in runs(times, means):
        parts.append(polyline(chart, run, "mean", "#111827", ' stroke-width="2.5"'))
    return "".join(parts), means


def segments_svg(chart: Chart, analysis: Analysis) -> str:
    parts: list[str] = []
    for number, w in enumerate(analysis.windows, start=1):
        x0, x1 = chart.x(w.start_s), chart.x(w.end_s)
        parts.append(
            f'<g class="segment {w.kind}" data-number="{number}" data-kind="{w.kind}" data-rank="{w.rank}">'
            f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1):.1f}" height="{chart.plot_h}"/>'
            f'<text x="{(x0 + x1) / 2:.1f}" y="{TOP + 14}" text-anchor="middle">{number}</text>'
            f"<title>segment {number}: {w.kind} #{w.rank}, {esc(w.start_timecode or w.start_s)} .. "
            f"{esc(w.end_timecode or w.end_s)}, mean {w.mean:.3f}</title></g>"
        )
    return "".join(parts)


def events_svg(chart: Chart, events: list[ClockEvent], sittings: list[str]) -> str:
    parts: list[str] = []
    base = TOP + chart.plot_h + BOTTOM
    for lane, name in enumerate(sittings):
        y = base + lane * LANE + 12
        parts.append(
            f'<text class="lane" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{esc(name.split("/")[-1])}</text>'
        )
        parts.append(f'<line class="lane" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>')
        for e in (e for e in events if e.sitting == name):
            x = chart.x(e.media_s)
            if e.kind == "pause":
                parts.append(
                    f'<g class="event pause"><rect x="{x - 4:.1f}" y="{y - 6}" width="3" height="12"/>'
                    f'<rect x="{x + 1:.1f}" y="{y - 6}" width="3" height="12"/>'
                    f"<title>{esc(name)}: paused at {e.media_s:.2f} s for {e.duration_s or 0:.1f} s</title></g>"
                )
            elif e.kind == "seek" and e.to_s is not None:
                x2 = chart.x(e.to_s)
                parts.append(
                    f'<g class="event seek"><line x1="{x:.1f}" x2="{x2:.1f}" y1="{y}" y2="{y}"/>'
                    f'<circle cx="{x2:.1f}" cy="{y}" r="3.5"/>'
                    f"<title>{esc(name)}: seek from {e.media_s:.2f} s to {e.to_s:.2f} s</title></g>"
                )
            elif e.kind == "mark":
                parts.append(
                    f'<g class="event mark"><line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{y}"/>'
                    f'<text x="{x + 3:.1f}" y="{TOP + 26}">{esc(e.label)}</text>'
                    f"<title>{esc(name)}: mark {esc(e.label)} at {e.media_s:.2f} s</title></g>"
                )
    return "".join(parts)


def chart_svg(analysis: Analysis, events: list[ClockEvent]) -> tuple[str, dict[str, Any]]:
    grid = analysis.grid
    labels = grid.dials
    stride = max(1, math.ceil(len(grid.starts) / MAX_POINTS))
    times = grid.starts[::stride]
    sittings = [f"{s.station}/{s.session}" for s in analysis.sittings.sittings]
    lo, hi = (times[0], times[-1]) if times else (0.0, 1.0)
    ymin, ymax = value_range(analysis)
    chart = Chart(lo, hi, ymin, ymax, len(sittings))
    matrix = np.array(
        [[np.nan if v is None else v for v in grid.values[label][::stride]] for label in labels], dtype=float
    ).reshape(len(labels), len(times))
    body = [ticks(chart, analysis), segments_svg(chart, analysis)]
    mean_svg, means = band(chart, times, matrix) if labels and times else ("", [])
    body.append(mean_svg)
    for i, label in enumerate(labels):
        colour = COLOURS[i % len(COLOURS)]
        lines = "".join(polyline(chart, run, "trace-line", colour) for run in runs(times, grid.values[label][::stride]))
        body.append(f'<g class="trace" data-rater="{esc(label)}">{lines}</g>')
    body.append(events_svg(chart, events, sittings))
    body.append(f'<line id="cursor" x1="0" x2="0" y1="{TOP}" y2="{TOP + chart.plot_h}" visibility="hidden"/>')
    svg = (
        f'<svg id="chart" viewBox="0 0 {WIDTH} {chart.height}" width="100%" role="img" '
        f'aria-label="ratings on media time">{"".join(body)}</svg>'
    )
    data = {
        "x0": LEFT,
        "x1": WIDTH - RIGHT,
        "width": WIDTH,
        "lo": chart.lo,
        "hi": chart.hi,
        "times": times,
        "timecodes": [timecode_at(t, grid.rate) for t in times],
        "raters": labels,
        "colours": [COLOURS[i % len(COLOURS)] for i in range(len(labels))],
        "values": {label: grid.values[label][::stride] for label in labels},
        "mean": means,
    }
    return svg, data


def table(head: Sequence[str], rows: Sequence[Sequence[Any]], cls: str) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>'


def raters_table(analysis: Analysis) -> str:
    est = analysis.lag_estimates or {}
    rows = []
    for r, colour in zip(analysis.sittings.raters, itertools.cycle(COLOURS), strict=False):
        e = est.get(r.label)
        cells = [r.label, r.source, r.dimension or "", f"{analysis.lags_used.get(r.label, 0.0):.2f}"]
        cells.append(num(e.r) if e else "")
        swatch = f'<td><span class="swatch" style="background:{colour}"></span></td>'
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + swatch + "</tr>")
    head = "".join(
        f"<th>{h}</th>" for h in ("rater", "station/session/dial", "dimension", "lag s", "r with others", "")
    )
    return f'<table class="raters"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def agreement_html(summary: dict[str, Any]) -> str:
    agree = summary.get("agreement")
    if not agree:
        return '<p class="muted">Agreement needs two or more raters.</p>'
    rows = [
        ["ICC(2,1)", "ICC(A,1)", "absolute agreement, single rater", num(agree.get("icc_2_1"))],
        ["ICC(2,k)", "ICC(A,k)", "absolute agreement, mean of k raters", num(agree.get("icc_2_k"))],
        ["ICC(3,1)", "ICC(C,1)", "consistency, single rater", num(agree.get("icc_3_1"))],
        ["ICC(3,k)", "ICC(C,k)", "consistency, mean of k raters", num(agree.get("icc_3_k"))],
        ["Lin's CCC", "", "mean over pairs", num(agree.get("ccc_mean"))],
        ["Krippendorff's alpha", "", "interval metric", num(agree.get("krippendorff_alpha"))],
        ["Cronbach's alpha", "", "", num(agree.get("cronbach_alpha"))],
        ["Pearson r", "", "mean over pairs", num(agree.get("pearson_mean"))],
    ]
    main = table(("statistic", "McGraw & Wong", "what", "value"), rows, "agreement")
    pairs = [
        [c["a"], c["b"], num(c["ccc"]), num(r["r"])]
        for c, r in zip(agree.get("ccc", []), agree.get("pearson", []), strict=False)
    ]
    head = f"<p>{agree['k']} raters over {agree['complete_points']} grid points where all have a value.</p>"
    return head + main + table(("rater", "rater", "CCC", "r"), pairs, "pairs")


def accuracy_html(summary: dict[str, Any]) -> str:
    acc = summary.get("accuracy")
    if not acc:
        return '<p class="muted">No target given (<code>--target RATER</code>).</p>'
    rows = [
        [row["rater"], num(row["r"]), row["points"], num(row["mean_r"]), row["epochs"], row["epochs_skipped"]]
        for row in acc["raters"]
    ]
    head = f"<p>Against <b>{esc(acc['target'])}</b>, epochs of {acc['epoch_s']:g} s averaged through Fisher's z.</p>"
    return head + table(("rater", "r (whole)", "points", "mean r (epochs)", "epochs", "skipped"), rows, "accuracy")


def segments_html(analysis: Analysis) -> str:
    if not analysis.windows:
        return '<p class="muted">No segments.</p>'
    rows = [
        [
            n,
            w.target,
            w.kind,
            w.rank,
            w.start_timecode or f"{w.start_s:.2f}",
            w.end_timecode or f"{w.end_s:.2f}",
            f"{w.mean:.3f}",
        ]
        for n, w in enumerate(analysis.windows, start=1)
    ]
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in analysis.segment_notes)
    return table(("#", "of", "kind", "rank", "from", "to", "mean"), rows, "segments") + notes


def interview_html(analysis: Analysis) -> str:
    found = interviews(analysis.sittings.sittings)
    if not found:
        return '<p class="muted">No interview answers (<code>interview.json</code>) in these sittings.</p>'
    parts: list[str] = []
    for sitting, answers in found:
        rows = []
        for a in answers:
            where = " .. ".join(str(a.get(k) or "") for k in ("start_timecode", "end_timecode") if a.get(k))
            if not where and a.get("start_s") is not None:
                where = f"{a.get('start_s')} .. {a.get('end_s')} s"
            tags = a.get("tags", a.get("categories", []))
            rows.append(
                [
                    f"{a.get('kind', '')} {('#' + str(a['rank'])) if a.get('rank') is not None else ''}".strip(),
                    where,
                    ", ".join(map(str, tags)) if isinstance(tags, list) else str(tags),
                    str(a.get("answer", a.get("text", ""))),
                ]
            )
        parts.append(f"<h3>{esc(sitting)}</h3>" + table(("segment", "media time", "tags", "answer"), rows, "interview"))
    return "".join(parts)


def render(analysis: Analysis, summary: dict[str, Any], title: str = "dialdaq report") -> str:
    """The whole page."""
    events = read_events(analysis.sittings.sittings)
    svg, data = chart_svg(analysis, events) if analysis.grid.starts else ("<p>No media time to draw.</p>", {})
    video = analysis.sittings.video
    span = summary.get("media_span") or {}
    sittings = "".join(
        f"<li>{esc(s.station)}/{esc(s.session)} <span class=muted>({esc(s.folder)})</span></li>"
        for s in analysis.sittings.sittings
    )
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in summary.get("notes", []))
    legend = "".join(
        f'<span class="key"><span class="swatch" style="background:{colour}"></span>{esc(label)}</span>'
        for label, colour in zip(analysis.grid.dials, itertools.cycle(COLOURS), strict=False)
    )
    where = f"{span.get('start_timecode') or ''} .. {span.get('end_timecode') or ''}"
    grid = summary["grid"]
    step = f"{grid['rate_hz']:g} Hz" if grid["kind"] == "rate" else f"bins of {grid['step_s']:g} s"
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>{esc(title)}</h1>
<p>Video: <b>{esc(video.describe()) if video else "not recorded"}</b> &middot; media {esc(where)}
&middot; grid {esc(step)}</p>
<ul class="sittings">{sittings}</ul></header>
<section id="traces"><h2>Ratings on media time</h2>
<div class="legend">{legend}<span class="key"><span class="swatch mean"></span>group mean &plusmn; 1 SD</span>
<span class="key"><span class="swatch helpful"></span>helpful segment</span>
<span class="key"><span class="swatch hindering"></span>hindering segment</span></div>
<div id="readout" class="muted">&nbsp;</div>
{svg}
<p class="muted">Lanes below the traces: each sitting's pauses (&#8214;) and seeks (a line to &bull;) as read from its
samples; dashed lines are marks.</p></section>
<section id="lags"><h2>Raters and lags</h2>{raters_table(analysis)}</section>
<section id="agreement"><h2>Agreement</h2>{agreement_html(summary)}</section>
<section id="accuracy"><h2>Empathic accuracy</h2>{accuracy_html(summary)}</section>
<section id="segments"><h2>Segments</h2>{segments_html(analysis)}</section>
<section id="interview"><h2>Interview</h2>{interview_html(analysis)}</section>
<section id="notes"><h2>Notes</h2>{notes}</section>
<script id="data" type="application/json">{payload}</script>
<script>{SCRIPT}</script>
</body></html>
"""
