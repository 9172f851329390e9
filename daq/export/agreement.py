"""Agreement among raters on the common grid: ICC, Lin's CCC, Krippendorff's alpha, Cronbach's alpha, Pearson r.

Every figure is computed here with numpy (tests check each against scipy, krippendorff and, where
installed, pingouin on the same data to 1e-9). The data is an n x k matrix: the n grid points where
EVERY rater has a value (complete cases) by the k raters.

Intraclass correlations (Shrout & Fleiss 1979; McGraw & Wong 1996 names), from the two-way ANOVA
mean squares BMS (between grid points), JMS (between raters), EMS (residual):

    ICC(2,1) = ICC(A,1)  absolute agreement, single rater   (BMS-EMS) / (BMS + (k-1)EMS + k(JMS-EMS)/n)
    ICC(2,k) = ICC(A,k)  absolute agreement, mean of k      (BMS-EMS) / (BMS + (JMS-EMS)/n)
    ICC(3,1) = ICC(C,1)  consistency, single rater          (BMS-EMS) / (BMS + (k-1)EMS)
    ICC(3,k) = ICC(C,k)  consistency, mean of k             (BMS-EMS) / BMS

Lin's concordance correlation (Lin 1989), per pair, with 1/n moments:
    CCC = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2); the summary gives every pair and their mean.

Krippendorff's alpha, interval metric (Krippendorff 2011), on the same complete matrix:
    alpha = 1 - D_o / D_e, D_o = sum_u sum_{i != j in u} (v_i - v_j)^2 / (m_u - 1) / N,
    D_e = sum over all pairs of pairable values (v_c - v_d)^2 / (N (N - 1)), N = n k values.

Cronbach's alpha: k/(k-1) (1 - sum_j var_j / var(sum over raters)), variances with n-1.
Mean pairwise Pearson r: the plain mean of the k(k-1)/2 correlations.

Grid points of a continuous rating are autocorrelated (a value is held for a while, and ratings
change slowly), so these figures are descriptive: no p-value or confidence interval is given.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from numpy.typing import NDArray

from daq.export.resample import Resampled

Matrix = NDArray[np.float64]

AUTOCORRELATION_NOTE = (
    "grid points of continuous ratings are autocorrelated, so these statistics are descriptive "
    "(no p-values or confidence intervals)"
)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den != 0 and np.isfinite(den) and np.isfinite(num) else None


def anova(x: Matrix) -> tuple[float, float, float]:
    """(BMS, JMS, EMS) of an n x k matrix."""
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * float(np.sum((x.mean(axis=1) - grand) ** 2))
    ss_cols = n * float(np.sum((x.mean(axis=0) - grand) ** 2))
    ss_total = float(np.sum((x - grand) ** 2))
    ss_error = max(ss_total - ss_rows - ss_cols, 0.0)
    return ss_rows / (n - 1), ss_cols / (k - 1), ss_error / ((n - 1) * (k - 1))


def iccs(x: Matrix) -> dict[str, float | None]:
    """The four ICCs (keys icc_2_1, icc_2_k, icc_3_1, icc_3_k) and the mean squares."""
    n, k = x.shape
    bms, jms, ems = anova(x)
    return {
        "bms": bms,
        "jms": jms,
        "ems": ems,
        "icc_2_1": _ratio(bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n),
        "icc_2_k": _ratio(bms - ems, bms + (jms - ems) / n),
        "icc_3_1": _ratio(bms - ems, bms + (k - 1) * ems),
        "icc_3_k": _ratio(bms - ems, bms),
    }


def pearson(x: Matrix, y: Matrix) -> float | None:
    """Pearson r of two equal-length vectors; None when either is constant or fewer than 2 points."""
    if len(x) < 2:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    den = float(np.sqrt(np.sum(dx * dx) * np.sum(dy * dy)))
    r = _ratio(float(np.sum(dx * dy)), den)
    return None if r is None else max(-1.0, min(1.0, r))


def ccc(x: Matrix, y: Matrix) -> float | None:
    """Lin's concordance correlation coefficient (1/n moments)."""
    if len(x) < 1:
        return None
    mx, my = x.mean(), y.mean()
    sxy = float(np.mean((x - mx) * (y - my)))
    return _ratio(2 * sxy, float(np.var(x) + np.var(y) + (mx - my) ** 2))


def krippendorff_interval(values: Matrix) -> float | None:
    """Krippendorff's alpha, interval metric; `values` is raters x units, NaN where missing."""
    v = np.asarray(values, dtype=float).T  # units x raters
    m = np.sum(~np.isnan(v), axis=1)
    v = v[m >= 2]
    m = m[m >= 2]
    total = int(m.sum())
    if total < 2:
        return None
    filled = np.where(np.isnan(v), 0.0, v)
    sums = filled.sum(axis=1)
    squares = (filled * filled).sum(axis=1)
    # sum over ordered pairs i != j of (v_i - v_j)^2 = 2 (m sum v^2 - (sum v)^2)
    within = 2 * (m * squares - sums * sums)
    d_o = float(np.sum(within / (m - 1))) / total
    all_sum, all_sq = float(sums.sum()), float(squares.sum())
    d_e = 2 * (total * all_sq - all_sum * all_sum) / (total * (total - 1))
    return _ratio(d_e - d_o, d_e)


def cronbach(x: Matrix) -> float | None:
    n, k = x.shape
    if n < 2 or k < 2:
        return None
    item_var = float(np.sum(np.var(x, axis=0, ddof=1)))
    total_var = float(np.var(x.sum(axis=1), ddof=1))
    ratio = _ratio(item_var, total_var)
    return None if ratio is None else k / (k - 1) * (1 - ratio)


def complete_matrix(grid: Resampled, labels: list[str] | None = None) -> tuple[Matrix, Matrix]:
    """(grid times, n x k values) over the grid points where every rater in `labels` has a value."""
    labels = labels if labels is not None else grid.dials
    if not labels or not grid.starts:
        return np.zeros(0), np.zeros((0, len(labels)))
    x = np.array([[np.nan if v is None else v for v in grid.values[name]] for name in labels], dtype=float).T
    keep = ~np.isnan(x).any(axis=1)
    return np.asarray(grid.starts, dtype=float)[keep], x[keep]


def agreement(grid: Resampled) -> dict[str, Any] | None:
    """Every agreement figure across the raters on the grid; None with fewer than two raters."""
    labels = grid.dials
    k = len(labels)
    if k < 2:
        return None
    _, x = complete_matrix(grid, labels)
    n = x.shape[0]
    base: dict[str, Any] = {
        "dials": labels,
        "raters": labels,
        "k": k,
        "complete_points": n,
        "method": "Shrout & Fleiss (1979), two-way ANOVA over complete grid points",
        "names": {
            "icc_2_1": "ICC(2,1) = McGraw & Wong ICC(A,1): absolute agreement, single rater, raters random",
            "icc_2_k": "ICC(2,k) = ICC(A,k): absolute agreement of the mean of k raters",
            "icc_3_1": "ICC(3,1) = ICC(C,1): consistency, single rater, raters fixed",
            "icc_3_k": "ICC(3,k) = ICC(C,k): consistency of the mean of k raters",
        },
        "note": AUTOCORRELATION_NOTE,
    }
    empty = dict.fromkeys(("icc_2_1", "icc_2_k", "icc_3_1", "icc_3_k", "ccc_mean", "krippendorff_alpha"))
    if n < 2:
        return {
            **base,
            **empty,
            "cronbach_alpha": None,
            "pearson_mean": None,
            "ccc": [],
            "pearson": [],
            "note": "fewer than 2 grid points where all raters have a value; " + AUTOCORRELATION_NOTE,
        }
    pairs_ccc: list[dict[str, Any]] = []
    pairs_r: list[dict[str, Any]] = []
    for i, j in itertools.combinations(range(k), 2):
        pairs_ccc.append({"a": labels[i], "b": labels[j], "ccc": ccc(x[:, i], x[:, j])})
        pairs_r.append({"a": labels[i], "b": labels[j], "r": pearson(x[:, i], x[:, j])})
    cccs = [p["ccc"] for p in pairs_ccc if p["ccc"] is not None]
    rs = [p["r"] for p in pairs_r if p["r"] is not None]
    return {
        **base,
        **iccs(x),
        "ccc": pairs_ccc,
        "ccc_mean": float(np.mean(cccs)) if cccs else None,
        "krippendorff_alpha": krippendorff_interval(x.T),
        "cronbach_alpha": cronbach(x),
        "pearson": pairs_r,
        "pearson_mean": float(np.mean(rs)) if rs else None,
    }
