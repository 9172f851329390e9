"""Tests for daq.timecode: published vectors, an independent drop-frame oracle, properties at every rate."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daq.timecode import (
    FrameRate,
    TimecodeError,
    frame_to_seconds,
    frame_to_timecode,
    ns_to_frame,
    seconds_to_frame,
    timecode_to_frame,
)

ALL_LABELS = (
    "23.976",
    "24",
    "25",
    "29.97",
    "29.97df",
    "30",
    "47.952",
    "48",
    "50",
    "59.94",
    "59.94df",
    "60",
)
RATES = {label: FrameRate.parse(label) for label in ALL_LABELS}
DF30 = RATES["29.97df"]
DF60 = RATES["59.94df"]
NDF30 = RATES["29.97"]
TC_RE = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9][:;][0-9]{2}")

# Per (property, rate) example budget: 12 rates x 7 properties keeps the file well under 5 s.
PROPERTY_SETTINGS = settings(max_examples=20, deadline=None)


def tc_tuple(label: str) -> tuple[int, int, int, int]:
    hh, mm, ss, ff = (int(p) for p in re.split(r"[:;]", label))
    return hh, mm, ss, ff


def frames(rate: FrameRate) -> st.SearchStrategy[int]:
    """Any frame of the day, plus frames within a few of a minute boundary (where drop-frame bites)."""
    per_day = rate.frames_per_day
    near_minute = st.builds(
        lambda minute, delta: min(max(round(minute * 60 * rate.fps) + delta, 0), per_day - 1),
        st.integers(0, 24 * 60),
        st.integers(-5, 5),
    )
    return st.one_of(st.integers(0, per_day - 1), near_minute, st.sampled_from([0, per_day - 1]))


# Built once: building and validating strategies per draw costs more than the checks themselves.
FRAMES = {label: frames(rate) for label, rate in RATES.items()}


def heidelberger(frame: int, nominal: int) -> str:
    """Independent drop-frame oracle: the widely published frame->DF formula (David Heidelberger,
    reproduced at andrewduncan.net/timecodes), generalised from 29.97 to 59.94 by scaling."""
    drop = nominal // 15
    per_10min = nominal * 600 - 9 * drop
    per_minute = nominal * 60 - drop
    d, m = divmod(frame, per_10min)
    if m < drop:
        frame += 9 * drop * d
    else:
        frame += 9 * drop * d + drop * ((m - drop) // per_minute)
    ff = frame % nominal
    ss = frame // nominal % 60
    mm = frame // (nominal * 60) % 60
    hh = frame // (nominal * 3600)
    return f"{hh:02d}:{mm:02d}:{ss:02d};{ff:02d}"


def next_label(label: tuple[int, int, int, int], rate: FrameRate) -> tuple[int, int, int, int]:
    """Count one label on, straight from the SMPTE rule (skip ;00..;drop-1 in minutes not % 10)."""
    hh, mm, ss, ff = label
    ff += 1
    if ff == rate.nominal:
        ff, ss = 0, ss + 1
    if ss == 60:
        ss, mm = 0, mm + 1
    if mm == 60:
        mm, hh = 0, hh + 1
    if rate.drop_frame and ss == 0 and ff == 0 and mm % 10:
        ff = rate.nominal // 15
    return hh, mm, ss, ff


# --- published vectors -------------------------------------------------------------------------

# (rate, frame, label, source)
VECTORS = [
    # TIME.md and SMPTE 12M: the first label of the first undropped minute after 00:00.
    ("29.97df", 17982, "00:10:00;00"),
    # TIME.md: 00:00:59;29 is followed by 00:01:00;02.
    ("29.97df", 1799, "00:00:59;29"),
    ("29.97df", 1800, "00:01:00;02"),
    # Derived: 00:09:59;29 is the frame before 00:10:00;00; 00:11:00;02 is one dropped minute later.
    ("29.97df", 17981, "00:09:59;29"),
    ("29.97df", 17982 + 1800, "00:11:00;02"),
    # 108 labels dropped per hour (TIME.md): one hour of 29.97 DF is 108000 - 108 frames.
    ("29.97df", 107892, "01:00:00;00"),
    # Last label of the day: 24 h = 144 ten-minute blocks of 17982 frames.
    ("29.97df", 144 * 17982 - 1, "23:59:59;29"),
    # 59.94 DF drops 4 labels (TIME.md): 00:00:59;59 (frame 3599) is followed by 00:01:00;04.
    ("59.94df", 3599, "00:00:59;59"),
    ("59.94df", 3600, "00:01:00;04"),
    ("59.94df", 35964, "00:10:00;00"),
    ("59.94df", 216000 - 216, "01:00:00;00"),
    ("59.94df", 144 * 35964 - 1, "23:59:59;59"),
    # Non-drop: plain counting. 3702 = 148 s * 25 + 2 = 00:02:28:02.
    ("25", 3702, "00:02:28:02"),
    ("29.97", 108000, "01:00:00:00"),
    ("23.976", 86400, "01:00:00:00"),
    ("24", 24 * 86400 - 1, "23:59:59:23"),
    ("50", 50, "00:00:01:00"),
    ("60", 60 * 3600 + 59, "01:00:00:59"),
]


@pytest.mark.parametrize(("rate", "frame", "label"), VECTORS)
def test_published_vectors(rate: str, frame: int, label: str) -> None:
    assert frame_to_timecode(frame, RATES[rate]) == label
    assert timecode_to_frame(label, RATES[rate]) == frame


@pytest.mark.parametrize(
    ("rate", "per_day"),
    [
        ("29.97df", 2_589_408),  # 144 x 17982
        ("59.94df", 5_178_816),  # 144 x 35964
        ("29.97", 2_592_000),
        ("25", 2_160_000),
        ("23.976", 2_073_600),
        ("60", 5_184_000),
    ],
)
def test_frames_per_day(rate: str, per_day: int) -> None:
    assert RATES[rate].frames_per_day == per_day


def test_drop_frame_day_is_86_4_ms_short() -> None:
    # The oft-quoted residual error of 29.97 DF: a day of labels lasts 86.4 ms less than 24 h.
    assert frame_to_seconds(DF30.frames_per_day, DF30) == 86400 - Fraction("0.0864")


def test_non_drop_drifts_3_6_s_per_hour() -> None:
    # TIME.md: at 29.97 NDF the timecode says 01:00:00:00 after 3603.6 s of video.
    frame = seconds_to_frame(Fraction("3603.6"), NDF30)
    assert frame == 108000
    assert frame_to_timecode(frame, NDF30) == "01:00:00:00"
    assert frame_to_seconds(108000, NDF30) == Fraction("3603.6")
    assert seconds_to_frame(Fraction("3603.6") - Fraction(1, 10**9), NDF30) == 107999
    # 23.976 has the same 1000/1001 drift.
    assert frame_to_seconds(86400, RATES["23.976"]) == Fraction("3603.6")


@pytest.mark.parametrize("label", ["00:01:00;00", "00:01:00;01", "00:09:00;01", "23:59:00;00"])
def test_dropped_labels_do_not_exist_at_2997(label: str) -> None:
    with pytest.raises(TimecodeError, match=re.escape("does not exist at 29.97df")):
        timecode_to_frame(label, DF30)


@pytest.mark.parametrize("ff", [0, 1, 2, 3])
def test_dropped_labels_do_not_exist_at_5994(ff: int) -> None:
    with pytest.raises(TimecodeError, match=r"skips labels ;00 to ;03"):
        timecode_to_frame(f"00:01:00;{ff:02d}", DF60)


def test_labels_next_to_dropped_ones_exist() -> None:
    assert timecode_to_frame("00:10:00;00", DF30) == 17982
    assert timecode_to_frame("00:10:00;01", DF30) == 17983
    assert timecode_to_frame("00:00:00;00", DF30) == 0
    assert timecode_to_frame("00:01:00;04", DF60) == 3600
    assert timecode_to_frame("00:20:00;00", DF60) == 2 * 35964


def test_drop_frame_accepts_all_separators() -> None:
    for text in ("00:01:00;02", "00:01:00:02", "00:01:00.02", " 00:01:00;02\n"):
        assert timecode_to_frame(text, DF30) == 1800


def test_drop_frame_walk_matches_the_rule() -> None:
    # Count labels one by one with the SMPTE rule across the first 11 minutes and the day's last
    # minute at both drop-frame rates: every drop in a 10-minute cycle, and the wrap to 24 h.
    for rate in (DF30, DF60):
        starts = (0, rate.frames_per_day - rate.nominal * 60)
        spans = (rate.nominal * 60 * 11, rate.nominal * 60)
        for start, span in zip(starts, spans, strict=True):
            label = tc_tuple(frame_to_timecode(start, rate))
            for f in range(start + 1, start + span):
                label = next_label(label, rate)
                assert frame_to_timecode(f, rate) == "{:02d}:{:02d}:{:02d};{:02d}".format(*label)


# --- properties at every rate ------------------------------------------------------------------


@pytest.mark.parametrize("rate", ALL_LABELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_roundtrip_frame_timecode(rate: str, data: st.DataObject) -> None:
    r = RATES[rate]
    f = data.draw(FRAMES[rate])
    assert timecode_to_frame(frame_to_timecode(f, r), r) == f


@pytest.mark.parametrize("rate", ALL_LABELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_consecutive_frames_increase(rate: str, data: st.DataObject) -> None:
    r = RATES[rate]
    f = data.draw(FRAMES[rate].filter(lambda x: x < r.frames_per_day - 1))
    a, b = tc_tuple(frame_to_timecode(f, r)), tc_tuple(frame_to_timecode(f + 1, r))
    assert a < b
    assert next_label(a, r) == b


@pytest.mark.parametrize("rate", ALL_LABELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_label_format(rate: str, data: st.DataObject) -> None:
    r = RATES[rate]
    label = frame_to_timecode(data.draw(FRAMES[rate]), r)
    assert TC_RE.fullmatch(label)
    assert label[8] == (";" if r.drop_frame else ":")
    assert int(label[9:]) < r.nominal


@pytest.mark.parametrize("rate", ["29.97df", "59.94df"])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_drop_frame_matches_published_formula(rate: str, data: st.DataObject) -> None:
    r = RATES[rate]
    f = data.draw(FRAMES[rate])
    assert frame_to_timecode(f, r) == heidelberger(f, r.nominal)


@pytest.mark.parametrize("rate", ALL_LABELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_roundtrip_frame_seconds(rate: str, data: st.DataObject) -> None:
    r = RATES[rate]
    f = data.draw(FRAMES[rate])
    start = frame_to_seconds(f, r)
    assert seconds_to_frame(start, r) == f
    # Any instant inside the frame maps to it; the instant just before its start does not.
    assert seconds_to_frame(start + Fraction(1, r.fps) - Fraction(1, 10**12), r) == f
    if f:
        assert seconds_to_frame(start - Fraction(1, 10**12), r) == f - 1


@pytest.mark.parametrize("rate", ALL_LABELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_ns_agrees_with_seconds(rate: str, data: st.DataObject) -> None:
    r = RATES[rate]
    # Any ns in two days, and ns within a few of a frame's start (the floor's edge).
    edge = st.builds(
        lambda f, d: max(0, int(frame_to_seconds(f, r) * 10**9) + d),
        FRAMES[rate],
        st.integers(-2, 2),
    )
    ns = data.draw(st.one_of(st.integers(0, 2 * 86_400 * 10**9), edge))
    assert ns_to_frame(ns, r) == seconds_to_frame(Fraction(ns, 10**9), r)


@pytest.mark.parametrize("rate", ALL_LABELS)
def test_label_parses_back(rate: str) -> None:
    r = RATES[rate]
    assert r.label == rate
    assert str(r) == rate
    assert FrameRate.parse(r.label) == r
    assert FrameRate.parse(rate.upper()) == r


# --- FrameRate.parse ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fps", "drop", "nominal"),
    [
        ("23.976", Fraction(24000, 1001), False, 24),
        ("29.97", Fraction(30000, 1001), False, 30),
        ("29.97DF", Fraction(30000, 1001), True, 30),
        ("29.97ndf", Fraction(30000, 1001), False, 30),
        ("29.97 df", Fraction(30000, 1001), True, 30),
        ("30000/1001", Fraction(30000, 1001), False, 30),
        ("30000/1001df", Fraction(30000, 1001), True, 30),
        ("60000/1001DF", Fraction(60000, 1001), True, 60),
        ("59.94NDF", Fraction(60000, 1001), False, 60),
        ("47.952", Fraction(48000, 1001), False, 48),
        ("25/1", Fraction(25), False, 25),
        (" 50 ", Fraction(50), False, 50),
    ],
)
def test_parse_rates(text: str, fps: Fraction, drop: bool, nominal: int) -> None:
    r = FrameRate.parse(text)
    assert (r.fps, r.drop_frame, r.nominal) == (fps, drop, nominal)
    assert isinstance(r.fps, Fraction)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("23.98", "unknown frame rate '23.98': allowed rates are 23.976, 24, 25, 29.97, 29.97df"),
        ("29.970", "unknown frame rate"),
        ("", "unknown frame rate"),
        ("df", "unknown frame rate"),
        ("abc", "unknown frame rate"),
        ("-25", "unknown frame rate"),
        ("0/0", "unknown frame rate"),
        ("1/3", "unknown frame rate"),
        ("29.97d", "unknown frame rate"),
        ("25df", "25 fps is always non-drop"),
        ("30df", "30 fps is always non-drop"),
        ("23.976df", "23.976 fps is always non-drop"),
        ("24000/1001df", "23.976 fps is always non-drop"),
        ("25ndf", "write '25'"),
    ],
)
def test_parse_rejects(text: str, why: str) -> None:
    with pytest.raises(TimecodeError, match=re.escape(why)):
        FrameRate.parse(text)


def test_constructor_validates() -> None:
    assert FrameRate(Fraction(30000, 1001), True) == DF30
    assert FrameRate(25, False) == RATES["25"]  # type: ignore[arg-type]
    assert hash(FrameRate(Fraction(30000, 1001), True)) == hash(DF30)
    assert repr(DF30) == "FrameRate(fps=Fraction(30000, 1001), drop_frame=True)"
    with pytest.raises(TimecodeError, match="unsupported frame rate 7"):
        FrameRate(Fraction(7), False)
    with pytest.raises(TimecodeError, match="exact Fraction"):
        FrameRate(29.97, False)  # type: ignore[arg-type]
    with pytest.raises(TimecodeError, match=re.escape("drop-frame exists only at 29.97 and 59.94")):
        FrameRate(Fraction(25), True)


def test_timecode_error_is_value_error() -> None:
    assert issubclass(TimecodeError, ValueError)


# --- invalid labels, frames and times ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate", "why"),
    [
        ("24:00:00:00", "25", "hours 24 out of range: allowed 00 to 23"),
        ("00:60:00:00", "25", "minutes 60 out of range"),
        ("00:00:60:00", "25", "seconds 60 out of range"),
        ("00:00:00:25", "25", "frame 25 out of range at 25: allowed 00 to 24"),
        ("00:00:00;30", "29.97df", "frame 30 out of range at 29.97df: allowed 00 to 29"),
        ("00:00:00:60", "59.94", "frame 60 out of range"),
        ("00:00:00;00", "25", "rate 25 is non-drop"),
        ("00:00:00;00", "29.97", "rate 29.97 is non-drop: write HH:MM:SS:FF or use rate 29.97df"),
        ("00:00:00.00", "29.97", "rate 29.97 is non-drop"),
        ("00:01:00;00", "29.97df", "does not exist at 29.97df"),
        ("1:00:00:00", "25", "not a timecode"),
        ("00:00:00", "25", "not a timecode"),
        ("", "25", "not a timecode"),
        ("aa:bb:cc:dd", "25", "not a timecode"),
        ("00:00:00:00:00", "25", "not a timecode"),
        ("00;00;00;00", "29.97df", "not a timecode"),
        ("00-00-00-00", "25", "not a timecode"),
        ("٠٠:٠٠:٠٠:٠٠", "25", "not a timecode"),  # Arabic-Indic digits: \d would accept them
    ],
)
def test_invalid_labels(text: str, rate: str, why: str) -> None:
    with pytest.raises(TimecodeError, match=re.escape(why)):
        timecode_to_frame(text, RATES[rate])


@pytest.mark.parametrize("rate", ["25", "29.97df"])
def test_frame_out_of_day(rate: str) -> None:
    r = RATES[rate]
    for f in (-1, r.frames_per_day):
        with pytest.raises(TimecodeError, match=re.escape(f"outside one day of timecode at {r.label}: allowed 0 to")):
            frame_to_timecode(f, r)


def test_negative_and_non_finite_times() -> None:
    r = RATES["25"]
    with pytest.raises(TimecodeError, match="negative"):
        seconds_to_frame(-0.001, r)
    with pytest.raises(TimecodeError, match="negative"):
        seconds_to_frame(Fraction(-1, 10**9), r)
    with pytest.raises(TimecodeError, match="negative"):
        ns_to_frame(-1, r)
    with pytest.raises(TimecodeError, match="negative"):
        frame_to_seconds(-1, r)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(TimecodeError, match="finite number"):
            seconds_to_frame(bad, r)


def test_float_seconds_are_taken_at_their_exact_binary_value() -> None:
    r = RATES["25"]
    assert seconds_to_frame(0.5, r) == 12  # exact in binary
    assert seconds_to_frame(Fraction("0.12"), r) == 3
    # The double nearest 0.12 is just below 3/25: documented behaviour, not an accident.
    assert Fraction(0.12) < Fraction(3, 25)
    assert seconds_to_frame(0.12, r) == 2
    assert seconds_to_frame(3, r) == 75


def test_seconds_beyond_a_day_are_frames_not_labels() -> None:
    # Frame counts have no 24 h limit; only labelling them does.
    r = RATES["25"]
    f = seconds_to_frame(90_000, r)
    assert f == 2_250_000
    assert ns_to_frame(90_000 * 10**9, r) == f
    with pytest.raises(TimecodeError):
        frame_to_timecode(f, r)
