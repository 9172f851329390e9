"""Decoders over exact bytes for the bundled HID, input-device and MIDI profiles, and the
profile format they added (evdev and midi framings, `when` on report fields).

The bytes are the device's own, as the profile files document them: HID input reports as
hidapi returns them, evdev events packed by daq.transports.evdev_input ('<HHi' records), MIDI
messages as mido hands them over.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from daq.exceptions import ProfileError
from daq.profiles.decode import Decoder, make_decoder
from daq.profiles.framing_input import button_keys, midi_messages, pack_absinfo, pack_events
from daq.profiles.input_codes import EV_ABS, EV_KEY, EV_REL, EV_SYN, event_name, parse_event
from daq.profiles.loader import ProfileRegistry, profile_from_dict
from daq.profiles.losses import LossCounter
from daq.reading import ButtonEvent, Chunk, Decoded, Discarded, Garbage, Reading

REGISTRY = ProfileRegistry.load()
INPUT_PROFILES = {
    "griffin-powermate-hid",
    "griffin-powermate-evdev",
    "contour-shuttlexpress",
    "contour-shuttlepro-v2",
    "microsoft-surface-dial",
    "elgato-streamdeck-plus",
    "generic-joystick-axis",
    "korg-nanokontrol2",
    "behringer-xtouch-mini",
}

REL_DIAL = (EV_REL, 7)
BTN_0 = (EV_KEY, 0x100)
ABS_X = (EV_ABS, 0)
SYN = (EV_SYN, 0, 0)


def decoder(profile_id: str) -> Decoder:
    return make_decoder(REGISTRY.get(profile_id), synced=True)


def feed(dec: Decoder, *chunks: bytes, start_ns: int = 1000) -> list[Decoded]:
    out: list[Decoded] = []
    for i, data in enumerate(chunks):
        out += dec.feed(Chunk(data, start_ns + i))
    return out


def readings(items: list[Decoded], channel: str | None = None) -> list[tuple[str, int | float]]:
    return [(r.channel, r.raw) for r in items if isinstance(r, Reading) and channel in (None, r.channel)]


def buttons(items: list[Decoded]) -> list[tuple[str, bool]]:
    return [(e.button, e.pressed) for e in items if isinstance(e, ButtonEvent)]


def garbage(items: list[Decoded]) -> list[str]:
    return [g.reason for g in items if isinstance(g, Garbage)]


def events(*evs: tuple[int, int, int]) -> bytes:
    """One read's events, with the SYN_REPORT the kernel ends each batch with."""
    return pack_events([*evs, SYN])


def test_every_input_profile_is_covered_here() -> None:
    bundled = {p.id for p in REGISTRY.all() if p.profile.transport != "serial"}
    assert bundled == INPUT_PROFILES


# ---------------------------------------------------------------- Griffin PowerMate


def powermate_report(button: int, delta: int) -> bytes:
    """6 bytes as the PowerMate sends them: button, int8 delta, then the LED state echoed."""
    return bytes([button, delta & 0xFF, 0x00, 0x50, 0x00, 0x00])


def test_powermate_hid_fast_turns_sum_deltas_larger_than_one() -> None:
    dec = decoder("griffin-powermate-hid")
    out = feed(
        dec,
        powermate_report(0, 1),
        powermate_report(0, 5),  # a fast turn: five counts in one report
        powermate_report(0, 12),
        powermate_report(0, -3),  # 0xFD
        powermate_report(0, -128),  # 0x80, the most one report can carry
        powermate_report(0, 0),  # still: no reading
    )
    assert out == [
        Reading("dial", 1, 1000),
        Reading("dial", 6, 1001),
        Reading("dial", 18, 1002),
        Reading("dial", 15, 1003),
        Reading("dial", -113, 1004),
    ]


def test_powermate_hid_button_press_and_release_with_a_turn() -> None:
    dec = decoder("griffin-powermate-hid")
    out = feed(dec, powermate_report(1, 0), powermate_report(1, 2), powermate_report(0, 0))
    assert out == [ButtonEvent("press", True, 1000), Reading("dial", 2, 1001), ButtonEvent("press", False, 1002)]
    assert garbage(feed(dec, b"\x00")) == ["report of 1 bytes, the profile needs 2"]


def test_a_kernel_buffer_overflow_is_counted_not_silent() -> None:
    """SYN_DROPPED: the kernel dropped events for a reader that fell behind. It is discarded (said),
    and so is every event the profile reads up to the next SYN_REPORT; then reading goes on. The cut
    frame is one item per read (one event, not one per event), counting each event it held."""
    dec = decoder("griffin-powermate-evdev")
    out = feed(
        dec,
        events((*REL_DIAL, 1)),
        pack_events([(EV_SYN, 3, 0), (*REL_DIAL, 5)]),  # SYN_DROPPED, and the rest of a cut frame
        pack_events([(*REL_DIAL, 2), (*BTN_0, 2), SYN]),  # still that frame (an autorepeat is no reading)
        events((*REL_DIAL, 3)),
    )
    assert [r.raw for r in out if isinstance(r, Reading)] == [1, 4]  # the 5 and 2 not summed in
    discarded = [d for d in out if isinstance(d, Discarded)]
    assert [d.count for d in discarded] == [2, 1]  # the drop and the 5; then the 2 (read next)
    assert "SYN_DROPPED" in discarded[0].reason and "the rest of the frame the kernel cut" in discarded[1].reason
    assert discarded[0].data == pack_events([(EV_SYN, 3, 0), (*REL_DIAL, 5)])
    counter = LossCounter()
    notices = [counter.count(d) for d in discarded]
    assert [(n.amount, n.data["readings"], n.data["count"]) for n in notices] == [(2, 2, 2), (1, 1, 3)]
    assert counter.discarded == 3
    assert dec.ignored == 0


def test_powermate_evdev_rel_dial_and_btn_0() -> None:
    dec = decoder("griffin-powermate-evdev")
    out = feed(
        dec,
        events((*REL_DIAL, 1)),
        events((*REL_DIAL, 4)),  # fast turn
        events((*REL_DIAL, -2), (*REL_DIAL, -1)),  # two events in one read
        events((*BTN_0, 1)),
        events((*BTN_0, 2)),  # autorepeat: no change
        events((*BTN_0, 0)),
    )
    assert out == [
        Reading("dial", 1, 1000),
        Reading("dial", 5, 1001),
        Reading("dial", 3, 1002),
        Reading("dial", 2, 1002),
        ButtonEvent("press", True, 1003),
        ButtonEvent("press", False, 1005),
    ]
    assert dec.ignored == 0  # SYN_REPORT is the batch's end, not ignored input


def test_evdev_events_the_profile_does_not_read_are_ignored_and_a_cut_record_is_garbage() -> None:
    dec = decoder("griffin-powermate-evdev")
    out = feed(dec, events((EV_REL, 0, 3), (4, 4, 0x1234)), events((*REL_DIAL, 2))[:-3])
    assert readings(out) == [("dial", 2)]
    assert dec.ignored == 2
    assert garbage(out) == ["5 bytes are not a whole input event"]


def test_surface_dial_steps_and_press() -> None:
    dec = decoder("microsoft-surface-dial")
    out = feed(dec, events((*REL_DIAL, 10)), events((*REL_DIAL, -10)), events((*REL_DIAL, -10)), events((*BTN_0, 1)))
    assert readings(out) == [("dial", 10), ("dial", 0), ("dial", -10)]
    assert buttons(out) == [("press", True)]


# ---------------------------------------------------------------- Contour Shuttle


def shuttle_report(ring: int, jog: int, keys: int = 0) -> bytes:
    return bytes([ring & 0xFF, jog, 0, keys & 0xFF, keys >> 8])


def test_shuttlexpress_jog_wraps_and_the_first_report_is_the_baseline() -> None:
    dec = decoder("contour-shuttlexpress")
    out = feed(
        dec,
        shuttle_report(0, 250),  # baseline: no jog reading
        shuttle_report(0, 253),  # +3
        shuttle_report(0, 2),  # +5 across the wrap (253 -> 255 -> 0 -> 2)
        shuttle_report(0, 250),  # -8 back across it
        shuttle_report(0, 250),  # no change
    )
    assert readings(out, "jog") == [("jog", 3), ("jog", 8), ("jog", 0)]
    assert [r.mono_ns for r in out if isinstance(r, Reading) and r.channel == "jog"] == [1001, 1002, 1003]


def test_shuttlexpress_ring_absolute_springs_back_and_out_of_range_is_garbage() -> None:
    dec = decoder("contour-shuttlexpress")
    out = feed(dec, shuttle_report(-7, 0), shuttle_report(3, 0), shuttle_report(7, 0), shuttle_report(0, 0))
    assert readings(out, "ring") == [("ring", -7), ("ring", 3), ("ring", 7), ("ring", 0)]
    assert garbage(feed(dec, shuttle_report(8, 0))) == ["ring: 8 is outside -7..7"]
    assert garbage(feed(dec, b"\x00\x01\x00")) == ["report of 3 bytes, the profile needs 5"]
    assert REGISTRY.get("contour-shuttlexpress").profile.channels["ring"].springs_back


def test_shuttlexpress_five_buttons_are_bits_4_to_8() -> None:
    dec = decoder("contour-shuttlexpress")
    out = feed(
        dec,
        shuttle_report(0, 0, 0x0010),  # b1
        shuttle_report(0, 0, 0x0110),  # b1 + b5 (bit 8: the second byte)
        shuttle_report(0, 0, 0x0100),
        shuttle_report(0, 0, 0x000F),  # bits 0-3: no ShuttleXpress button
        shuttle_report(0, 0, 0x0000),
    )
    assert buttons(out) == [("b1", True), ("b5", True), ("b1", False), ("b5", False)]


def test_shuttle_jog_rebaselines_after_a_reconnect_and_keeps_its_total() -> None:
    dec = decoder("contour-shuttlexpress")
    out = feed(dec, shuttle_report(0, 10), shuttle_report(0, 15))
    dec.reset()
    out += feed(dec, shuttle_report(0, 200), shuttle_report(0, 198))  # the device counted on meanwhile
    assert readings(out, "jog") == [("jog", 5), ("jog", 3)]


def test_shuttlepro_v2_fifteen_buttons() -> None:
    dec = decoder("contour-shuttlepro-v2")
    out = feed(dec, shuttle_report(0, 0, 0x0001), shuttle_report(0, 0, 0x4001), shuttle_report(0, 0, 0))
    assert buttons(out) == [("b1", True), ("b15", True), ("b1", False), ("b15", False)]
    assert len(REGISTRY.get("contour-shuttlepro-v2").profile.buttons) == 15
    dec = decoder("contour-shuttlepro-v2")
    out = feed(dec, shuttle_report(0, 10), shuttle_report(0, 9), shuttle_report(-1, 255))
    assert readings(out) == [("ring", 0), ("jog", -1), ("ring", 0), ("jog", -11), ("ring", -1)]


# ---------------------------------------------------------------- Elgato Stream Deck+


def deck(event: int, kind: int, values: list[int], at: int = 5) -> bytes:
    """A 14-byte Stream Deck+ input report: report id 1, event type, kind byte 4, values from `at`."""
    report = bytearray(14)
    report[0], report[1], report[4] = 0x01, event, kind
    for i, v in enumerate(values):
        report[at + i] = v & 0xFF
    return bytes(report)


def test_streamdeck_plus_four_dials_turn_in_one_report() -> None:
    dec = decoder("elgato-streamdeck-plus")
    out = feed(
        dec,
        deck(0x03, 0x01, [1, -1, 5, 0]),
        deck(0x03, 0x01, [2, 0, -7, 127]),
        deck(0x03, 0x01, [0, 0, 0, -128]),
    )
    assert out == [
        Reading("dial1", 1, 1000),
        Reading("dial2", -1, 1000),
        Reading("dial3", 5, 1000),
        Reading("dial1", 3, 1001),
        Reading("dial3", -2, 1001),
        Reading("dial4", 127, 1001),
        Reading("dial4", -1, 1002),
    ]


def test_streamdeck_plus_a_push_is_no_step_and_keys_and_the_touch_strip() -> None:
    dec = decoder("elgato-streamdeck-plus")
    out = feed(
        dec,
        deck(0x03, 0x00, [1, 0, 0, 1]),  # dials 1 and 4 pressed: not a turn of +1
        deck(0x03, 0x00, [0, 0, 0, 0]),
        deck(0x00, 0x00, [0, 0, 1, 0, 0, 0, 0, 1], at=4),  # keys 3 and 8
        deck(0x02, 0x01, [0x10, 0x00, 0x20, 0x00]),  # a touch: nothing read
        deck(0x03, 0x01, [0, 1, 0, 0]),
    )
    assert readings(out) == [("dial2", 1)]
    assert buttons(out) == [
        ("push1", True),
        ("push4", True),
        ("push1", False),
        ("push4", False),
        ("key3", True),
        ("key8", True),
    ]
    assert dec.ignored == 1  # the touch report
    assert garbage(out) == []


# ---------------------------------------------------------------- joystick axis


def test_joystick_axis_range_comes_from_absinfo() -> None:
    dec = decoder("generic-joystick-axis")
    out = feed(dec, pack_absinfo(0, 0, 255), events((*ABS_X, 0)), events((*ABS_X, 255)), events((*ABS_X, 51)))
    assert readings(out) == [("x", -1.0), ("x", 1.0), ("x", pytest.approx(-0.6))]
    dec = decoder("generic-joystick-axis")
    out = feed(dec, pack_absinfo(0, -32768, 32767), events((*ABS_X, -32768), (EV_ABS, 1, 99)), events((*ABS_X, 32767)))
    assert readings(out) == [("x", -1.0), ("x", 1.0)]
    assert dec.ignored == 1  # ABS_Y: not read


def test_joystick_axis_without_absinfo_is_taken_as_is_and_range_checked() -> None:
    dec = decoder("generic-joystick-axis")
    out = feed(dec, events((*ABS_X, 1)), events((*ABS_X, 200)))
    assert readings(out) == [("x", 1)]
    assert garbage(out) == ["x: 200 is outside -1..1"]


# ---------------------------------------------------------------- MIDI


def test_nanokontrol2_knobs_and_faders_on_channel_1() -> None:
    dec = decoder("korg-nanokontrol2")
    out = feed(
        dec,
        b"\xb0\x10\x40",  # knob 1 = 64
        b"\xb0\x17\x7f",  # knob 8 = 127
        b"\xb0\x00\x00",  # fader 1 = 0
        b"\xb0\x07\x41",  # fader 8 = 65
        b"\xb1\x10\x22",  # knob 1's CC on channel 2: not this controller's setting
        b"\xb0\x2a\x7f",  # CC 42 (a transport button): not read
        b"\x90\x10\x40",  # a note: not read
    )
    assert out == [
        Reading("knob1", 64, 1000),
        Reading("knob8", 127, 1001),
        Reading("fader1", 0, 1002),
        Reading("fader8", 65, 1003),
    ]
    assert dec.ignored == 3
    profile = REGISTRY.get("korg-nanokontrol2").profile
    assert sorted(profile.channels) == sorted([f"knob{i}" for i in range(1, 9)] + [f"fader{i}" for i in range(1, 9)])
    assert profile.default_channel == "knob1"


def test_midi_several_messages_in_one_chunk_and_malformed_input() -> None:
    dec = decoder("korg-nanokontrol2")
    out = feed(dec, b"\xb0\x10\x01\xc0\x05\xb0\x11\x02")  # a capture: CC, program change, CC
    assert readings(out) == [("knob1", 1), ("knob2", 2)]
    assert garbage(feed(dec, b"\x10\x40")) == ["data byte 0x10 where a status byte was expected"]
    assert garbage(feed(dec, b"\xb0\x10")) == ["a cut MIDI message (status 0xb0)"]
    assert garbage(feed(dec, b"\xb0\x10\x80")) == ["a malformed MIDI message (status 0xb0)"]
    assert list(midi_messages(b"\xf0\x7e\x01\xf7\xf8\xb0\x01\x02")) == [b"\xf0\x7e\x01\xf7", b"\xf8", b"\xb0\x01\x02"]


def test_xtouch_mini_layers_on_channel_11() -> None:
    dec = decoder("behringer-xtouch-mini")
    out = feed(
        dec,
        b"\xba\x01\x40",  # layer A encoder 1
        b"\xba\x08\x7f",  # layer A encoder 8
        b"\xba\x0b\x00",  # layer B encoder 1
        b"\xba\x12\x05",  # layer B encoder 8
        b"\xb0\x01\x40",  # CC 1 on channel 1: another device's
        b"\xba\x09\x40",  # CC 9: between the layers, not an encoder
    )
    assert readings(out) == [("a1", 64), ("a8", 127), ("b1", 0), ("b8", 5)]
    assert dec.ignored == 2


def test_midi_notes_as_buttons() -> None:
    profile = profile_from_dict(
        {
            "spec": 1,
            "id": "pads",
            "name": "pads",
            "transport": "midi",
            "source": "a test",
            "framing": {"kind": "midi", "controls": {"k": {"cc": 1}, "pad": {"note": 36, "channel": 10}}},
            "channels": {"k": {"kind": "absolute", "range": [0, 127]}},
            "buttons": {"pad": {}},
        }
    )
    dec = make_decoder(profile, synced=True)
    out = feed(dec, b"\x99\x24\x64", b"\x89\x24\x00", b"\x99\x24\x10", b"\x99\x24\x00")
    assert buttons(out) == [("pad", True), ("pad", False), ("pad", True), ("pad", False)]


# ---------------------------------------------------------------- the format


EVDEV: dict[str, Any] = {
    "spec": 1,
    "id": "lab-knob",
    "name": "Lab knob",
    "transport": "evdev",
    "source": "a test",
    "framing": {"kind": "evdev", "events": {"turn": "REL_DIAL", "push": "BTN_0"}},
    "channels": {"turn": {"kind": "relative"}},
    "buttons": {"push": {}},
}


def test_only_keys_that_only_buttons_read_are_restored_after_a_kernel_overflow() -> None:
    """A key a channel reads (a step counter of presses, say) is a reading like any other: in a cut
    frame it is discarded and counted, and the reader never asks for its state (that would invent
    a step); a key only a button reads is restored by the reader's query (EVIOCGKEY), so its event
    in the cut frame is not counted as a lost reading."""
    data = {
        **EVDEV,
        "framing": {"kind": "evdev", "events": {"turn": "REL_DIAL", "push": "BTN_0", "steps": "BTN_1"}},
        "channels": {"turn": {"kind": "relative"}, "steps": {"kind": "relative"}},
        "buttons": {"push": {}},
    }
    profile = profile_from_dict(data)
    assert button_keys(profile) == [0x100]
    dec = make_decoder(profile)
    out = feed(dec, pack_events([(EV_SYN, 3, 0), (EV_KEY, 0x100, 1), (EV_KEY, 0x101, 1), SYN]))
    (discarded,) = [d for d in out if isinstance(d, Discarded)]
    assert discarded.count == 2 and discarded.data == pack_events([(EV_SYN, 3, 0), (EV_KEY, 0x101, 1)])
    assert not [i for i in out if isinstance(i, ButtonEvent | Reading)]
    assert button_keys(REGISTRY.get("griffin-powermate-evdev").profile) == [0x100]


def refused(data: dict[str, Any]) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        profile_from_dict(data, "lab.toml")
    return info.value


def test_event_names_numbers_and_refusals() -> None:
    assert parse_event("REL_DIAL") == (EV_REL, 7)
    assert parse_event("btn_0") == (EV_KEY, 0x100)
    assert parse_event("BTN_A") == parse_event("BTN_SOUTH") == (EV_KEY, 0x130)
    assert parse_event("KEY:0x2c0") == (EV_KEY, 0x2C0)
    assert parse_event("ABS:40") == (EV_ABS, 40)
    assert event_name(EV_ABS, 0x28) == "ABS_MISC"
    assert event_name(EV_KEY, 0x2FF) == "KEY:0x2ff"

    data = copy.deepcopy(EVDEV)
    data["framing"]["events"]["turn"] = "REL_DAIL"
    err = refused(data)
    assert err.key == "framing.events.turn" and "unknown input event 'REL_DAIL'" in err.problem

    data = copy.deepcopy(EVDEV)
    data["framing"]["events"]["push"] = "REL_DIAL"
    err = refused(data)
    assert err.key == "framing.events.push" and "the same event as 'turn'" in err.problem

    data = copy.deepcopy(EVDEV)
    data["fields"] = {"turn": {"offset": 0}}
    assert "remove [fields]" in refused(data).problem

    data = copy.deepcopy(EVDEV)
    data["channels"] = {"dial": {"kind": "relative"}}
    err = refused(data)
    assert err.key == "channels.dial.field" and "the framing.events are: push, turn" in err.problem


def test_midi_control_refusals() -> None:
    base: dict[str, Any] = {
        "spec": 1,
        "id": "lab-midi",
        "name": "Lab MIDI",
        "transport": "midi",
        "source": "a test",
        "framing": {"kind": "midi", "controls": {"k": {"cc": 16}}},
        "channels": {"k": {"kind": "absolute", "range": [0, 127]}},
    }
    data = copy.deepcopy(base)
    data["framing"]["controls"]["k"] = {"channel": 2}
    assert "either `cc`" in refused(data).problem
    data = copy.deepcopy(base)
    data["framing"]["controls"]["j"] = {"cc": 16, "channel": 1}
    assert "the same control as 'k'" in refused(data).problem
    data = copy.deepcopy(base)
    data["framing"]["controls"]["k"] = {"cc": 128}
    assert refused(data).key == "framing.controls.k.cc"
    data = copy.deepcopy(base)
    data["transport"] = "hid"
    assert "use one of: report" in refused(data).problem


def test_when_conditions_on_fields() -> None:
    base: dict[str, Any] = {
        "spec": 1,
        "id": "lab-frames",
        "name": "Lab frames",
        "transport": "serial",
        "source": "a test",
        "serial": {"baud": 9600},
        "framing": {"kind": "binary", "sync": "AA", "length": 4},
        "fields": {"v": {"offset": 2, "when": [{"offset": 1, "equals": 1}]}},
        "channels": {"v": {"kind": "absolute"}},
    }
    dec = make_decoder(profile_from_dict(base), synced=True)
    assert readings(feed(dec, b"\xaa\x01\x07\x00\xaa\x02\x09\x00\xaa\x01\x08\x00")) == [("v", 7), ("v", 8)]
    data = copy.deepcopy(base)
    data["fields"]["v"]["when"] = [{"offset": 4, "equals": 1}]
    assert refused(data).key == "fields.v.when[0].offset"
    data = copy.deepcopy(base)
    data["fields"]["v"]["when"] = [{"offset": 1, "equals": 256}]
    assert refused(data).key == "fields.v.when[0].equals"
    deck_profile = REGISTRY.get("elgato-streamdeck-plus").profile
    assert make_decoder(deck_profile).feed(Chunk(bytes([1, 3, 0, 0, 1]), 0)) == [
        Garbage("report of 5 bytes, the profile needs 12", bytes([1, 3, 0, 0, 1]), 0)
    ]
