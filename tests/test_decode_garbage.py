"""Garbage in, no invented values out: property tests over every bundled profile.

What the properties claim, and why they are stated this way:

* A decoder cannot tell a noise burst that happens to look exactly like a frame from a frame
  ('12\\r\\n' is a fine line for a pot), and an 8-bit checksum passes one random frame in 256.
  So the noise here is noise that is NOT itself a frame: wrong-baud bytes (0x80-0xFF mixed
  with digits), random bytes, overlong digit runs, banners, cut and corrupted binary frames.
  For binary profiles a reference check rejects the rare stream where noise bytes do form a
  valid frame (`assume`), since no decoder could refuse that one.
* Noise is inserted only between frames. A line profile's noise may be followed by a
  terminator (a resync) or run straight into the next frame, which then is lost. A lost
  reading is fine; a value that was never sent is not.
* A line cut in the middle (a cut '512' reads as '12') is only detectable where the cut is
  known: at a reconnect. So cut lines and frames are tested across `reset()`.

Given those inputs the expected output is exact: the test runs a small reference model of
the firmware's frames (independent of the decoder code) over the frames that must arrive,
and the decoder's readings and button events must equal it, stamped with the chunk that
completed each frame. That implies the headline property: readings are a subsequence of
what the firmware sent.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from daq.profiles.decode import Decoder, make_decoder
from daq.profiles.loader import ProfileRegistry
from daq.reading import ButtonEvent, Chunk, Decoded, Discarded, Garbage, Reading

REGISTRY = ProfileRegistry.load()
PROFILES = ["arduino-pot", "arduino-encoder", "dialdaq-frame-v1", "teensy-fast"]
LINE_PROFILES = {"arduino-pot", "arduino-encoder", "teensy-fast"}

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Fields = dict[str, int]
RESET = None  # a reconnect, in a list of frame events


def test_every_bundled_profile_is_covered() -> None:
    # HID, input-device and MIDI profiles: tests/test_decode_hid_profiles.py
    assert sorted(PROFILES) == sorted(p.id for p in REGISTRY.all() if p.profile.transport == "serial")


# ---------------------------------------------------------------- the firmware, as the profile files document it


def xor8(data: bytes) -> int:
    out = 0
    for b in data:
        out ^= b
    return out


def frame_v1(position: int, buttons: int) -> bytes:
    body = bytes([0xAA, 0x55, position & 0xFF, position >> 8, buttons])
    return body + bytes([xor8(body)])


def fake_v1_frames(stream: bytes, real_starts: set[int]) -> bool:
    """Reference check: do bytes outside the real frames form a frame that checks?"""
    at = stream.find(b"\xaa\x55")
    while at >= 0:
        cand = stream[at : at + 6]
        if at not in real_starts and len(cand) == 6 and xor8(cand[:5]) == cand[5] and cand[3] << 8 | cand[2] <= 1023:
            return True
        at = stream.find(b"\xaa\x55", at + 1)
    return False


def draw_frames(data: st.DataObject, pid: str, n: int) -> list[tuple[bytes, Fields]]:
    """n frames as the firmware sends them, with the field values each carries."""
    frames: list[tuple[bytes, Fields]] = []
    count = data.draw(st.integers(-30000, 30000))
    for _ in range(n):
        term = data.draw(st.sampled_from([b"\r\n", b"\n"]))
        if pid == "arduino-pot":
            v = data.draw(st.integers(0, 1023))
            frames.append((b"%d" % v + term, {"position": v}))
        elif pid == "teensy-fast":
            v = data.draw(st.integers(0, 4095))
            micros = data.draw(st.integers(0, 2**32 - 1))
            text = data.draw(st.sampled_from([b"t,%d,%d" % (micros, v), b"%d" % v]))
            frames.append((text + term, {"position": v}))
        elif pid == "arduino-encoder":
            if data.draw(st.integers(0, 3)) == 0:
                b = data.draw(st.integers(0, 1))
                frames.append((b"B:%d" % b + term, {"button": b}))
            else:
                count += data.draw(st.integers(-20, 20))  # even 25 lost lines stay under max_delta
                text = data.draw(st.sampled_from([b"E:%d" % count, b"%d" % count]))
                frames.append((text + term, {"count": count}))
        else:
            pos, buttons = data.draw(st.integers(0, 1023)), data.draw(st.integers(0, 3))
            frames.append((frame_v1(pos, buttons), {"position": pos, "buttons": buttons}))
    return frames


def reference(pid: str, events: list[tuple[Fields, int] | None]) -> list[Decoded]:
    """What the profile means, written out plainly: the readings and button events due."""
    out: list[Decoded] = []
    previous: int | None = None
    total = 0
    pressed: dict[str, bool] = {}

    def button(name: str, state: bool, mono: int) -> None:
        if state != pressed.get(name, False):
            pressed[name] = state
            out.append(ButtonEvent(name, state, mono))

    for event in events:
        if event is RESET:
            previous = None  # counters re-baseline; totals and button states stay
            continue
        fields, mono = event
        if "position" in fields:
            out.append(Reading("position", fields["position"], mono))
        if "buttons" in fields:
            button("press", bool(fields["buttons"] & 1), mono)
            button("aux", bool(fields["buttons"] & 2), mono)
        if "count" in fields:
            count = fields["count"]
            if previous is not None and count != previous:
                total += count - previous
                out.append(Reading("count", total, mono))
            previous = count
        if "button" in fields:
            button("button", bool(fields["button"]), mono)
    return out


# ---------------------------------------------------------------- noise that is not a frame


def _with_high_byte(data: bytes) -> bytes:
    return data if any(b >= 0x80 for b in data) else data + b"\xff"


WRONG_BAUD = st.lists(st.one_of(st.integers(0x80, 0xFF), st.integers(0x30, 0x39)), min_size=1, max_size=40).map(
    lambda xs: _with_high_byte(bytes(xs))
)


def noise_for(pid: str) -> st.SearchStrategy[bytes]:
    framing = REGISTRY.get(pid).profile.framing
    if pid in LINE_PROFILES:
        max_length = getattr(framing, "max_length", 256)
        return st.one_of(
            WRONG_BAUD,
            st.binary(min_size=1, max_size=40).map(lambda b: _with_high_byte(b.replace(b"\n", b""))),
            st.text("0123456789", min_size=max_length + 1, max_size=3 * max_length).map(str.encode),
            st.sampled_from([b"Ready", b"# dial v2", b"Hello world\r"]),
        )
    frame = st.builds(frame_v1, st.integers(0, 1023), st.integers(0, 3))
    return st.one_of(
        WRONG_BAUD,
        st.binary(min_size=1, max_size=40),
        st.tuples(frame, st.integers(1, 5)).map(lambda fk: fk[0][: fk[1]]),  # a cut frame
        st.tuples(frame, st.integers(2, 5), st.integers(1, 255)).map(  # one byte corrupted
            lambda f: f[0][: f[1]] + bytes([f[0][f[1]] ^ f[2]]) + f[0][f[1] + 1 :]
        ),
    )


# ---------------------------------------------------------------- feeding


@dataclass
class Fed:
    out: list[Decoded]
    monos: list[int]


def chunked(data: st.DataObject, stream: bytes) -> tuple[list[bytes], Callable[[int], int]]:
    """Cut `stream` into chunks; returns them and end_offset -> mono_ns of the chunk holding that end."""
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=12))) if len(stream) > 1 else []
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]

    def mono_of(end: int) -> int:
        return 1000 + bisect.bisect_right(cuts, end - 1)

    return chunks, mono_of


def feed(dec: Decoder, chunks: list[bytes], first_mono: int = 1000) -> list[Decoded]:
    out: list[Decoded] = []
    for i, chunk in enumerate(chunks):
        out += dec.feed(Chunk(chunk, first_mono + i))
    return out


def check_sane(out: list[Decoded]) -> list[Decoded]:
    """No decoder errors; return the readings and button events."""
    for item in out:
        assert isinstance(item, Reading | ButtonEvent | Garbage | Discarded)
        if isinstance(item, Garbage):
            assert not item.reason.startswith("decoder error"), item
    return [i for i in out if isinstance(i, Reading | ButtonEvent)]


def values(items: list[Decoded]) -> list[tuple[str, int | float]]:
    return [(r.channel, r.raw) for r in items if isinstance(r, Reading)]


def assert_subsequence(got: list[Any], sent: list[Any]) -> None:
    it = iter(sent)
    assert all(any(g == s for s in it) for g in got), (got, sent)


# ---------------------------------------------------------------- the properties


@pytest.mark.parametrize("pid", PROFILES)
@FAST
@given(data=st.data())
def test_noise_between_frames_never_yields_a_value_that_was_not_sent(pid: str, data: st.DataObject) -> None:
    frames = draw_frames(data, pid, data.draw(st.integers(1, 25)))
    noise = noise_for(pid)
    stream = bytearray()
    arrivals: list[tuple[int, Fields]] = []  # (end offset, fields) of frames that must arrive
    starts: set[int] = set()
    for i, (raw, fields) in enumerate(frames):
        glued = False
        if i > 0 and data.draw(st.booleans()):
            stream += data.draw(noise)
            if pid in LINE_PROFILES:
                resync = data.draw(st.sampled_from([b"", b"\n", b"\r\n"]))
                stream += resync
                glued = not resync  # noise and frame on one line: the frame is lost
        starts.add(len(stream))
        stream += raw
        if not glued:
            arrivals.append((len(stream), fields))
    if pid == "dialdaq-frame-v1":
        assume(not fake_v1_frames(bytes(stream), starts))

    chunks, mono_of = chunked(data, bytes(stream))
    got = check_sane(feed(make_decoder(REGISTRY.get(pid), synced=True), chunks))

    # The headline: every reading is one the firmware sent. (A counter's sum counts from the
    # first count line that arrives, so for it the exact check below is the statement.)
    if pid != "arduino-encoder":
        sent = reference(pid, [(fields, 0) for _, fields in frames])
        assert_subsequence(values(got), values(sent))
    # And exactly which: all frames arrive but those that noise ran into, at their chunk's time.
    assert got == reference(pid, [(fields, mono_of(end)) for end, fields in arrivals])


@pytest.mark.parametrize("pid", PROFILES)
@FAST
@given(data=st.data())
def test_a_cut_at_a_reconnect_yields_no_value_that_was_not_sent(pid: str, data: st.DataObject) -> None:
    before = draw_frames(data, pid, data.draw(st.integers(1, 8)))
    after = draw_frames(data, pid, data.draw(st.integers(1, 8)))
    stream_a = b"".join(raw for raw, _ in before)
    stream_b = b"".join(raw for raw, _ in after)
    cut_a = data.draw(st.integers(0, len(stream_a)))  # unplugged here
    cut_b = data.draw(st.integers(0, len(stream_b) - 1))  # reopened mid-stream here

    dec = make_decoder(REGISTRY.get(pid), synced=True)
    chunks_a, mono_a = chunked(data, stream_a[:cut_a])
    out = feed(dec, chunks_a)
    dec.reset()
    tail = stream_b[cut_b:]
    chunks_b, mono_b = chunked(data, tail)
    out += feed(dec, chunks_b, first_mono=2000)
    got = check_sane(out)

    events: list[tuple[Fields, int] | None] = []
    end = 0
    for raw, fields in before:
        end += len(raw)
        if end <= cut_a:
            events.append((fields, mono_a(end)))
    events.append(RESET)
    # After reopening, a line profile drops everything up to the first terminator (the line may
    # be cut); a binary profile hunts for the next sync.
    first_line_end = tail.find(b"\n") + 1 if pid in LINE_PROFILES else 0
    end = 0
    for raw, fields in after:
        start, end = end, end + len(raw)
        if start >= cut_b and end - cut_b > first_line_end:
            events.append((fields, mono_b(end - cut_b) + 1000))
    assert got == reference(pid, events)


@pytest.mark.parametrize("pid", PROFILES)
@FAST
@given(chunks=st.lists(st.binary(max_size=80), max_size=12), resets=st.sets(st.integers(0, 11)))
def test_any_bytes_never_raise(pid: str, chunks: list[bytes], resets: set[int]) -> None:
    profile = REGISTRY.get(pid).profile
    dec = make_decoder(profile)
    for i, chunk in enumerate(chunks):
        for item in dec.feed(Chunk(chunk, i)):
            assert item.mono_ns == i
            if isinstance(item, Garbage):
                assert not item.reason.startswith("decoder error"), item
            elif isinstance(item, Reading):
                channel = profile.channels[item.channel]
                if channel.range is not None:
                    assert channel.range[0] <= item.raw <= channel.range[1]
        if i in resets:
            dec.reset()
    assert dec.ignored >= 0
