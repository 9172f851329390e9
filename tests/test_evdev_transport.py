"""EvdevTransport over a fake python-evdev (tests/support/fake_inputs.py): events packed exactly,
stamps, absinfo, finding the node that sends the profile's events, grab, ENODEV on unplug and
replug, an idle event loop, deliver_to, events read but not taken at close counted; the daemon
path on top; and a station refusing to start without the extra."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from daq.config import build_config, read_config_data
from daq.exceptions import DeviceGone, DeviceUnavailable, FatalError, MissingExtraError
from daq.profiles.decode import make_decoder
from daq.profiles.framing_input import pack_absinfo, pack_events
from daq.profiles.input_codes import EV_ABS, EV_KEY, EV_REL, EV_SYN
from daq.profiles.loader import ProfileRegistry
from daq.reading import ButtonEvent, Chunk, Decoded, Discarded, Reading
from daq.station.payloads import meta_payload
from daq.station.station import Station
from daq.transports import evdev_input, hid_enum, make_transport
from daq.transports.attachment import Attachment
from daq.transports.evdev_input import EvdevTransport
from tests.support.fake_inputs import AbsInfo, FakeEvdevModule, FakeInputDial, read_n
from tests.support.polling import until
from tests.support.procs import REPO

T = TypeVar("T")
REGISTRY = ProfileRegistry.load()
REL_DIAL, BTN_0, ABS_X, ABS_Y = 7, 0x100, 0, 1
SYN = (EV_SYN, 0, 0)


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def evdev(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeEvdevModule:
    module = FakeEvdevModule()
    monkeypatch.setitem(sys.modules, "evdev", module)
    monkeypatch.setattr(fcntl, "ioctl", module.ioctl)
    monkeypatch.setattr(evdev_input, "INPUT_DIR", str(tmp_path / "input"))
    monkeypatch.setattr(hid_enum, "SYS", tmp_path / "sys")
    return module


def powermate(path: str = "/dev/input/event5", uniq: str = "") -> FakeInputDial:
    caps = {EV_SYN: [0], EV_KEY: [BTN_0], EV_REL: [REL_DIAL], 4: [4]}
    return FakeInputDial(path, "Griffin PowerMate", 0x077D, 0x0410, caps, uniq=uniq)


def surface_dial_nodes() -> list[FakeInputDial]:
    """The three input devices a paired Surface Dial brings; only one sends REL_DIAL."""
    return [
        FakeInputDial("/dev/input/event20", "Surface Dial System Keyboard", 0x045E, 0x091B, {EV_KEY: [28, 57]}),
        FakeInputDial(
            "/dev/input/event21",
            "Surface Dial System Multi Axis",
            0x045E,
            0x091B,
            {EV_REL: [REL_DIAL], EV_KEY: [BTN_0]},
        ),
        FakeInputDial("/dev/input/event22", "Surface Dial Consumer Control", 0x045E, 0x091B, {EV_KEY: [113, 114]}),
    ]


def joystick(lo: int = 0, hi: int = 255) -> FakeInputDial:
    caps: dict[int, list[Any]] = {
        EV_KEY: [0x120],
        EV_ABS: [(ABS_X, AbsInfo(128, lo, hi)), (ABS_Y, AbsInfo(128, lo, hi))],
    }
    return FakeInputDial("/dev/input/event9", "Thrustmaster USB Joystick", 0x044F, 0xB10A, caps)


def transport_for(profile_id: str, attachment: Attachment | None = None) -> EvdevTransport:
    made = make_transport(REGISTRY.get(profile_id).profile, attachment or Attachment())
    assert isinstance(made, EvdevTransport)
    return made


def us(ns: int) -> int:
    """A time as the kernel's input_event carries it (whole microseconds)."""
    return ns // 1000 * 1000


@contextlib.asynccontextmanager
async def opened_powermate() -> AsyncIterator[EvdevTransport]:
    """The PowerMate's transport, open, closed after."""
    t = transport_for("griffin-powermate-evdev")
    await t.open()
    try:
        yield t
    finally:
        await t.close()


def powermate_decoded(chunks: list[Chunk]) -> list[Decoded]:
    """What the PowerMate's decoder makes of `chunks`, as the daemon would (not synced)."""
    decoder = make_decoder(REGISTRY.get("griffin-powermate-evdev").profile)
    return [item for chunk in chunks for item in decoder.feed(chunk)]


def test_events_packed_exactly_and_stamped_with_the_kernel_time(evdev: FakeEvdevModule) -> None:
    dial = powermate()
    evdev.dials.append(dial)

    async def main() -> None:
        t = transport_for("griffin-powermate-evdev")
        assert t.describe == "evdev:077d:0410"
        assert t.stamp == "kernel"
        await t.open()
        try:
            # The kernel was asked for CLOCK_MONOTONIC event times on the open handle.
            assert evdev.ioctls == [(evdev.handles[0].fd, 0x400445A0, struct.pack("i", time.CLOCK_MONOTONIC))]
            for value, age_ns in ((1, 0), (5, 3_000_000), (-3, 40_000_000)):
                # age: how long the events waited in the kernel before the reader got to them
                pushed = dial.push((EV_REL, REL_DIAL, value), SYN, age_ns=age_ns)
                (chunk,) = await read_n(t, 1)
                assert chunk.data == pack_events([(EV_REL, REL_DIAL, value), SYN])
                assert chunk.mono_ns == us(pushed - age_ns)  # the event's own time, not the read's
            dial.push((EV_KEY, BTN_0, 1), SYN)
            (chunk,) = await read_n(t, 1)
            assert chunk.data == pack_events([(EV_KEY, BTN_0, 1), SYN])
        finally:
            await t.close()
        assert evdev.handles[0].closed
        assert len(evdev.handles[0].read_threads) == 1  # every read from the one reader thread

    run(main())


def test_after_syn_dropped_the_keys_are_asked_for_so_a_lost_release_is_not_a_stuck_button(
    evdev: FakeEvdevModule,
) -> None:
    """The kernel's buffer overflowed while the button was released: the reader gets SYN_DROPPED,
    the decoder discards the cut frame, and once it ends the reader asks the device for its keys
    (EVIOCGKEY), so the release is said; a key still held says nothing new."""
    dial = powermate()
    evdev.dials.append(dial)

    async def main() -> list[Chunk]:
        async with opened_powermate() as t:
            dial.push((EV_KEY, BTN_0, 1), SYN)
            chunks = await read_n(t, 1)
            dial.overflow((EV_KEY, BTN_0, 0), SYN)  # the release, lost on the way
            ended = dial.push((EV_REL, REL_DIAL, 2), SYN)  # the rest of the cut frame
            chunks += await read_n(t, 3)
            assert ended <= chunks[-1].mono_ns <= time.monotonic_ns()  # stamped when asked, after the frame's end
            dial.overflow((EV_REL, REL_DIAL, 1), SYN)  # nothing about the button lost this time
            dial.push(SYN)
            return chunks + await read_n(t, 3)

    chunks = run(main())
    assert chunks[3].data == pack_events([(EV_KEY, BTN_0, 0), SYN])  # the state asked for
    assert chunks[6].data == pack_events([(EV_KEY, BTN_0, 0), SYN])
    out = powermate_decoded(chunks)
    assert [i for i in out if isinstance(i, ButtonEvent)] == [
        ButtonEvent("press", True, chunks[0].mono_ns),
        ButtonEvent("press", False, chunks[3].mono_ns),  # not stuck down
    ]
    assert [d.count for d in out if isinstance(d, Discarded)] == [1, 1, 1]  # the drops; the 2 too
    assert not any(isinstance(i, Reading) for i in out)


def test_key_events_queued_when_the_state_is_asked_are_read_first_not_flushed(evdev: FakeEvdevModule) -> None:
    """EVIOCGKEY drops the reader's queued key events (the state it returns includes them): a click
    queued right after the read that ended the cut frame would vanish, press and release, if the
    reader asked at once. It reads what is queued first."""
    dial = powermate()
    evdev.dials.append(dial)

    def click() -> None:  # right after the reader took the cut frame's end
        dial.push((EV_KEY, BTN_0, 1), SYN)
        dial.push((EV_KEY, BTN_0, 0), SYN)

    async def main() -> list[Chunk]:
        async with opened_powermate() as t:
            dial.overflow((EV_REL, REL_DIAL, 1), SYN)
            chunks = await read_n(t, 1)
            dial.after_read = click
            dial.push((EV_REL, REL_DIAL, 2), SYN)  # the end of the cut frame
            return chunks + await read_n(t, 4)

    chunks = run(main())
    assert [c.data for c in chunks[2:]] == [
        pack_events([(EV_KEY, BTN_0, 1), SYN]),
        pack_events([(EV_KEY, BTN_0, 0), SYN]),
        pack_events([(EV_KEY, BTN_0, 0), SYN]),  # then the state asked for
    ]
    out = powermate_decoded(chunks)
    assert [i.pressed for i in out if isinstance(i, ButtonEvent)] == [True, False]


def test_a_second_drop_in_the_read_that_ends_a_cut_frame_waits_for_its_own_end(evdev: FakeEvdevModule) -> None:
    """The keys are asked for only outside a cut frame: asked inside one, the state's SYN_REPORT
    would end the decoder's discard early and the rest of that frame would be read as readings."""
    dial = powermate()
    evdev.dials.append(dial)

    def end_and_drop_again() -> None:  # both in the reader's next read
        dial.push((EV_REL, REL_DIAL, 5), SYN)
        dial.overflow((EV_REL, REL_DIAL, 1), SYN)

    async def main() -> list[Chunk]:
        async with opened_powermate() as t:
            dial.after_read = end_and_drop_again
            dial.overflow((EV_REL, REL_DIAL, 1), SYN)
            chunks = await read_n(t, 3)  # the drop; then the frame's end and the second drop
            dial.push((EV_REL, REL_DIAL, 2), SYN)  # the second cut frame's end
            chunks += await read_n(t, 2)  # it, then the state asked for
            dial.push((EV_REL, REL_DIAL, 3), SYN)
            return chunks + await read_n(t, 1)

    chunks = run(main())
    assert chunks[4].data == pack_events([(EV_KEY, BTN_0, 0), SYN])
    out = powermate_decoded(chunks)
    assert [i.raw for i in out if isinstance(i, Reading)] == [3]  # the 5 and the 2 were in cut frames
    assert sum(d.count for d in out if isinstance(d, Discarded)) == 4


def test_without_a_monotonic_kernel_clock_realtime_event_times_are_converted(evdev: FakeEvdevModule) -> None:
    dial = powermate()
    evdev.dials.append(dial)
    evdev.clock_error = OSError(errno.EINVAL, "Invalid argument")  # a kernel before 3.4

    async def main() -> None:
        t = transport_for("griffin-powermate-evdev")
        await t.open()
        try:
            assert evdev.handles[0].clock_id == time.CLOCK_REALTIME
            pushed = dial.push((EV_REL, REL_DIAL, 2), SYN, age_ns=5_000_000)
            (chunk,) = await read_n(t, 1)
            assert chunk.data == pack_events([(EV_REL, REL_DIAL, 2), SYN])
            # wall time moved onto the monotonic clock: within the microsecond truncation and the
            # two clocks being read a moment apart
            assert abs(chunk.mono_ns - (pushed - 5_000_000)) < 200_000
        finally:
            await t.close()
        assert t.stamp == "kernel"

    run(main())


def test_one_chunk_per_frame_each_with_its_time_never_after_the_read() -> None:
    from tests.support.fake_inputs import InputEvent

    def ev(t: int, c: int, v: int, at_ns: int) -> InputEvent:
        return InputEvent(t, c, v, at_ns // 1_000_000_000, at_ns % 1_000_000_000 // 1000)

    t0 = 5_000_000_123_000
    events = [
        ev(EV_REL, REL_DIAL, 1, t0),
        ev(*SYN, t0),
        ev(EV_REL, REL_DIAL, 2, t0 + 1_000_000),
        ev(*SYN, t0 + 1_000_000),
    ]
    read_ns = t0 + 1_500_000
    chunks = evdev_input.kernel_stamped(events, read_ns)
    assert [(c.data, c.mono_ns) for c in chunks] == [
        (pack_events([(EV_REL, REL_DIAL, 1), SYN]), t0),
        (pack_events([(EV_REL, REL_DIAL, 2), SYN]), t0 + 1_000_000),
    ]
    # a time after the read (a clock the kernel did not switch) is the read's
    (late,) = evdev_input.kernel_stamped([ev(EV_REL, REL_DIAL, 1, read_ns + 10**9)], read_ns)
    assert late.mono_ns == read_ns
    # CLOCK_REALTIME times moved by the offset given
    (moved,) = evdev_input.kernel_stamped([ev(EV_REL, REL_DIAL, 1, t0 + 7_000)], read_ns, to_mono_ns=-7_000)
    assert moved.mono_ns == t0


def test_an_absolute_axis_range_comes_first(evdev: FakeEvdevModule) -> None:
    evdev.dials.append(joystick(-512, 511))

    async def main() -> None:
        t = transport_for("generic-joystick-axis", Attachment(usb="044f:b10a"))
        await t.open()
        try:
            evdev.dials[0].push((EV_ABS, ABS_X, 100), SYN)
            chunks = await read_n(t, 2)
            assert chunks[0].data == pack_absinfo(ABS_X, -512, 511) + pack_absinfo(ABS_Y, -512, 511)
            assert chunks[1].data == pack_events([(EV_ABS, ABS_X, 100), SYN])
        finally:
            await t.close()

    run(main())


def test_deliver_to_hands_over_everything_read_then_device_gone(evdev: FakeEvdevModule) -> None:
    """The way the DeviceReader takes chunks: the absinfo chunk, every frame in order (pushed before
    deliver_to and while it runs), then the unplug."""
    stick = joystick(-512, 511)
    evdev.dials.append(stick)
    frames = [[(EV_ABS, ABS_X, v), SYN] for v in range(-20, 20)]

    async def main() -> None:
        t = transport_for("generic-joystick-axis", Attachment(usb="044f:b10a"))
        await t.open()
        got = bytearray()
        try:
            for frame in frames[:20]:
                stick.push(*frame)
            await until(lambda: not stick.events, "the reader to read the first frames")
            task = asyncio.create_task(t.deliver_to(lambda chunks: got.extend(b"".join(c.data for c in chunks))))
            for frame in frames[20:]:
                stick.push(*frame)
                await asyncio.sleep(0.002)
            expected = pack_absinfo(ABS_X, -512, 511) + pack_absinfo(ABS_Y, -512, 511)
            expected += b"".join(pack_events(frame) for frame in frames)
            await until(lambda: len(got) >= len(expected), "every frame handed over")
            stick.unplug()
            with pytest.raises(DeviceGone, match="unplugged: No such device"):
                await task
            assert bytes(got) == expected
        finally:
            await t.close()
        assert t.read_at_close == 0

    run(main())


def test_events_read_but_not_taken_at_close_are_counted(
    evdev: FakeEvdevModule, caplog: pytest.LogCaptureFixture
) -> None:
    """What the reader thread read and nobody took (the absinfo chunk among it) is counted in
    read_at_close at close() and logged, not dropped silently; what was taken is not counted."""
    stick = joystick(0, 255)
    evdev.dials.append(stick)

    async def main() -> EvdevTransport:
        t = transport_for("generic-joystick-axis", Attachment(usb="044f:b10a"))
        await t.open()
        stick.push((EV_ABS, ABS_X, 1), SYN, age_ns=4_000_000)
        stick.push((EV_ABS, ABS_X, 2), SYN, age_ns=2_000_000)
        # the reader has read them once the dial's queue is empty: close() lets it put them first
        await until(lambda: not stick.events, "the reader to read the frames")
        await t.close()
        assert t.read_at_close == 3  # the absinfo chunk and two frames (two event times)
        await t.open()
        stick.push((EV_ABS, ABS_X, 3), SYN)
        assert [c.data for c in await read_n(t, 2)] == [
            pack_absinfo(ABS_X, 0, 255) + pack_absinfo(ABS_Y, 0, 255),
            pack_events([(EV_ABS, ABS_X, 3), SYN]),
        ]
        await t.close()  # everything taken: nothing more counted
        return t

    with caplog.at_level(logging.WARNING, logger="daq.transports.evdev_input"):
        t = run(main())
    assert t.read_at_close == 3
    said = [r.getMessage() for r in caplog.records if "read but not decoded" in r.getMessage()]
    size = 2 * len(pack_absinfo(ABS_X, 0, 255)) + 2 * len(pack_events([(EV_ABS, ABS_X, 1), SYN]))
    assert said == [f"{t.describe}: closed with 3 chunks ({size} bytes) read but not decoded"]


def test_finds_the_node_that_sends_the_profile_events(evdev: FakeEvdevModule) -> None:
    evdev.dials += surface_dial_nodes()
    wanted = {(EV_REL, REL_DIAL), (EV_KEY, BTN_0)}
    found, _ = evdev_input.find_input(evdev, Attachment(), wanted, {(0x045E, 0x091B)}, ["Surface Dial"])
    assert found.path == "/dev/input/event21"
    found.close()
    by_name, _ = evdev_input.find_input(evdev, Attachment(port="multi axis"), wanted)
    assert by_name.path == "/dev/input/event21"
    by_name.close()
    with pytest.raises(DeviceUnavailable, match="does not send BTN_0, REL_DIAL: is it the right event node"):
        evdev_input.find_input(evdev, Attachment(port="/dev/input/event20"), wanted)
    assert all(h.closed for h in evdev.handles)  # every node looked at was closed again


def test_two_identical_dials_need_telling_apart(evdev: FakeEvdevModule) -> None:
    evdev.dials += [powermate("/dev/input/event5", "p-1"), powermate("/dev/input/event6", "p-2")]
    wanted = {(EV_REL, REL_DIAL)}
    with pytest.raises(DeviceUnavailable, match="2 input devices match 077d:0410: set `port`"):
        evdev_input.find_input(evdev, Attachment(), wanted, {(0x077D, 0x0410)})
    found, _ = evdev_input.find_input(evdev, Attachment(usb="077d:0410", serial_number="P-2"), wanted)
    assert found.path == "/dev/input/event6"
    found.close()


def test_grab_is_exclusive_and_released_on_close(evdev: FakeEvdevModule, tmp_path: Path) -> None:
    profile = tmp_path / "grabbed.toml"
    text = (REPO / "firmware_profiles" / "griffin-powermate-evdev.toml").read_text()
    profile.write_text(
        text.replace('id = "griffin-powermate-evdev"', 'id = "grabbed"').replace(
            'kind = "evdev"', 'kind = "evdev"\ngrab = true'
        )
    )
    from daq.profiles.loader import load_profile

    grabbed = load_profile(profile).profile
    dial = powermate()
    evdev.dials.append(dial)

    async def main() -> None:
        first = make_transport(grabbed, Attachment())
        second = make_transport(grabbed, Attachment())
        await first.open()
        assert dial.grabbed_by is evdev.handles[0]
        with pytest.raises(DeviceUnavailable, match="another program holds it exclusively"):
            await second.open()
        await first.close()
        assert dial.grabbed_by is None
        await second.open()
        await second.close()

    run(main())


def test_enodev_is_device_gone_and_a_replugged_dial_is_found_again(evdev: FakeEvdevModule) -> None:
    dial = powermate()
    evdev.dials.append(dial)

    async def main() -> None:
        t = transport_for("griffin-powermate-evdev")
        await t.open()
        dial.push((EV_REL, REL_DIAL, 2), SYN)
        await asyncio.sleep(0.1)
        dial.unplug()
        chunks = await read_n(t, 1)
        assert chunks[0].data == pack_events([(EV_REL, REL_DIAL, 2), SYN])
        with pytest.raises(DeviceGone, match="unplugged: No such device"):
            await t.read()
        await t.close()
        with pytest.raises(
            DeviceUnavailable, match="no input device matches 077d:0410 sending BTN_0, REL_DIAL: is the dial plugged in"
        ):
            await t.open()
        dial.plug("/dev/input/event11")
        await t.open()
        try:
            assert t.info is not None and t.info.path == "/dev/input/event11"
            dial.push((EV_REL, REL_DIAL, -1), SYN)
            assert (await read_n(t, 1))[0].data == pack_events([(EV_REL, REL_DIAL, -1), SYN])
        finally:
            await t.close()

    run(main())


def test_open_errors(evdev: FakeEvdevModule) -> None:
    evdev.dials.append(powermate())
    evdev.open_error = PermissionError(errno.EACCES, "Permission denied")
    with pytest.raises(DeviceUnavailable, match="no permission to open /dev/input/event5: install the udev rules"):
        evdev_input.find_input(evdev, Attachment(port="/dev/input/event5"), {(EV_REL, REL_DIAL)})
    evdev.open_error = None
    with pytest.raises(DeviceUnavailable, match="input device /dev/input/event7 not present"):
        evdev_input.find_input(evdev, Attachment(port="/dev/input/event7"), {(EV_REL, REL_DIAL)})


def test_the_loop_never_waits_on_the_device(evdev: FakeEvdevModule) -> None:
    """The device is read by the reader's thread only, never by the loop's: so no read of the device
    can hold the loop up, however long it takes (a causal check: a bound on the loop's lag failed on
    a loaded CI machine, 51 ms against 50)."""
    dial = powermate()
    evdev.dials.append(dial)

    async def main() -> tuple[int, int]:
        t = transport_for("griffin-powermate-evdev")
        await t.open()
        try:
            for _ in range(20):
                dial.push((EV_REL, REL_DIAL, 1), SYN)
                await asyncio.sleep(0.02)
            got = await read_n(t, 20)
        finally:
            await t.close()
        return threading.get_ident(), len(got)

    loop_thread, got = run(main())
    assert got >= 1
    (handle,) = evdev.handles
    assert handle.read_threads, "the device was read"
    assert loop_thread not in handle.read_threads, "the event loop's thread read the device"


def test_a_missing_extra_or_attachment_is_refused_before_any_device_is_touched(
    evdev: FakeEvdevModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FatalError, match="the dial needs `port`"):
        transport_for("generic-joystick-axis")
    monkeypatch.setitem(sys.modules, "evdev", None)
    with pytest.raises(MissingExtraError) as info:
        transport_for("griffin-powermate-evdev")
    assert str(info.value) == (
        "profile griffin-powermate-evdev needs the 'evdev' library: install it with pip install 'dialdaq[evdev]'"
    )


@pytest.mark.skipif(
    "evdev" in sys.modules or __import__("importlib").util.find_spec("evdev") is not None,
    reason="the evdev extra is installed here",
)
def test_daq_run_refuses_to_start_without_the_extra(tmp_path: Path) -> None:
    cfg = tmp_path / "daq.toml"
    cfg.write_text('[broker]\nurl = "mqtt://127.0.0.1:1"\n[[dials]]\nid = "pm"\nprofile = "griffin-powermate-evdev"\n')
    done = subprocess.run(
        [sys.executable, "-m", "daq", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "daq: error: profile griffin-powermate-evdev needs the 'evdev' library: install it with pip install "
        "'dialdaq[evdev]'"
    )


def test_station_reads_a_powermate_and_a_joystick_through_an_unplug(evdev: FakeEvdevModule, tmp_path: Path) -> None:
    knob, stick = powermate(), joystick(0, 255)
    evdev.dials += [knob, stick]
    cfg = tmp_path / "daq.toml"
    cfg.write_text(
        '[station]\nid = "lab"\n[broker]\nurl = "mqtt://127.0.0.1:1"\n'
        '[[dials]]\nid = "pm"\nprofile = "griffin-powermate-evdev"\n'
        '[[dials]]\nid = "joy"\nprofile = "generic-joystick-axis"\nport = "Thrustmaster"\n'
    )
    station = Station(build_config(read_config_data(cfg), cfg))

    async def main() -> None:
        tasks = [asyncio.create_task(r.run()) for r in station.readers]
        try:
            await asyncio.sleep(0.2)
            knob.push((EV_REL, REL_DIAL, 1), SYN)
            knob.push((EV_REL, REL_DIAL, 4), SYN)
            stick.push((EV_ABS, ABS_X, 0), SYN)
            stick.push((EV_ABS, ABS_X, 255), (EV_ABS, ABS_Y, 3), SYN)
            await asyncio.sleep(0.1)
            knob.unplug()
            await asyncio.sleep(0.1)
            knob.plug("/dev/input/event12")
            await asyncio.sleep(0.8)  # the reader retries after 0.25 s, then 0.5 s
            knob.push((EV_REL, REL_DIAL, -2), SYN)
            await asyncio.sleep(0.2)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    run(main())
    got: dict[str, list[dict[str, Any]]] = {}
    for entry in station.outbox.take(1000):
        body = orjson.loads(entry.payload)
        got.setdefault(body["dial"], []).append(body)
    assert [(s["seq"], s["raw"]) for s in got["pm"]] == [(0, 1), (1, 5), (2, 3)]
    assert [(s["raw"], s["value"]) for s in got["joy"]] == [(-1.0, 0.0), (1.0, 100.0)]


def test_a_sample_is_stamped_with_the_event_time_on_the_read_clock_and_meta_says_kernel(
    evdev: FakeEvdevModule, tmp_path: Path
) -> None:
    knob = powermate()
    evdev.dials.append(knob)
    cfg = tmp_path / "daq.toml"
    cfg.write_text(
        '[station]\nid = "lab"\n[broker]\nurl = "mqtt://127.0.0.1:1"\n'
        '[[dials]]\nid = "pm"\nprofile = "griffin-powermate-evdev"\n'
    )
    station = Station(build_config(read_config_data(cfg), cfg))
    pushed: list[int] = []

    async def main() -> None:
        tasks = [asyncio.create_task(r.run()) for r in station.readers]
        try:
            await asyncio.sleep(0.2)
            for age_ns in (0, 2_000_000, 30_000_000):
                pushed.append(knob.push((EV_REL, REL_DIAL, 1), SYN, age_ns=age_ns) - age_ns)
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    run(main())
    samples = [orjson.loads(e.payload) for e in station.outbox.take(1000)]
    offset = station.read_clock.offset_ns
    assert [s["t_ns"] for s in samples] == [us(event_ns) + offset for event_ns in pushed]
    meta = orjson.loads(meta_payload(station.who, "pm", True, station.announcer.dial_meta["pm"], 0))
    assert meta["stamp"] == "kernel" and meta["transport"] == "evdev"
