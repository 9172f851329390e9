"""The input edges of decoding (issues 13 and 14): hostile patterns, lines dropped on purpose,
garbage counted per run, a device's own sequence counter, and numbers a profile may not hold."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daq.exceptions import ProfileError
from daq.profiles.decode import Decoder, make_decoder
from daq.profiles.loader import ProfileRegistry, profile_from_dict
from daq.profiles.losses import LossCounter
from daq.profiles.model import Profile
from daq.reading import Chunk, Decoded, DeviceLoss, Discarded, Garbage, Reading

REGISTRY = ProfileRegistry.load()
HOSTILE = "S=(?P<pos>([0-9]+)+)"


def line_profile(**framing: Any) -> dict[str, Any]:
    return {
        "spec": 1,
        "id": "t",
        "name": "t",
        "transport": "serial",
        "source": "test",
        "serial": {"baud": 9600},
        "framing": {"kind": "line", **framing},
        "channels": {"pos": {"kind": "absolute"}},
    }


def feed(dec: Decoder, *chunks: bytes) -> list[Decoded]:
    out: list[Decoded] = []
    for i, chunk in enumerate(chunks):
        out += dec.feed(Chunk(chunk, 1000 + i))
    return out


def counted_garbage(out: list[Decoded]) -> int:
    """What a device reader counts: one per undecodable run."""
    return sum(1 for g in out if isinstance(g, Garbage) and not g.continues)


# ---------------------------------------------------------------- 13.4: a pattern cannot hang the station


def test_a_catastrophic_pattern_costs_microseconds_not_seconds() -> None:
    # With Python's re this pattern backtracks 2**n ways on 'S=' + n digits + 'x': 17 s at n=28.
    profile = profile_from_dict(line_profile(pattern=HOSTILE, max_length=65536))
    dec = make_decoder(profile, synced=True)
    hostile = b"S=" + b"1" * 28 + b"x\n"
    worst = b"S=" + b"1" * 65533 + b"x\n"  # the longest line the framing allows
    started = time.thread_time()  # CPU time: the decoder's work, not the machine's scheduling of this test
    out = feed(dec, hostile, worst, b"S=512\n")
    elapsed = time.thread_time() - started
    assert elapsed < 0.2, f"decoding hostile lines took {elapsed:.3f} s of CPU"
    assert [type(i) for i in out] == [Garbage, Garbage, Reading]
    assert out[-1] == Reading("pos", 512, 1002)


def test_line_length_is_bounded() -> None:
    with pytest.raises(ProfileError, match=r"framing\.max_length"):
        profile_from_dict(line_profile(pattern="(?P<pos>[0-9]+)", max_length=10**6))


@pytest.mark.parametrize(
    ("pattern", "key"),
    [
        ("(?P<pos>[0-9]+)(?!x)", "framing.pattern"),  # look-ahead
        ("(?P<pos>[0-9])(?P=pos)", "framing.pattern"),  # back-reference
        (r"(?P<pos>[0-9])\1", "framing.pattern"),
        ("(?<=S)(?P<pos>[0-9]+)", "framing.pattern"),  # look-behind
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_the_fix(pattern: str, key: str) -> None:
    with pytest.raises(ProfileError) as info:
        profile_from_dict(line_profile(pattern=pattern))
    message = str(info.value)
    assert key in message and "RE2" in message and "linear time" in message


def test_ignore_patterns_are_linear_too() -> None:
    with pytest.raises(ProfileError, match=r"framing\.ignore\[0\].*RE2"):
        profile_from_dict(line_profile(pattern="(?P<pos>[0-9]+)", ignore=["^(?!t,)[a-z]"]))
    profile = profile_from_dict(line_profile(pattern="(?P<pos>[0-9]+)", ignore=["^(a|a)*$"]))
    dec = make_decoder(profile, synced=True)
    started = time.thread_time()  # CPU time: with a backtracking engine this line would take forever
    out = feed(dec, b"a" * 200 + b"\n", b"7\n")
    assert time.thread_time() - started < 0.5
    assert out == [Reading("pos", 7, 1001)]
    assert dec.ignored == 1


def test_bundled_ignore_patterns_keep_their_meaning() -> None:
    teensy = make_decoder(REGISTRY.get("teensy-fast"), synced=True)
    out = feed(teensy, b"teensy v1\r\nt,5,2048\r\nt\r\n# c\r\n3\r\n")
    assert [r.raw for r in out if isinstance(r, Reading)] == [2048, 3]
    assert teensy.ignored == 3
    encoder = make_decoder(REGISTRY.get("arduino-encoder"), synced=True)
    out = feed(encoder, b"READY\r\nE:0\r\nB:1\r\nEncoder\r\nBye\r\nE:4\r\n")
    assert [r.raw for r in out if isinstance(r, Reading)] == [4]
    assert encoder.ignored == 3


# ---------------------------------------------------------------- 14: discard_first_line


def test_without_discard_first_line_every_line_is_read_after_each_open() -> None:
    dec = make_decoder(profile_from_dict(line_profile(pattern="(?P<pos>[0-9]+)")))  # not synced: as after open
    assert feed(dec, b"5\n6\n") == [Reading("pos", 5, 1000), Reading("pos", 6, 1000)]
    dec.reset()  # unplugged and replugged
    assert feed(dec, b"7\n") == [Reading("pos", 7, 1000)]


def test_a_discarded_first_line_is_an_item_not_silence() -> None:
    dec = make_decoder(profile_from_dict(line_profile(pattern="(?P<pos>[0-9]+)", discard_first_line=True)))
    out = feed(dec, b"12\n", b"512\n")
    assert out == [Discarded(out[0].reason, b"12", 1000), Reading("pos", 512, 1001)]  # type: ignore[union-attr]
    assert "first line" in out[0].reason  # type: ignore[union-attr]
    assert dec.ignored == 0
    dec.reset()
    assert [type(i) for i in feed(dec, b"1\n2\n")] == [Discarded, Reading]


def test_an_empty_or_banner_first_line_drops_no_reading() -> None:
    profile = profile_from_dict(line_profile(pattern="(?P<pos>[0-9]+)", discard_first_line=True, ignore=["^#"]))
    for first in (b"\r\n", b"# v2\n"):
        dec = make_decoder(profile)
        assert feed(dec, first + b"5\n") == [Reading("pos", 5, 1000)]  # synced by it: nothing to announce
        assert dec.ignored == 1


@pytest.mark.parametrize("split", [False, True])
def test_an_overlong_first_line_is_discarded_however_it_is_read(split: bool) -> None:
    dec = make_decoder(
        profile_from_dict(line_profile(pattern="(?P<pos>[0-9]+)", max_length=8, discard_first_line=True))
    )
    data = b"1" * 30 + b"\n5\n"
    out = feed(dec, *([data[:10], data[10:20], data[20:]] if split else [data]))
    assert [type(i) for i in out] == [Discarded, Reading]


def test_after_a_gap_the_next_line_is_discarded_never_spliced_nor_read_as_whole() -> None:
    """A reader process died with a round unsent ("2\n300\n" of "512\n300\n" say): the decoder held
    "51". Spliced onto what comes next, "51" + "7" would be a reading of 517; reset as after an open,
    "7" would read as whole. After a gap the cut line, start and end, is one discarded item, said."""
    profile = profile_from_dict(line_profile(pattern="(?P<pos>[0-9]+)"))  # no discard_first_line
    dec = make_decoder(profile, synced=True)
    assert feed(dec, b"40\n", b"51") == [Reading("pos", 40, 1000)]
    assert dec.reset() == b"51"  # what an open does: the start is dropped (the caller counts it) ...
    assert feed(dec, b"7\n") == [Reading("pos", 7, 1000)]  # ... and the 7 reads as whole: a value never sent
    feed(dec, b"51")
    assert dec.reset(after_gap=True) == b""  # nothing dropped now: the start waits for its end
    out = feed(dec, b"7\n", b"300\n")
    assert out == [Discarded(out[0].reason, b"517", 1000), Reading("pos", 300, 1001)]  # type: ignore[union-attr]
    assert "after a gap" in out[0].reason  # type: ignore[union-attr]
    # Nothing held: the lost round may have been a line's start all the same, so the next line goes.
    assert dec.reset(after_gap=True) == b""
    out = feed(dec, b"7\n", b"8\n")
    assert [type(i) for i in out] == [Discarded, Reading] and out[0].data == b"7"  # type: ignore[union-attr]
    dec.reset(after_gap=True)  # a gap at a line's end: an empty "line" is no reading, nothing to discard
    assert feed(dec, b"\n8\n") == [Reading("pos", 8, 1000)]
    feed(dec, b"5")
    dec.reset(after_gap=True)
    assert dec.reset() == b"5"  # a gap, then an open: what the gap kept is dropped then, for counting


def test_after_a_gap_a_frame_decoder_hunts_its_sync_and_counts_the_cut_frame_once() -> None:
    frames = make_decoder(REGISTRY.get("dialdaq-frame-v1").profile, synced=True)
    assert [type(i) for i in feed(frames, frame_v1(100), frame_v1(200)[:3])] == [Reading]
    assert frames.reset(after_gap=True) == frame_v1(200)[:3]  # the start, for the caller to count
    out = feed(frames, frame_v1(200)[3:], frame_v1(300))
    assert [i.raw for i in out if isinstance(i, Reading)] == [300]
    assert counted_garbage(out) == 0 and any(isinstance(i, Garbage) for i in out)  # the rest: said, not again counted
    # Nothing held at the gap: the rest of a frame whose start was lost is counted as garbage.
    assert frames.reset(after_gap=True) == b""
    out = feed(frames, frame_v1(200)[3:], frame_v1(300))
    assert [i.raw for i in out if isinstance(i, Reading)] == [300] and counted_garbage(out) == 1


def test_a_gap_inside_an_overlong_line_counts_that_line_once() -> None:
    profile = profile_from_dict(line_profile(pattern="(?P<pos>[0-9]+)", max_length=8))
    dec = make_decoder(profile, synced=True)
    out = feed(dec, b"1234567890123")
    assert [type(i) for i in out] == [Garbage]  # the overlong line, counted once
    assert dec.reset(after_gap=True) == b""
    out = feed(dec, b"45\n", b"6\n")
    assert out == [Reading("pos", 6, 1001)]  # its rest skipped with it, not a second loss


def test_a_gap_in_a_garbage_run_counts_the_run_once() -> None:
    """Noise before a gap is one garbage run: the byte kept at its end (in case a sync was cut
    there) is not a frame's start, and the noise after the gap continues the run."""
    frames = make_decoder(REGISTRY.get("dialdaq-frame-v1").profile, synced=True)
    noise = b"\x11" * 9
    out = feed(frames, noise)
    assert counted_garbage(out) == 1
    assert frames.reset(after_gap=True) == b""
    out = feed(frames, noise, frame_v1(300))
    assert counted_garbage(out) == 0 and [i.raw for i in out if isinstance(i, Reading)] == [300]
    # A frame's first byte at a chunk's end, then a gap: that start is returned, to count, after
    # noise too (it may be a frame's start: counted rather than lost).
    sync = frame_v1(1)[:1]
    feed(frames, sync)
    assert frames.reset(after_gap=True) == sync
    feed(frames, noise + sync)
    assert frames.reset(after_gap=True) == sync


def test_a_decoder_bug_says_what_it_held_and_reads_the_next_line_as_possibly_cut() -> None:
    """A decoder that raises: its buffer is said with the chunk in one garbage item, and since the
    chunk may have ended inside a line, the line after it is discarded (counted), not read as whole."""
    profile = profile_from_dict(line_profile(pattern="(?P<pos>[0-9]+)"))
    dec = make_decoder(profile, synced=True)
    inner = dec._inner
    feed(dec, b"51")
    real_feed = inner.feed
    inner.feed = lambda chunk: (_ for _ in ()).throw(IndexError("a bug"))  # type: ignore[method-assign]
    out = feed(dec, b"2\n3")
    inner.feed = real_feed  # type: ignore[method-assign]
    assert len(out) == 1 and isinstance(out[0], Garbage) and "IndexError: a bug" in out[0].reason
    assert out[0].data == b"512\n3"
    out = feed(dec, b"00\n", b"4\n")
    assert [type(i) for i in out] == [Discarded, Reading] and out[1].raw == 4  # type: ignore[union-attr]


def test_which_bundled_profiles_discard_their_first_line() -> None:
    discarding = sorted(p.id for p in REGISTRY.all() if getattr(p.profile.framing, "discard_first_line", False))
    # Arduino boards reset when the port opens; the Teensy streams without pause (README, firmware profiles).
    assert discarding == ["arduino-encoder", "arduino-pot", "teensy-fast"]


# ---------------------------------------------------------------- 14: garbage counted per run, not per read


def frame_v1(position: int, buttons: int = 0) -> bytes:
    body = bytes([0xAA, 0x55, position & 0xFF, position >> 8, buttons])
    check = 0
    for b in body:
        check ^= b
    return body + bytes([check])


def test_the_same_junk_split_over_three_reads_counts_once() -> None:
    junk = bytes(range(0x10, 0x40))  # no sync in it
    stream = frame_v1(1) + junk + frame_v1(2)
    whole = feed(make_decoder(REGISTRY.get("dialdaq-frame-v1"), synced=True), stream)
    a, b = 6 + 16, 6 + 32
    split = feed(make_decoder(REGISTRY.get("dialdaq-frame-v1"), synced=True), stream[:a], stream[a:b], stream[b:])
    assert counted_garbage(whole) == counted_garbage(split) == 1
    assert sum(len(g.data) for g in split if isinstance(g, Garbage)) == len(junk)
    assert [r.raw for r in split if isinstance(r, Reading)] == [1, 2]


def test_two_runs_count_twice() -> None:
    stream = frame_v1(1) + b"\x01\x02" + frame_v1(2) + frame_v1(3)[:-1] + b"\x00" + frame_v1(4)
    out = feed(make_decoder(REGISTRY.get("dialdaq-frame-v1"), synced=True), stream)
    assert counted_garbage(out) == 2
    assert [r.raw for r in out if isinstance(r, Reading)] == [1, 2, 4]


JUNK = st.one_of(
    st.binary(min_size=1, max_size=30),
    st.builds(lambda f, n: f[:n], st.builds(frame_v1, st.integers(0, 1023)), st.integers(1, 5)),
    st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=20).map(bytes),
)
LINE_JUNK = st.one_of(
    st.binary(min_size=1, max_size=30).map(lambda b: b.replace(b"\n", b"") + b"\n"),
    st.text("0123456789", min_size=17, max_size=60).map(lambda t: t.encode() + b"\n"),
    st.sampled_from([b"Ready\n", b"12a\n", b"\xff\xfe\n", b"99999\n"]),
)


def splits(data: st.DataObject, stream: bytes) -> list[bytes]:
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=15)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@pytest.mark.parametrize("pid", ["dialdaq-frame-v1", "arduino-pot", "teensy-fast", "arduino-encoder"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_split_points_do_not_change_the_garbage_count(pid: str, data: st.DataObject) -> None:
    binary = pid == "dialdaq-frame-v1"
    parts: list[bytes] = []
    for _ in range(data.draw(st.integers(1, 12))):
        if data.draw(st.booleans()):
            parts.append(data.draw(JUNK if binary else LINE_JUNK))
        value = data.draw(st.integers(0, 1023))
        parts.append(frame_v1(value) if binary else b"%d\n" % value)
    stream = b"".join(parts)
    synced = data.draw(st.booleans())  # also across the first line a profile discards
    whole = feed(make_decoder(REGISTRY.get(pid), synced=synced), stream)
    split = feed(make_decoder(REGISTRY.get(pid), synced=synced), *splits(data, stream))
    assert counted_garbage(split) == counted_garbage(whole)
    assert sum(isinstance(i, Discarded) for i in split) == sum(isinstance(i, Discarded) for i in whole)
    assert [(r.channel, r.raw) for r in split if isinstance(r, Reading)] == [
        (r.channel, r.raw) for r in whole if isinstance(r, Reading)
    ]


def what(out: list[Decoded]) -> list[str]:
    """Everything a decoder said, every field (the read time included)."""
    return [repr(i) for i in out]


@pytest.mark.parametrize("pid", ["arduino-pot", "teensy-fast", "arduino-encoder"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_chunk_of_one_line_decodes_as_the_same_line_in_a_stream(pid: str, data: st.DataObject) -> None:
    # A chunk that is exactly one line takes a shorter path (no buffer): what it yields must be what
    # the same line yields inside a longer read, garbage messages and read times included.
    lines = [
        data.draw(st.one_of(LINE_JUNK, st.integers(0, 5000).map(lambda v: b"%d\n" % v), st.just(b"7\r\n")))
        for _ in range(data.draw(st.integers(1, 12)))
    ]
    synced = data.draw(st.booleans())
    one_by_one = make_decoder(REGISTRY.get(pid), synced=synced)
    by_line: list[Decoded] = []
    for line in lines:
        by_line += one_by_one.feed(Chunk(line, 1000))
    assert what(by_line) == what(make_decoder(REGISTRY.get(pid), synced=synced).feed(Chunk(b"".join(lines), 1000)))


QUICK_CHUNKS = st.one_of(
    LINE_JUNK,
    st.integers(0, 5000).map(lambda v: b"%d\n" % v),
    st.integers(0, 5000).map(lambda v: b"%d\r\n" % v),
    st.integers(0, 5000).map(lambda v: b"t,%d,%d\n" % (v * 7, v)),
    st.sampled_from([b"\n", b" 12 \n", b"\r\n", b"12\n34\n", b"5", b"6\n7", b"# 8\n", b"t8\n", b"12\r\r\n"]),
    st.binary(min_size=0, max_size=8),
)


@pytest.mark.parametrize("pid", ["arduino-pot", "teensy-fast"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_quick_path_says_what_feed_says_or_nothing(pid: str, data: st.DataObject) -> None:
    # The station hands a chunk to `quick` first (daq.station.device_reader): when it gives a value,
    # feed is never called for that chunk, so that value must be exactly feed's one Reading (and
    # feed's state must not have mattered); when it gives None, feed decodes the chunk as ever.
    synced = data.draw(st.booleans())
    dec = make_decoder(REGISTRY.get(pid), synced=synced)
    twin = make_decoder(REGISTRY.get(pid), synced=synced)  # fed everything: what feed alone says
    quick = dec.quick
    assert quick is not None and dec.quick_channel == "position"
    for i, chunk in enumerate(data.draw(st.lists(QUICK_CHUNKS, min_size=1, max_size=15))):
        mono = 1000 + i
        alone = twin.feed(Chunk(chunk, mono))
        value = quick(chunk)
        if value is None:
            assert what(dec.feed(Chunk(chunk, mono))) == what(alone)
            continue
        assert what(alone) == what([Reading("position", value, mono)])
    plain = make_decoder(REGISTRY.get(pid), synced=True).quick
    assert plain is not None and plain(b"512\n") == 512  # the common line does take it


# Made-up profiles where each of `quick`'s rules decides something: a decimal channel with a float
# range, an optional group with a two-byte terminator and a short max_length, padding with an ignore
# that overlaps the pattern, a terminator of its own with the first line discarded.
QUICK_PROFILES: list[dict[str, Any]] = [
    {"pattern": r"(?P<pos>[-+0-9.eE]+)", "channels": {"kind": "absolute", "number": "decimal", "range": [-1.5, 2.5]}},
    {"pattern": r"(?P<pos>[0-9]+)?x?", "terminator": "\r\n", "max_length": 5},
    {"pattern": r"\s*(?P<pos>[0-9]+)\s*", "max_length": 4, "encoding": "ascii", "ignore": ["^9"]},
    {"pattern": r"(?P<pos>.+)", "terminator": ";;", "max_length": 6, "discard_first_line": True},
]
QUICK_TOKENS = [b"", b"1", b"9", b"0", b"2.5", b"-1e0", b"12345", b" ", b"\t", b"\r", b"\n", b";", b"x", b"e"]
QUICK_TOKENS += [b"\xa0", b"\xff", b"+", b".", b"  "]


@pytest.mark.parametrize("synced", [True, False])
@pytest.mark.parametrize("case", range(len(QUICK_PROFILES)))
def test_the_quick_path_keeps_every_rule_of_feed(case: int, synced: bool) -> None:
    # Every chunk of up to three tokens, with and without the terminator, in turn into one decoder
    # (its state carried along) and into its twin that only feeds.
    framing = dict(QUICK_PROFILES[case])
    channel = framing.pop("channels", {"kind": "absolute", "range": [0, 10]})
    raw = line_profile(**framing)
    raw["channels"] = {"pos": channel}
    profile = profile_from_dict(raw)
    dec, twin = make_decoder(profile, synced=synced), make_decoder(profile, synced=synced)
    quick = dec.quick
    assert quick is not None and dec.quick_channel == "pos"
    term = profile.framing.terminator.encode()  # type: ignore[union-attr]  # a line framing
    took = 0
    # Whole lines first (each may take the shortcut), then the same cut (a buffer held: none may).
    for i, parts in enumerate(itertools.product((term, b""), QUICK_TOKENS, QUICK_TOKENS, (b"", b" 7", b"9 ", b"  "))):
        chunk = b"".join((*parts[1:], parts[0]))
        alone = twin.feed(Chunk(chunk, i))
        value = quick(chunk)
        if value is None:
            assert what(dec.feed(Chunk(chunk, i))) == what(alone), chunk
        else:
            took += 1
            assert what(alone) == what([Reading("pos", value, i)]), chunk
        assert dec.ignored == twin.ignored, chunk
    assert took >= 20  # the shortcut was taken (42-101 times), not only refused


def test_only_the_one_absolute_value_line_has_a_quick_path() -> None:
    assert make_decoder(REGISTRY.get("arduino-encoder")).quick_channel is None  # a counter and a button
    assert make_decoder(REGISTRY.get("dialdaq-frame-v1")).quick is None  # binary frames
    columns = profile_from_dict(line_profile(delimiter=",", fields={"pos": 0}))
    assert make_decoder(columns).quick_channel is None
    pot = make_decoder(REGISTRY.get("arduino-pot"))  # discards its first line: not quick until it came
    quick = pot.quick
    assert quick is not None and quick(b"5\n") is None
    pot.feed(Chunk(b"4\n", 1))
    assert quick(b"5\n") == 5
    assert quick(b"2000\n") is None  # out of 0..1023: feed makes it garbage, with the reason


# ---------------------------------------------------------------- 14: the device's own sequence counter


def seq_line_profile(**sequence: Any) -> Profile:
    data = line_profile(pattern="(?P<n>[0-9]+),(?P<pos>[0-9]+)")
    data["sequence"] = {"field": "n", **sequence}
    return profile_from_dict(data)


def losses(out: list[Decoded]) -> list[tuple[int, int, int]]:
    return [(i.lost, i.expected, i.got) for i in out if isinstance(i, DeviceLoss)]


def test_a_jump_in_the_device_counter_is_device_side_loss() -> None:
    dec = make_decoder(seq_line_profile(wrap=256), synced=True)
    lines = [b"%d,%d\n" % (n % 256, n) for n in [250, 251, 252, 255, 256, 257, 260]]  # 253, 254, 258, 259 lost
    out = feed(dec, b"".join(lines))
    assert losses(out) == [(2, 253, 255), (2, 2, 4)]
    assert len([r for r in out if isinstance(r, Reading)]) == len(lines)  # the readings themselves all pass


def test_a_repeat_a_restart_and_a_reconnect_are_no_loss() -> None:
    dec = make_decoder(seq_line_profile(wrap=256), synced=True)
    out = feed(dec, b"10,1\n10,1\n11,1\n0,1\n1,1\n")  # a repeat; 11 -> 0 is a restart (more than half back)
    assert losses(out) == []
    dec.reset()  # after a reconnect the first report is the new baseline
    assert losses(feed(dec, b"90,1\n91,1\n")) == []


def test_an_unbounded_line_counter() -> None:
    dec = make_decoder(seq_line_profile(), synced=True)
    assert losses(feed(dec, b"1000,1\n1001,1\n1005,1\n3,1\n4,1\n")) == [(3, 1002, 1005)]


def test_a_binary_counter_wraps_at_its_width_by_default() -> None:
    data = {
        "spec": 1,
        "id": "b",
        "name": "b",
        "transport": "serial",
        "source": "test",
        "serial": {"baud": 9600},
        "framing": {"kind": "binary", "sync": "AA", "length": 4},
        "fields": {"n": {"offset": 1, "type": "uint8"}, "pos": {"offset": 2, "type": "uint16le"}},
        "channels": {"pos": {"kind": "absolute"}},
        "sequence": {"field": "n"},
    }
    dec = make_decoder(profile_from_dict(data), synced=True)
    frames = b"".join(bytes([0xAA, n, 5, 0]) for n in [254, 255, 1, 2])  # 0 lost at the wrap
    assert losses(feed(dec, frames)) == [(1, 0, 1)]


def test_a_report_counter() -> None:
    data = {
        "spec": 1,
        "id": "r",
        "name": "r",
        "transport": "hid",
        "source": "test",
        "framing": {"kind": "report", "length": 3},
        "fields": {"n": {"offset": 0, "type": "uint8"}, "pos": {"offset": 1, "type": "int8"}},
        "channels": {"pos": {"kind": "absolute"}},
        "sequence": {"field": "n", "wrap": 16},
    }
    dec = make_decoder(profile_from_dict(data), synced=True)
    assert losses(feed(dec, bytes([14, 1, 0]), bytes([15, 1, 0]), bytes([3, 2, 0]))) == [(3, 0, 3)]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"sequence": {"field": "nope"}}, "sequence.field"),
        ({"sequence": {"field": "n", "wrap": 1}}, "sequence.wrap"),
        ({"sequence": {"field": "n", "colour": 1}}, "sequence.colour"),
    ],
)
def test_sequence_mistakes_name_the_key(change: dict[str, Any], key: str) -> None:
    data = {**line_profile(pattern="(?P<n>[0-9]+),(?P<pos>[0-9]+)"), **change}
    with pytest.raises(ProfileError, match=key.replace(".", r"\.")):
        profile_from_dict(data)


def test_input_events_carry_no_sequence() -> None:
    data = REGISTRY.get("griffin-powermate-evdev").profile.model_dump(exclude_none=True)
    data["sequence"] = {"field": next(iter(data["framing"]["events"]))}
    with pytest.raises(ProfileError, match="sequence: evdev input carries no report counter"):
        profile_from_dict(data)


def test_the_schema_describes_sequence() -> None:
    schema = Profile.model_json_schema()
    assert "sequence" in schema["properties"]
    assert set(schema["$defs"]["SequenceCounter"]["properties"]) == {"field", "wrap"}


def test_device_lost_events_are_throttled_but_every_count_kept() -> None:
    now = [0.0]
    counter = LossCounter(clock=lambda: now[0])
    notices = [counter.count(DeviceLoss(2, 5, 7, 0))]
    now[0] = 0.5
    notices.append(counter.count(DeviceLoss(1, 9, 10, 0)))
    now[0] = 1.2
    notices.append(counter.count(DeviceLoss(4, 11, 15, 0)))
    assert [n.amount for n in notices] == [2, 1, 4]
    assert [n.kind for n in notices] == ["input.device_lost", None, "input.device_lost"]
    assert notices[2].data["lost"] == 5 and notices[2].data["jumps"] == 2 and notices[2].data["total"] == 7
    assert counter.device_lost == 7
    # A burst's last jump, held back, is announced at the first read after the interval.
    now[0] = 1.5
    notices.append(counter.count(DeviceLoss(3, 16, 19, 0)))
    assert notices[-1].kind is None and counter.flush() is None
    now[0] = 2.3
    held = counter.flush()
    assert held is not None and (held.kind, held.amount, held.data["lost"], held.data["total"]) == (
        "input.device_lost",
        0,
        3,
        10,
    )
    assert counter.flush() is None
    discarded = counter.count(Discarded("the first line", b"12\r\n", 0))
    assert (discarded.key, discarded.kind, discarded.data["input"]) == ("discarded", "input.discarded", "12")


# ---------------------------------------------------------------- 13.7: numbers a profile may not hold


@pytest.mark.parametrize(
    ("channel", "key"),
    [
        ({"kind": "absolute", "range": [0, float("nan")]}, "channels.pos.range"),
        ({"kind": "absolute", "range": [0, float("inf")]}, "channels.pos.range"),
        ({"kind": "absolute", "range": [-1e308, 1e308]}, "channels.pos.range"),
        ({"kind": "relative", "max_delta": float("inf")}, "channels.pos.max_delta"),
        ({"kind": "relative", "counts_per_turn": 1e-320}, "channels.pos.counts_per_turn"),
        ({"kind": "relative", "counts_per_turn": float("nan")}, "channels.pos.counts_per_turn"),
        ({"kind": "relative", "detents_per_turn": 10**400}, "channels.pos.detents_per_turn"),
    ],
)
def test_non_finite_profile_numbers_are_refused(channel: dict[str, Any], key: str) -> None:
    data = line_profile(pattern="(?P<pos>[0-9]+)")
    data["channels"] = {"pos": channel}
    with pytest.raises(ProfileError, match=key.replace(".", r"\.")):
        profile_from_dict(data)


def test_a_nan_in_a_profile_file_is_refused(tmp_path: Any) -> None:
    from daq.profiles.loader import load_profile

    path = tmp_path / "p.toml"
    path.write_text(
        'spec = 1\nid = "p"\nname = "p"\ntransport = "serial"\nsource = "t"\n[serial]\nbaud = 9600\n'
        "[framing]\nkind = \"line\"\npattern = '(?P<pos>[0-9]+)'\n"
        '[channels.pos]\nkind = "absolute"\nrange = [0, nan]\n'
    )
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(path) in str(info.value) and "channels.pos.range" in str(info.value) and "finite" in str(info.value)
