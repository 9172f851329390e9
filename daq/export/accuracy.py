"""Empathic accuracy (Zaki, Bolger & Ochsner 2008): how closely each rater's trace follows a target's.

`--target RATER` names the target (e.g. the client rating their own experience). For every other
rater, on the resampled grid (after any lag shift), over the grid points where both the rater and
the target have a value:

- `r`: the Pearson r over the whole video;
- per epoch: consecutive epochs [k E, (k+1) E) of media time (E = `--epoch`, default 30 s, aligned
  on media 0 like the grid), the Pearson r inside each; an epoch with fewer than 3 shared points or
  a constant trace has no r and is counted as skipped;
- `mean_r`: the epochs' r averaged through Fisher's z (z = atanh r, r clipped to +/-R_MAX so that a
  perfect epoch stays finite; mean_r = tanh(mean z)), with the number of epochs it is over.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from daq.export.agreement import pearson
from daq.export.reader import ExportError
from daq.export.resample import EPS, Resampled

DEFAULT_EPOCH_S = 30.0
R_MAX = 0.999999
MIN_EPOCH_POINTS = 3


def fisher_mean(rs: list[float]) -> tuple[float | None, float | None]:
    """(tanh of the mean z, mean z) of correlations, each clipped to +/-R_MAX."""
    if not rs:
        return None, None
    z = float(np.mean(np.arctanh(np.clip(np.asarray(rs, dtype=float), -R_MAX, R_MAX))))
    return math.tanh(z), z


def pair_accuracy(grid: Resampled, target: str, rater: str, epoch_s: float) -> dict[str, Any]:
    t = np.array([np.nan if v is None else v for v in grid.values[target]], dtype=float)
    x = np.array([np.nan if v is None else v for v in grid.values[rater]], dtype=float)
    starts = np.asarray(grid.starts, dtype=float)
    both = ~(np.isnan(t) | np.isnan(x))
    whole = pearson(x[both], t[both]) if both.any() else None
    epochs: list[dict[str, Any]] = []
    rs: list[float] = []
    skipped = 0
    if both.any():
        index = np.floor(starts / epoch_s + EPS).astype(int)
        for k in range(int(index[both].min()), int(index[both].max()) + 1):
            inside = both & (index == k)
            points = int(inside.sum())
            r = pearson(x[inside], t[inside]) if points >= MIN_EPOCH_POINTS else None
            epochs.append({"start_s": k * epoch_s, "end_s": (k + 1) * epoch_s, "points": points, "r": r})
            if r is None:
                skipped += 1
            else:
                rs.append(r)
    mean_r, mean_z = fisher_mean(rs)
    return {
        "rater": rater,
        "target": target,
        "points": int(both.sum()),
        "r": whole,
        "epoch_s": epoch_s,
        "epochs": len(rs),
        "epochs_skipped": skipped,
        "mean_r": mean_r,
        "mean_z": mean_z,
        "per_epoch": epochs,
    }


def empathic_accuracy(grid: Resampled, target: str, epoch_s: float = DEFAULT_EPOCH_S) -> dict[str, Any]:
    """Accuracy of every rater against `target` (a rater label on the grid)."""
    if target not in grid.values:
        raise ExportError(f"--target {target!r}: not one of the raters: {', '.join(grid.dials)}")
    if not (epoch_s > 0 and math.isfinite(epoch_s)):
        raise ExportError(f"--epoch {epoch_s:g}: give a length above 0 seconds")
    if epoch_s < 2 * grid.step:
        raise ExportError(f"--epoch {epoch_s:g}: shorter than two grid steps ({grid.step:g} s)")
    return {
        "target": target,
        "epoch_s": epoch_s,
        "method": "Pearson r per pair over the whole video and per epoch; epochs averaged through Fisher's z",
        "raters": [pair_accuracy(grid, target, r, epoch_s) for r in grid.dials if r != target],
    }
