"""Decoders over exact bytes: the bundled profiles, and each framing and channel kind.

Every test feeds the bytes a device sends (as documented in the profile file) and checks the
readings, their channels and the `mono_ns` they carry.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from daq.profiles.decode import Decoder, make_decoder
from daq.profiles.framing import crc8_maxim, crc16_modbus, sum8, xor8
from daq.profiles.loader import LoadedProfile, ProfileRegistry, profile_from_dict
from daq.reading import ButtonEvent, Chunk, Decoded, Discarded, Garbage, Reading

FIRST_LINE = "the first line after the port opened (discard_first_line: it may be cut)"


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load()


def decoder(registry: ProfileRegistry, profile_id: str, *, synced: bool = True) -> Decoder:
    return make_decoder(registry.get(profile_id), synced=synced)


def feed(dec: Decoder, *chunks: bytes, start_ns: int = 1000) -> list[Decoded]:
    """Feed chunks stamped start_ns, start_ns + 1, ..."""
    out: list[Decoded] = []
    for i, data in enumerate(chunks):
        out += dec.feed(Chunk(data, start_ns + i))
    return out


def readings(items: list[Decoded]) -> list[tuple[str, int | float]]:
    return [(r.channel, r.raw) for r in items if isinstance(r, Reading)]


def garbage(items: list[Decoded]) -> list[Garbage]:
    return [g for g in items if isinstance(g, Garbage)]


def frame_v1(position: int, buttons: int = 0) -> bytes:
    """A dialdaq frame v1, built as the comment in dialdaq-frame-v1.toml tells firmware to."""
    body = bytes([0xAA, 0x55, position & 0xFF, position >> 8, buttons])
    return body + bytes([xor8(body)])


# ---------------------------------------------------------------- checksums


def test_checksum_algorithms_match_the_published_check_values() -> None:
    data = b"123456789"
    assert crc8_maxim(data) == 0xA1  # CRC-8/MAXIM-DOW check value
    assert crc16_modbus(data) == 0x4B37  # CRC-16/MODBUS check value
    assert sum8(data) == 0xDD
    assert xor8(data) == 0x31


# ---------------------------------------------------------------- arduino-pot


def test_pot_exact_lines(registry: ProfileRegistry) -> None:
    out = feed(decoder(registry, "arduino-pot"), b"512\r\n0\r\n1023\n")
    assert out == [
        Reading("position", 512, 1000),
        Reading("position", 0, 1000),
        Reading("position", 1023, 1000),
    ]
    assert all(isinstance(r.raw, int) for r in out if isinstance(r, Reading))


def test_pot_line_split_over_chunks_is_stamped_by_the_last_chunk(registry: ProfileRegistry) -> None:
    dec = decoder(registry, "arduino-pot")
    assert feed(dec, b"5", b"12\r", b"\n4", b"00\r\n", start_ns=10) == [
        Reading("position", 512, 12),
        Reading("position", 400, 13),
    ]


def test_pot_drops_the_first_line_after_opening_and_banners(registry: ProfileRegistry) -> None:
    dec = decoder(registry, "arduino-pot", synced=False)
    out = feed(dec, b"23\r\n", b"Ready\r\n# pot v2\r\n\r\n", b"700\r\n")
    # The possibly cut first line is dropped on purpose, and says so; banners are ignored.
    assert out == [Discarded(FIRST_LINE, b"23\r", 1000), Reading("position", 700, 1002)]
    assert dec.ignored == 3  # two banners, an empty line


def test_pot_garbage(registry: ProfileRegistry) -> None:
    out = feed(decoder(registry, "arduino-pot"), b"2000\r\n\xf0\xe1\r\n12a\r\n-5\r\n300\r\n")
    assert readings(out) == [("position", 300)]
    reasons = [g.reason for g in garbage(out)]
    assert reasons == [
        "position: 2000 is outside 0..1023",
        "not ascii text",
        "line does not match the profile's pattern",
        "line does not match the profile's pattern",
    ]
    assert garbage(out)[1].data == b"\xf0\xe1\r"


def test_pot_overlong_line_is_one_garbage_then_decoding_resumes(registry: ProfileRegistry) -> None:
    dec = decoder(registry, "arduino-pot")  # max_length 16
    out = feed(dec, b"1" * 10, b"2" * 10, b"3" * 10, b"\r\n512\r\n", b"9" * 40 + b"\r\n1\r\n")
    assert readings(out) == [("position", 512), ("position", 1)]
    assert [g.reason for g in garbage(out)] == ["line longer than 16 bytes"] * 2
    assert [g.mono_ns for g in garbage(out)] == [1001, 1004]


def test_pot_reset_drops_the_cut_line(registry: ProfileRegistry) -> None:
    dec = decoder(registry, "arduino-pot")
    assert feed(dec, b"51") == []
    dec.reset()  # unplugged mid-line; after reopening, the first line may be cut too
    assert feed(dec, b"2\r\n300\r\n") == [Discarded(FIRST_LINE, b"2\r", 1000), Reading("position", 300, 1000)]


# ---------------------------------------------------------------- arduino-encoder


def test_encoder_counts_from_the_first_line_as_baseline(registry: ProfileRegistry) -> None:
    dec = decoder(registry, "arduino-encoder")
    out = feed(dec, b"E:5\r\n", b"E:7\r\n", b"-3\r\n", b"E:-3\r\n", b"+4\r\n")
    assert out == [Reading("count", 2, 1001), Reading("count", -8, 1002), Reading("count", -1, 1004)]


def test_encoder_wraps_like_a_16_bit_int(registry: ProfileRegistry) -> None:
    out = feed(decoder(registry, "arduino-encoder"), b"E:32766\r\nE:-32768\r\nE:32767\r\n")
    assert readings(out) == [("count", 2), ("count", 1)]


def test_encoder_jump_is_garbage_and_a_new_baseline(registry: ProfileRegistry) -> None:
    out = feed(decoder(registry, "arduino-encoder"), b"E:10\r\nE:11\r\nE:5000\r\nE:5003\r\n")
    assert readings(out) == [("count", 1), ("count", 4)]
    assert [g.reason for g in garbage(out)] == ["count: step 4989 is larger than max_delta 1000"]


def test_encoder_total_survives_a_reconnect(registry: ProfileRegistry) -> None:
    dec = decoder(registry, "arduino-encoder")
    assert readings(feed(dec, b"E:100\r\nE:110\r\n")) == [("count", 10)]
    dec.reset()  # the board resets when the port reopens and counts from 0 again
    out = feed(dec, b"Encoder ready\r\n", b"E:0\r\nE:3\r\n")
    assert readings(out) == [("count", 13)]


def test_encoder_button_reports_changes_only(registry: ProfileRegistry) -> None:
    out = feed(decoder(registry, "arduino-encoder"), b"B:1\r\nB:1\r\nE:4\r\nB:0\r\nB:0\r\n", b"B:1\r\n")
    assert [i for i in out if isinstance(i, ButtonEvent)] == [
        ButtonEvent("button", True, 1000),
        ButtonEvent("button", False, 1000),
        ButtonEvent("button", True, 1001),
    ]


def test_encoder_malformed_lines_are_garbage(registry: ProfileRegistry) -> None:
    out = feed(decoder(registry, "arduino-encoder"), b"E:\r\nB:2\r\nE:1:2\r\n")
    assert len(garbage(out)) == 3
    assert readings(out) == []


# ---------------------------------------------------------------- dialdaq-frame-v1


def test_frame_v1_documented_example(registry: ProfileRegistry) -> None:
    assert frame_v1(512, 1) == bytes.fromhex("AA 55 00 02 01 FC")
    out = feed(decoder(registry, "dialdaq-frame-v1"), bytes.fromhex("AA 55 00 02 01 FC"))
    assert out == [Reading("position", 512, 1000), ButtonEvent("press", True, 1000)]


def test_frame_v1_buttons(registry: ProfileRegistry) -> None:
    dec = decoder(registry, "dialdaq-frame-v1")
    out = feed(dec, frame_v1(1, 0b01), frame_v1(2, 0b11), frame_v1(3, 0b10), frame_v1(4, 0b00))
    assert [(e.button, e.pressed, e.mono_ns) for e in out if isinstance(e, ButtonEvent)] == [
        ("press", True, 1000),
        ("aux", True, 1001),
        ("press", False, 1002),
        ("aux", False, 1003),
    ]


@pytest.mark.parametrize("cut", range(1, 12))
def test_frame_v1_split_anywhere(registry: ProfileRegistry, cut: int) -> None:
    stream = frame_v1(100) + frame_v1(1023)
    out = feed(decoder(registry, "dialdaq-frame-v1"), stream[:cut], stream[cut:])
    assert readings(out) == [("position", 100), ("position", 1023)]
    assert [r.mono_ns for r in out if isinstance(r, Reading)] == [1000 if cut >= 6 else 1001, 1001]
    assert garbage(out) == []


def test_frame_v1_bad_checksum_is_garbage(registry: ProfileRegistry) -> None:
    bad = bytearray(frame_v1(300))
    bad[2] ^= 0x01
    out = feed(decoder(registry, "dialdaq-frame-v1"), bytes(bad) + frame_v1(301))
    assert readings(out) == [("position", 301)]
    assert [(g.reason, g.data) for g in garbage(out)] == [("bad checksum", bytes(bad))]


def test_frame_v1_resyncs_inside_a_false_frame(registry: ProfileRegistry) -> None:
    # A cut frame (AA 55 07) followed by a whole one: the false frame's bytes hold the real sync.
    stream = bytes.fromhex("AA 55 07") + frame_v1(42)
    out = feed(decoder(registry, "dialdaq-frame-v1"), stream)
    assert readings(out) == [("position", 42)]
    # One garbage: the bytes skipped after it (55 07) were part of the bad frame, reported already.
    assert [(g.reason, g.data) for g in garbage(out)] == [("bad checksum", stream[:6])]


def test_frame_v1_skipped_bytes_are_one_garbage_per_run(registry: ProfileRegistry) -> None:
    stream = b"\x01\x02\xaa\x03" + frame_v1(7) + b"\xaa\xaa" + frame_v1(8)  # AA AA AA 55: two false starts
    out = feed(decoder(registry, "dialdaq-frame-v1"), stream)
    assert readings(out) == [("position", 7), ("position", 8)]
    assert [g.data for g in garbage(out)] == [b"\x01\x02\xaa\x03", b"\xaa\xaa"]


def test_frame_v1_sync_split_over_chunks(registry: ProfileRegistry) -> None:
    stream = b"\x00" + frame_v1(9)
    out = feed(decoder(registry, "dialdaq-frame-v1"), stream[:2], stream[2:])
    assert readings(out) == [("position", 9)]
    assert [g.data for g in garbage(out)] == [b"\x00"]


def test_frame_v1_out_of_range_position_is_garbage(registry: ProfileRegistry) -> None:
    out = feed(decoder(registry, "dialdaq-frame-v1"), frame_v1(2000, 1) + frame_v1(5))
    assert readings(out) == [("position", 5)]
    assert [g.reason for g in garbage(out)] == ["position: 2000 is outside 0..1023"]
    assert not any(isinstance(i, ButtonEvent) for i in out)  # a bad frame changes nothing


def test_frame_v1_reset_drops_a_partial_frame(registry: ProfileRegistry) -> None:
    dec = decoder(registry, "dialdaq-frame-v1")
    assert feed(dec, frame_v1(10)[:4]) == []
    dec.reset()
    out = feed(dec, frame_v1(10)[4:] + frame_v1(11))
    assert readings(out) == [("position", 11)]


# ---------------------------------------------------------------- teensy-fast


def test_teensy_lines(registry: ProfileRegistry) -> None:
    dec = decoder(registry, "teensy-fast", synced=False)
    out = feed(dec, b"34,2048\r\nteensy dial v1\r\nt,1000,2048\r\nt,2000,2049\r\n4095\r\nt,3000,4096\r\n")
    assert readings(out) == [("position", 2048), ("position", 2049), ("position", 4095)]
    assert [g.reason for g in garbage(out)] == ["position: 4096 is outside 0..4095"]
    assert [d.data for d in out if isinstance(d, Discarded)] == [b"34,2048\r"]  # opened mid-line
    assert dec.ignored == 1  # the banner


def test_teensy_keeps_up_with_a_thousand_lines_a_second_for_many_dials(registry: ProfileRegistry) -> None:
    dec = decoder(registry, "teensy-fast")
    data = b"".join(b"t,%d,%d\r\n" % (i * 1000, i % 4096) for i in range(20000))
    chunks = [data[i : i + 512] for i in range(0, len(data), 512)]  # USB full-speed sized reads
    start = time.thread_time()  # CPU time: the decoder's work, not the machine's scheduling of this test
    count = sum(len(dec.feed(Chunk(c, 0))) for c in chunks)
    elapsed = time.thread_time() - start
    assert count == 20000
    assert elapsed < 2.0  # 20 s of one dial in CPU seconds; typically ~0.1 s


# ---------------------------------------------------------------- framings and kinds (test profiles)

SHUTTLE: dict[str, Any] = {
    "spec": 1,
    "id": "shuttlexpress",
    "name": "Contour ShuttleXpress",
    "transport": "hid",
    "source": "HARDWARE.md: 5 bytes, no report id; byte0 int8 ring -7..+7; byte1 uint8 jog; bytes3-4 uint16 LE buttons",
    "match": {"usb": ["0b33:0020"]},
    "framing": {"kind": "report", "length": 5},
    "fields": {
        "ring": {"offset": 0, "type": "int8"},
        "jog": {"offset": 1, "type": "uint8"},
        "keys": {"offset": 3, "type": "uint16le"},
    },
    "channels": {
        "jog": {"kind": "counter", "default": True},
        "ring": {"kind": "absolute", "range": [-7, 7], "springs_back": True},
    },
    "buttons": {"k1": {"field": "keys", "bit": 0}, "k5": {"field": "keys", "bit": 4}},
}

POWERMATE: dict[str, Any] = {
    "spec": 1,
    "id": "powermate",
    "name": "Griffin PowerMate USB",
    "transport": "hid",
    "source": "HARDWARE.md: byte0 bit0 button; byte1 int8 rotation delta",
    "framing": {"kind": "report"},
    "fields": [{"name": "button", "offset": 0, "bit": 0}, {"name": "turn", "offset": 1, "type": "int8"}],
    "channels": {"turn": {"kind": "relative", "counts_per_turn": 94}},
    "buttons": {"button": {}},
}


def shuttle_report(ring: int, jog: int, keys: int = 0) -> bytes:
    return bytes([ring & 0xFF, jog, 0, keys & 0xFF, keys >> 8])


def test_report_counter_wraps_at_the_field_width() -> None:
    dec = make_decoder(profile_from_dict(SHUTTLE))
    out = feed(dec, shuttle_report(0, 250), shuttle_report(0, 253), shuttle_report(0, 2), shuttle_report(0, 250))
    assert [r for r in out if isinstance(r, Reading) and r.channel == "jog"] == [
        Reading("jog", 3, 1001),
        Reading("jog", 8, 1002),
        Reading("jog", 0, 1003),
    ]


def test_report_absolute_signed_ring_and_buttons() -> None:
    dec = make_decoder(profile_from_dict(SHUTTLE))
    out = feed(dec, shuttle_report(-7, 0, 0x0001), shuttle_report(3, 0, 0x0011), shuttle_report(-8, 0, 0))
    assert readings(out) == [("ring", -7), ("ring", 3)]
    assert [(e.button, e.pressed) for e in out if isinstance(e, ButtonEvent)] == [("k1", True), ("k5", True)]
    assert [g.reason for g in garbage(out)] == ["ring: -8 is outside -7..7"]


def test_report_too_short_is_garbage_and_report_id_filters() -> None:
    dec = make_decoder(profile_from_dict(SHUTTLE))
    assert [g.reason for g in garbage(feed(dec, b"\x00\x01"))] == ["report of 2 bytes, the profile needs 5"]
    with_id = copy.deepcopy(SHUTTLE)
    with_id["framing"]["report_id"] = 1
    with_id["fields"] = {k: {**v, "offset": v["offset"] + 1} for k, v in SHUTTLE["fields"].items()}
    dec = make_decoder(profile_from_dict(with_id))
    out = feed(dec, b"\x02" + shuttle_report(1, 1), b"\x01" + shuttle_report(2, 1))
    assert readings(out) == [("ring", 2)]
    assert dec.ignored == 1


def test_report_counter_rebaselines_after_reset_and_keeps_its_total() -> None:
    dec = make_decoder(profile_from_dict(SHUTTLE))
    out = feed(dec, shuttle_report(0, 10), shuttle_report(0, 15))
    dec.reset()
    out += feed(dec, shuttle_report(0, 100), shuttle_report(0, 98))
    assert [r for r in readings(out) if r[0] == "jog"] == [("jog", 5), ("jog", 3)]


def test_relative_steps_sum_and_a_still_report_yields_no_reading() -> None:
    dec = make_decoder(profile_from_dict(POWERMATE))
    out = feed(dec, b"\x00\x01", b"\x00\x05", b"\x01\x00", b"\x00\xfd", b"\x00\x00")
    assert out == [
        Reading("turn", 1, 1000),
        Reading("turn", 6, 1001),
        ButtonEvent("button", True, 1002),
        Reading("turn", 3, 1003),
        ButtonEvent("button", False, 1003),
    ]


def test_binary_length_field_and_crc16() -> None:
    # 7E | n | n payload bytes | CRC-16/MODBUS of n and payload, low byte first
    profile = profile_from_dict(
        {
            "spec": 1,
            "id": "var",
            "name": "variable frames",
            "transport": "serial",
            "source": "a test",
            "serial": {"baud": 115200},
            "framing": {
                "kind": "binary",
                "sync": "7E",
                "length_field": {"offset": 1, "adjust": 4},
                "max_length": 16,
                "checksum": {"kind": "crc16-modbus", "covers": [1, -2]},
            },
            "fields": {"value": {"offset": 2, "type": "int16be"}},
            "channels": {"value": {"kind": "absolute"}},
        }
    )

    def frame(payload: bytes) -> bytes:
        body = bytes([len(payload)]) + payload
        crc = crc16_modbus(body)
        return b"\x7e" + body + bytes([crc & 0xFF, crc >> 8])

    good = frame(b"\xff\x38\x00")  # -200, and a spare byte
    short = frame(b"")  # too short for the value field
    huge = b"\x7e\x40"  # says 68 bytes: over max_length
    dec = make_decoder(profile)
    out = feed(dec, huge + good[:3], good[3:] + short + frame(b"\x00\x07"))
    assert readings(out) == [("value", -200), ("value", 7)]
    reasons = [g.reason for g in garbage(out)]
    assert reasons[0] == "frame length 68 is impossible"
    assert "frame length 4 is impossible" in reasons


def test_line_delimiter_columns_and_decimals() -> None:
    profile = profile_from_dict(
        {
            "spec": 1,
            "id": "csv",
            "name": "two-axis csv",
            "transport": "serial",
            "source": "a test",
            "serial": {"baud": 9600},
            "framing": {"kind": "line", "delimiter": ",", "fields": {"x": 1, "y": 2, "b": 3}},
            "channels": {
                "x": {"kind": "absolute", "number": "decimal", "range": [-1, 1]},
                "y": {"kind": "relative"},
            },
            "buttons": {"b": {"active_low": True}},
        }
    )
    dec = make_decoder(profile, synced=True)
    out = feed(dec, b"s, 0.5 ,3,1\r\ns,-1,-1,0\r\ns,1.5,2,1\r\ns,nan,1,1\r\ns,1\r\ns,.25,0,1,extra\r\n")
    assert out[:4] == [
        Reading("x", 0.5, 1000),
        Reading("y", 3, 1000),
        Reading("x", -1.0, 1000),
        Reading("y", 2, 1000),
    ]
    assert out[4] == ButtonEvent("b", True, 1000)
    assert [g.reason for g in garbage(out)] == [
        "x: 1.5 is outside -1..1",  # the whole line is refused: y does not move
        "'nan' is not a number",
        "line has 2 columns, the profile needs 4",
    ]
    assert out[-2:] == [Reading("x", 0.25, 1000), ButtonEvent("b", False, 1000)]


def test_pattern_alternatives_leave_other_fields_absent() -> None:
    data = {
        "spec": 1,
        "id": "two-kinds",
        "name": "two line kinds",
        "transport": "serial",
        "source": "a test",
        "serial": {"baud": 9600},
        "framing": {"kind": "line", "terminator": ";", "pattern": r"A(?P<a>\d+)|B(?P<b>\d+)"},
        "channels": {"a": {"kind": "absolute"}, "b": {"kind": "absolute"}},
    }
    dec = make_decoder(LoadedProfile(profile_from_dict(data), None), synced=True)
    assert readings(feed(dec, b"A1;B2;\r\nA3\r;A\xd9\xa1;")) == [("a", 1), ("b", 2), ("a", 3)]


def test_unicode_digits_are_not_numbers() -> None:
    data = {
        "spec": 1,
        "id": "utf",
        "name": "utf-8 lines",
        "transport": "serial",
        "source": "a test",
        "serial": {"baud": 9600},
        "framing": {"kind": "line", "encoding": "utf-8", "pattern": r"v=(?P<v>.+)"},
        "channels": {"v": {"kind": "absolute"}},
    }
    dec = make_decoder(profile_from_dict(data), synced=True)
    out = feed(dec, "v=١٢\nv=12\nv=1_0\n".encode())
    assert readings(out) == [("v", 12)]
    assert len(garbage(out)) == 2


def test_frame_v1_a_false_frame_that_checks_but_cannot_be_is_resynced(registry: ProfileRegistry) -> None:
    # Noise 'AA 55' before a zero frame: AA 55 AA 55 00 00 passes the xor (by chance), but its
    # position 0x55AA is impossible, so the decoder hunts inside it and finds the real frame.
    stream = b"\xaa\x55" + frame_v1(0, 0)
    out = feed(decoder(registry, "dialdaq-frame-v1"), stream)
    assert [g.reason for g in garbage(out)] == ["position: 21930 is outside 0..1023"]
    assert readings(out) == [("position", 0)]
