"""The report's inline CSS and script (kept here so that report.py holds only the page's structure).

The script only reads the page's own JSON (`<script id="data">`) and moves a cursor with a readout
of the timecode and each rater's value under the mouse; it loads nothing.
"""

from __future__ import annotations

CSS = """
:root { --fg: #111827; --muted: #6b7280; --grid: #e5e7eb; --helpful: #16a34a; --hindering: #dc2626; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1180px; padding: 1rem 1.4rem 3rem; color: var(--fg); background: #fff;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; line-height: 1.45; }
h1 { font-size: 1.5rem; margin: 0.2rem 0; } h2 { font-size: 1.2rem; margin: 1.6rem 0 0.5rem; }
h3 { font-size: 1rem; margin: 1rem 0 0.3rem; }
.muted { color: var(--muted); } .note { color: #92400e; background: #fffbeb; padding: 0.3rem 0.6rem; margin: 0.3rem 0; }
ul.sittings { margin: 0.2rem 0; padding-left: 1.2rem; font-size: 0.9rem; }
.legend { display: flex; flex-wrap: wrap; gap: 0.4rem 1rem; font-size: 0.9rem; margin-bottom: 0.3rem; }
.key { display: inline-flex; align-items: center; gap: 0.35rem; }
.swatch { display: inline-block; width: 1.1rem; height: 0.6rem; border-radius: 2px; }
.swatch.mean { background: #111827; } .swatch.helpful { background: rgba(22,163,74,.25); }
.swatch.hindering { background: rgba(220,38,38,.22); }
#readout { font-variant-numeric: tabular-nums; font-size: 0.9rem; min-height: 1.3rem; }
svg#chart { display: block; border: 1px solid var(--grid); background: #fff; }
svg .grid { stroke: var(--grid); stroke-width: 1; }
svg .tick, svg .lane { font-size: 11px; fill: var(--muted); }
svg line.lane { stroke: var(--grid); }
svg .trace-line { stroke-width: 1.3; stroke-opacity: 0.9; }
svg .band { fill: rgba(17,24,39,0.12); stroke: none; }
svg .segment rect { stroke: none; } svg .segment text { font-size: 12px; font-weight: 700; }
svg .segment.helpful rect { fill: rgba(22,163,74,0.16); } svg .segment.helpful text { fill: var(--helpful); }
svg .segment.hindering rect { fill: rgba(220,38,38,0.14); } svg .segment.hindering text { fill: var(--hindering); }
svg .event.pause rect { fill: #6b7280; } svg .event.seek line { stroke: #7c3aed; stroke-width: 2; }
svg .event.seek circle { fill: #7c3aed; }
svg .event.mark line { stroke: #0f766e; stroke-dasharray: 4 3; }
svg .event.mark text { font-size: 11px; fill: #0f766e; }
svg #cursor { stroke: #111827; stroke-width: 1; stroke-dasharray: 2 2; }
table { border-collapse: collapse; margin: 0.4rem 0 0.8rem; font-size: 0.92rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--grid); padding: 0.25rem 0.7rem; text-align: left; }
th { font-weight: 600; background: #f9fafb; }
@media print { svg #cursor, #readout { display: none; } }
"""

SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("data").textContent || "{}");
  var svg = document.getElementById("chart");
  var readout = document.getElementById("readout");
  var cursor = document.getElementById("cursor");
  if (!svg || !data.times || !data.times.length) { return; }
  function nearest(t) {
    var lo = 0, hi = data.times.length - 1;
    while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (data.times[mid] <= t) { lo = mid; } else { hi = mid; } }
    return (t - data.times[lo] <= data.times[hi] - t) ? lo : hi;
  }
  svg.addEventListener("mousemove", function (ev) {
    var box = svg.getBoundingClientRect();
    var x = (ev.clientX - box.left) / box.width * data.width;
    if (x < data.x0 || x > data.x1) { cursor.setAttribute("visibility", "hidden"); return; }
    var t = data.lo + (x - data.x0) / (data.x1 - data.x0) * (data.hi - data.lo);
    var i = nearest(t);
    cursor.setAttribute("x1", x); cursor.setAttribute("x2", x); cursor.setAttribute("visibility", "visible");
    var parts = [(data.timecodes[i] || data.times[i].toFixed(2) + " s")];
    data.raters.forEach(function (name) {
      var v = data.values[name][i];
      parts.push(name + " " + (v === null ? "–" : v.toFixed(2)));
    });
    var m = data.mean[i];
    parts.push("mean " + (m === null || m === undefined ? "–" : m.toFixed(2)));
    readout.textContent = parts.join("  ·  ");
  });
  svg.addEventListener("mouseleave", function () { cursor.setAttribute("visibility", "hidden"); });
})();
"""
