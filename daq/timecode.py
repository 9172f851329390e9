"""Exact SMPTE timecode arithmetic.

Frame counts start at 0 (= 00:00:00:00). Seconds are real (wall-clock) seconds: frame / fps with
the exact rate, so at 29.97 non-drop 01:00:00:00 is 3603.6 s. Rates are `Fraction`s, never floats.

Drop-frame (29.97 and 59.94 only) skips labels, not frames: at the start of every minute not
divisible by 10, 29.97 DF skips frame labels ;00 and ;01 and 59.94 DF skips ;00 to ;03.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

__all__ = [
    "FrameRate",
    "TimecodeError",
    "frame_to_seconds",
    "frame_to_timecode",
    "ns_to_frame",
    "seconds_to_frame",
    "timecode_to_frame",
]

_NS_PER_S = 1_000_000_000


class TimecodeError(ValueError):
    """A frame rate, timecode label, frame or time that cannot be used; the message says why."""


class _RateInfo(NamedTuple):
    nominal: int
    label: str  # decimal spelling, without "df"
    can_drop: bool


# The supported rates. Keyed by Fraction; an int key such as 25 equals (and hashes like) Fraction(25).
_RATES: dict[Fraction, _RateInfo] = {
    Fraction(24000, 1001): _RateInfo(24, "23.976", False),
    Fraction(24): _RateInfo(24, "24", False),
    Fraction(25): _RateInfo(25, "25", False),
    Fraction(30000, 1001): _RateInfo(30, "29.97", True),
    Fraction(30): _RateInfo(30, "30", False),
    Fraction(48000, 1001): _RateInfo(48, "47.952", False),
    Fraction(48): _RateInfo(48, "48", False),
    Fraction(50): _RateInfo(50, "50", False),
    Fraction(60000, 1001): _RateInfo(60, "59.94", True),
    Fraction(60): _RateInfo(60, "60", False),
}
_BY_LABEL: dict[str, Fraction] = {info.label: fps for fps, info in _RATES.items()}
_ALLOWED = (
    "23.976, 24, 25, 29.97, 29.97df, 30, 47.952, 48, 50, 59.94, 59.94df, 60 "
    "(or exact fractions such as 30000/1001 or 30000/1001df; 'ndf' may follow 29.97 and 59.94)"
)
_FRACTION_RE = re.compile(r"([0-9]+)/([0-9]+)", re.ASCII)
_TIMECODE_RE = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})([:;.])([0-9]{2})", re.ASCII)
# Two-digit strings for the hot path: indexing a list beats f-string format specs by ~5x.
_TWO_DIGITS = tuple(f"{i:02d}" for i in range(100))


class _Consts(NamedTuple):
    """Per-rate integers precomputed once, so the hot paths touch no Fraction."""

    nominal: int  # frame labels per timecode second
    drop: int  # labels skipped per dropped minute (0 for non-drop)
    first_minute: int  # frames in a minute with no dropped labels: nominal * 60
    per_minute: int  # frames in a dropped minute
    per_10min: int  # frames in a 10-minute block (one undropped minute + nine dropped)
    per_day: int
    sep: str  # separator before the frames
    num: int  # fps numerator
    den_ns: int  # fps denominator * 1e9: frame = ns * num // den_ns


@dataclass(frozen=True, slots=True)
class FrameRate:
    """An exact video frame rate, and whether its timecode is drop-frame.

    Only the SMPTE rates are accepted (see `parse`); build one with `FrameRate.parse("29.97df")`
    or `FrameRate(Fraction(30000, 1001), True)`.
    """

    fps: Fraction
    drop_frame: bool
    # Cached integer constants. A hidden field (not a dict keyed by the rate) because hashing a
    # Fraction costs ~1.7 us, a third of the hot path; excluded from eq, hash and repr.
    _c: _Consts = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fps: object = self.fps
        # Floats are refused rather than matched: 29.97 != 30000/1001, and 25.0 would hide a bug.
        if isinstance(fps, bool) or not isinstance(fps, Fraction | int):
            raise TimecodeError(f"frame rate must be an exact Fraction or int, not {fps!r}: use FrameRate.parse(text)")
        info = _RATES.get(Fraction(fps))
        if info is None:
            raise TimecodeError(f"unsupported frame rate {fps}: allowed rates are {_ALLOWED}")
        canonical = Fraction(fps)
        object.__setattr__(self, "fps", canonical)
        object.__setattr__(self, "drop_frame", bool(self.drop_frame))
        if self.drop_frame and not info.can_drop:
            raise TimecodeError(
                f"{info.label} fps has no drop-frame timecode: drop-frame exists only at 29.97 and 59.94"
            )
        nominal = info.nominal
        first_minute = nominal * 60
        if self.drop_frame:
            drop = nominal // 15  # 2 labels at 30, 4 at 60
            per_minute = first_minute - drop
            per_10min = first_minute + 9 * per_minute
            per_day = per_10min * 6 * 24
        else:
            drop = 0
            per_minute = first_minute
            per_10min = first_minute * 10
            per_day = nominal * 86_400
        consts = _Consts(
            nominal=nominal,
            drop=drop,
            first_minute=first_minute,
            per_minute=per_minute,
            per_10min=per_10min,
            per_day=per_day,
            sep=";" if self.drop_frame else ":",
            num=canonical.numerator,
            den_ns=canonical.denominator * _NS_PER_S,
        )
        object.__setattr__(self, "_c", consts)

    @classmethod
    def parse(cls, text: str) -> FrameRate:
        """Read "25", "29.97df", "29.97ndf", "30000/1001df"... (case-insensitive)."""
        t = text.strip().lower()
        if t.endswith("ndf"):
            body, suffix = t[:-3].rstrip(), "ndf"
        elif t.endswith("df"):
            body, suffix = t[:-2].rstrip(), "df"
        else:
            body, suffix = t, ""
        fps = _BY_LABEL.get(body)
        if fps is None:
            m = _FRACTION_RE.fullmatch(body)
            if m is not None and int(m[2]) != 0:
                candidate = Fraction(int(m[1]), int(m[2]))
                if candidate in _RATES:
                    fps = candidate
        if fps is None:
            raise TimecodeError(f"unknown frame rate {text!r}: allowed rates are {_ALLOWED}")
        info = _RATES[fps]
        if suffix and not info.can_drop:
            raise TimecodeError(
                f"frame rate {text!r}: {info.label} fps is always non-drop (drop-frame exists only at "
                f"29.97 and 59.94): write {info.label!r}"
            )
        return cls(fps, suffix == "df")

    @property
    def nominal(self) -> int:
        """Frame labels per timecode second: 24, 25, 30, 48, 50 or 60."""
        return self._c.nominal

    @property
    def label(self) -> str:
        """Canonical text that `parse` reads back: "25", "29.97", "29.97df", "23.976"..."""
        info = _RATES[self.fps]
        return info.label + "df" if self.drop_frame else info.label

    @property
    def frames_per_day(self) -> int:
        """Frames from 00:00:00:00 through 23:59:59:FF."""
        return self._c.per_day

    def __str__(self) -> str:
        return self.label


def frame_to_timecode(frame: int, rate: FrameRate) -> str:
    """Label frame `frame` as "HH:MM:SS:FF" ("HH:MM:SS;FF" for drop-frame)."""
    c = rate._c
    if not 0 <= frame < c.per_day:
        raise TimecodeError(
            f"frame {frame} is outside one day of timecode at {rate.label}: "
            f"allowed 0 to {c.per_day - 1} (00:00:00:00 to 23:59:59{c.sep}{c.nominal - 1:02d})"
        )
    nominal = c.nominal
    if c.drop:
        tens, rem = divmod(frame, c.per_10min)
        minutes = tens * 10
        if rem >= c.first_minute:
            # Past the block's undropped minute: count whole dropped minutes, then shift the
            # label past the skipped ones.
            rem -= c.first_minute
            minutes += 1 + rem // c.per_minute
            rem = rem % c.per_minute + c.drop
        ss, ff = divmod(rem, nominal)
        hh, mm = divmod(minutes, 60)
    else:
        secs, ff = divmod(frame, nominal)
        mins, ss = divmod(secs, 60)
        hh, mm = divmod(mins, 60)
    two = _TWO_DIGITS
    return f"{two[hh]}:{two[mm]}:{two[ss]}{c.sep}{two[ff]}"


def timecode_to_frame(text: str, rate: FrameRate) -> int:
    """Frame count of the label "HH:MM:SS:FF"; ";" or "." before FF marks drop-frame.

    At a drop-frame rate ":" is accepted too. At a non-drop rate ";" and "." are refused, since
    they claim a drop-frame label the rate does not have.
    """
    m = _TIMECODE_RE.fullmatch(text.strip())
    if m is None:
        raise TimecodeError(
            f"{text!r} is not a timecode: expected HH:MM:SS:FF with two digits each (HH:MM:SS;FF for drop-frame)"
        )
    hh, mm, ss, ff = int(m[1]), int(m[2]), int(m[3]), int(m[5])
    sep = m[4]
    c = rate._c
    if sep != ":" and not c.drop:
        alternative = f" or use rate {rate.label}df" if _RATES[rate.fps].can_drop else ""
        raise TimecodeError(
            f"{text!r} uses {sep!r}, which marks drop-frame, but rate {rate.label} is non-drop: "
            f"write HH:MM:SS:FF{alternative}"
        )
    if hh >= 24:
        raise TimecodeError(f"{text!r}: hours {hh:02d} out of range: allowed 00 to 23")
    if mm >= 60:
        raise TimecodeError(f"{text!r}: minutes {mm:02d} out of range: allowed 00 to 59")
    if ss >= 60:
        raise TimecodeError(f"{text!r}: seconds {ss:02d} out of range: allowed 00 to 59")
    if ff >= c.nominal:
        raise TimecodeError(f"{text!r}: frame {ff:02d} out of range at {rate.label}: allowed 00 to {c.nominal - 1:02d}")
    minute_in_block = mm % 10  # 60 is a multiple of 10, so this is also (total minutes) % 10
    if c.drop and minute_in_block and ss == 0 and ff < c.drop:
        raise TimecodeError(
            f"{text!r} does not exist at {rate.label}: drop-frame skips labels ;00 to ;{c.drop - 1:02d} "
            f"at the start of every minute not divisible by 10 (the label after "
            f"{hh:02d}:{mm - 1:02d}:59;{c.nominal - 1:02d} is {hh:02d}:{mm:02d}:00;{c.drop:02d})"
        )
    in_minute = ss * c.nominal + ff
    tens = (hh * 60 + mm) // 10
    if minute_in_block == 0:
        return tens * c.per_10min + in_minute
    return tens * c.per_10min + c.first_minute + (minute_in_block - 1) * c.per_minute + in_minute - c.drop


def frame_to_seconds(frame: int, rate: FrameRate) -> Fraction:
    """Exact real time (s) at which frame `frame` starts: frame / fps."""
    if frame < 0:
        raise TimecodeError(f"frame {frame} is negative: frames count from 0")
    return Fraction(frame * rate.fps.denominator, rate.fps.numerator)


def seconds_to_frame(seconds: Fraction | int | float, rate: FrameRate) -> int:
    """The frame showing at `seconds` of real time: floor(seconds * fps).

    A float is taken at its exact binary value (Fraction(x)), not its decimal repr, so a float
    that lands exactly on a frame boundary in decimal may fall one frame early (0.12 s at 25 fps
    is 2, since the double nearest 0.12 is below 3/25). Pass a Fraction (e.g. Fraction("0.12"))
    or integer nanoseconds (`ns_to_frame`) when the value is meant to be exact.
    """
    try:
        exact = Fraction(seconds)
    except (ValueError, OverflowError, TypeError) as exc:
        raise TimecodeError(f"seconds must be a finite number, not {seconds!r}") from exc
    if exact < 0:
        raise TimecodeError(f"seconds {seconds} is negative: media time starts at 0")
    fps = rate.fps
    return (exact.numerator * fps.numerator) // (exact.denominator * fps.denominator)


def ns_to_frame(ns: int, rate: FrameRate) -> int:
    """The frame showing at `ns` nanoseconds of real time: floor(ns * fps / 1e9), integers only."""
    if ns < 0:
        raise TimecodeError(f"time {ns} ns is negative: media time starts at 0")
    c = rate._c
    return ns * c.num // c.den_ns
