"""Calibrate: a decoded raw reading -> a value on the dial's rating scale.

Rules, in order: map the raw range (from calibration, else the profile's channel) linearly
onto [min, max] (piecewise through `center` when given, so an off-centre pot still reads
mid-scale at its rest position); invert; clamp; snap to `step`; round to 6 decimals;
hold within `deadband`.
"""

from __future__ import annotations

from dataclasses import dataclass

from daq.config import Calibration
from daq.contract import Scale


@dataclass(frozen=True, slots=True)
class RawRange:
    lo: float
    hi: float


class Calibrator:
    def __init__(self, scale: Scale, calibration: Calibration, default_range: RawRange) -> None:
        lo = calibration.raw_min if calibration.raw_min is not None else default_range.lo
        hi = calibration.raw_max if calibration.raw_max is not None else default_range.hi
        if lo == hi:
            raise ValueError("raw_min and raw_max must differ")
        self.lo, self.hi = lo, hi
        self.center = calibration.center
        self.invert = calibration.invert
        self.clamp = calibration.clamp
        self.deadband = calibration.deadband
        self.min, self.max, self.step = scale.min, scale.max, scale.step
        self._last: float | None = None
        c = self.center
        self._linear = c is None or not (min(lo, hi) < c < max(lo, hi))  # no centre between the ends
        self._span = hi - lo
        self._out_span = self.max - self.min

    def fraction(self, raw: float) -> float:
        """Where `raw` lies between the ends, 0..1 (beyond when unclamped)."""
        if self._linear:
            return (raw - self.lo) / self._span
        c = self.center
        assert c is not None  # not linear: a centre between the ends
        if (raw - c) * (self.lo - c) > 0:  # on the lo side of the centre
            return 0.5 * (raw - self.lo) / (c - self.lo)
        return 0.5 + 0.5 * (raw - c) / (self.hi - c)

    def __call__(self, raw: float) -> float:
        frac = (raw - self.lo) / self._span if self._linear else self.fraction(raw)  # fraction's linear case, inline
        if self.invert:
            frac = 1.0 - frac
        if self.clamp:
            frac = 0.0 if frac < 0.0 else 1.0 if frac > 1.0 else frac
        value = self.min + frac * self._out_span
        if self.step > 0:
            value = self.min + round((value - self.min) / self.step) * self.step
        # Six decimals is far finer than any dial resolves, and 0.3 prints as 0.3, not 0.30000000000000004.
        value = round(value, 6)
        if self.deadband > 0 and self._last is not None and abs(value - self._last) < self.deadband:
            return self._last
        self._last = value
        return value
