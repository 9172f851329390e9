"""One analysis of one or more sittings: read, shift by lag, resample, agreement, accuracy, segments.

`analyse(folders, options)` is what `daq export` and `daq report` both run; `Analysis` holds every
intermediate result (the raters, the lags used, the held signals and the grid) so that each output
(tables, summary.json, the HTML report) is drawn from the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daq.export.accuracy import DEFAULT_EPOCH_S, empathic_accuracy
from daq.export.agreement import AUTOCORRELATION_NOTE
from daq.export.lag import DEFAULT_MAX_LAG_S, LagEstimate, estimate_lags
from daq.export.reader import ExportError, SessionRecording
from daq.export.resample import DEFAULT_MAX_HOLD_S, HeldSignal, Resampled, held_signals, resample
from daq.export.segments import Window, select_segments
from daq.export.sittings import Sittings, combined_session, read_sittings
from daq.export.summary import session_summary

LagSpec = Literal["auto"] | float | None


def parse_lag(text: str | None) -> LagSpec:
    if text is None:
        return None
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError as exc:
        raise ExportError(f"--lag {text}: give 'auto' or a number of seconds, e.g. --lag 2") from exc
    if not (math.isfinite(value) and 0 <= value <= 60):
        raise ExportError(f"--lag {text}: give a lag from 0 to 60 seconds")
    return value


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    rate_hz: float | None = 10.0
    bin_s: float | None = None
    max_hold: float = DEFAULT_MAX_HOLD_S
    lag: LagSpec = None
    lag_base: float = 0.0
    max_lag: float = DEFAULT_MAX_LAG_S
    target: str | None = None
    epoch_s: float = DEFAULT_EPOCH_S
    force: bool = False
    segments: int | None = None
    window_s: float | None = None
    gap_s: float = 0.0
    segments_of: str = "mean"


@dataclass(slots=True)
class Analysis:
    options: AnalysisOptions
    sittings: Sittings
    combined: SessionRecording
    lags_used: dict[str, float]
    lag_estimates: dict[str, LagEstimate] | None
    signals: dict[str, HeldSignal]
    grid: Resampled
    grid_made: bool
    windows: list[Window] = field(default_factory=list)
    segment_notes: list[str] = field(default_factory=list)
    accuracy: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def lag_json(self) -> dict[str, Any]:
        spec = self.options.lag
        method = (
            "estimated: the shift in 0..max_lag s maximising r with the mean of the others (see daq.export.lag)"
            if spec == "auto"
            else "given (--lag)"
            if spec is not None
            else "none"
        )
        out: dict[str, Any] = {"mode": "auto" if spec == "auto" else "fixed", "method": method, "raters": {}}
        if spec == "auto":
            out["base_s"] = self.options.lag_base
            out["max_lag_s"] = self.options.max_lag
        for label, lag in self.lags_used.items():
            entry: dict[str, Any] = {"lag_s": lag}
            if self.lag_estimates is not None:
                est = self.lag_estimates[label]
                entry["r"] = est.r
                entry["points"] = est.points
            out["raters"][label] = entry
        return out

    def summary(self) -> dict[str, Any]:
        summary = session_summary(self.combined, self.signals, self.grid)
        summary["sittings"] = [
            {"folder": str(s.folder), "station": s.station, "session": s.session} for s in self.sittings.sittings
        ]
        summary["video"] = None if self.sittings.video is None else self.sittings.video.as_dict()
        summary["raters"] = {
            r.label: {
                "station": r.station,
                "session": r.session,
                "dial": r.dial,
                "folder": str(r.sitting.folder),
                "dimension": r.dimension,
            }
            for r in self.sittings.raters
        }
        summary["lag"] = self.lag_json()
        if self.accuracy is not None:
            summary["accuracy"] = self.accuracy
        if self.segment_notes:
            summary["segment_notes"] = self.segment_notes
        summary["notes"] = [*self.notes, AUTOCORRELATION_NOTE]
        return summary

    def format_extra(self) -> list[str]:
        """Lags, accuracy and notes as readable lines (after `format_summary`)."""
        lines: list[str] = []
        if self.options.lag is not None:
            lines.append("lags (each trace shifted back by its lag before resampling):")
            for label, lag in self.lags_used.items():
                est = self.lag_estimates[label] if self.lag_estimates else None
                reached = (
                    f"  r with the mean of the others {est.r:.3f} over {est.points} points"
                    if est is not None and est.r is not None
                    else ""
                )
                lines.append(f"  {label:<24} {lag:6.2f} s{reached}")
        if self.accuracy is not None:
            target = self.accuracy["target"]
            lines.append(f"empathic accuracy against {target} (epochs of {self.accuracy['epoch_s']:g} s, Fisher z):")
            for row in self.accuracy["raters"]:
                r = "-" if row["r"] is None else f"{row['r']:.3f}"
                mean = "-" if row["mean_r"] is None else f"{row['mean_r']:.3f}"
                lines.append(
                    f"  {row['rater']:<24} r {r} over {row['points']} points; epoch mean r {mean} over "
                    f"{row['epochs']} epochs ({row['epochs_skipped']} skipped)"
                )
        for note in [*self.notes, AUTOCORRELATION_NOTE]:
            lines.append(f"note: {note}")
        return lines


def analyse(folders: list[Path], options: AnalysisOptions) -> Analysis:
    sittings = read_sittings(folders, force=options.force)
    notes = list(sittings.notes)
    labels = [r.label for r in sittings.raters]
    base = combined_session(sittings)
    estimates: dict[str, LagEstimate] | None = None
    if options.lag == "auto":
        estimates, lag_notes = estimate_lags(
            held_signals(base, options.max_hold), max_lag=options.max_lag, base=options.lag_base
        )
        notes += lag_notes
        lags = {label: estimates[label].lag_s for label in labels}
    elif options.lag is not None:
        lags = dict.fromkeys(labels, float(options.lag))
    else:
        lags = dict.fromkeys(labels, 0.0)
    combined = combined_session(sittings, lags) if any(lags.values()) else base
    signals = held_signals(combined, options.max_hold)
    grid_made = options.rate_hz is not None or options.bin_s is not None
    if grid_made:
        grid = resample(
            combined, rate_hz=options.rate_hz, bin_s=options.bin_s, max_hold=options.max_hold, signals=signals
        )
    else:
        grid = Resampled("rate", 1.0, options.max_hold, [], {label: [] for label in labels})
    result = Analysis(options, sittings, combined, lags, estimates, signals, grid, grid_made, notes=notes)
    if grid_made and options.segments is not None and options.window_s is not None:
        result.windows, result.segment_notes = select_segments(
            grid, options.segments, options.window_s, options.segments_of, options.gap_s
        )
    if options.target is not None:
        if not grid_made:
            raise ExportError("--target needs a grid (--rate HZ or --bin SECONDS)")
        result.accuracy = empathic_accuracy(grid, options.target, options.epoch_s)
    return result
