"""MidiTransport over a fake mido (tests/support/fake_inputs.py): messages delivered from a
thread of the fake's own, as rtmidi does, become chunks stamped in that callback; the port is
found by name; its disappearance is DeviceGone and it is found again under a new ALSA number;
deliver_to; messages received but not taken at close counted; the daemon path on top; the extra
missing is refused before anything is opened."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from daq.config import build_config, read_config_data
from daq.exceptions import DeviceGone, DeviceUnavailable, FatalError, MissingExtraError
from daq.profiles.loader import ProfileRegistry
from daq.station.station import Station
from daq.transports import make_transport, midi
from daq.transports.attachment import Attachment
from daq.transports.midi import MidiTransport, pick_port
from tests.support.fake_inputs import FakeMidiController, FakeMidoModule, fake_rtmidi, read_n
from tests.support.polling import until

T = TypeVar("T")
REGISTRY = ProfileRegistry.load()
NANO = "nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0"
THROUGH = "Midi Through:Midi Through Port-0 14:0"


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def mido(monkeypatch: pytest.MonkeyPatch) -> FakeMidoModule:
    module = FakeMidoModule(extra_names=[THROUGH])
    monkeypatch.setitem(sys.modules, "mido", module)
    monkeypatch.setitem(sys.modules, "rtmidi", fake_rtmidi())
    monkeypatch.setattr(midi, "POLL_S", 0.05)
    return module


def nano_transport(attachment: Attachment | None = None) -> MidiTransport:
    made = make_transport(REGISTRY.get("korg-nanokontrol2").profile, attachment or Attachment())
    assert isinstance(made, MidiTransport)
    return made


def test_messages_are_chunks_stamped_in_the_callback(mido: FakeMidoModule) -> None:
    nano = FakeMidiController(NANO)
    mido.controllers.append(nano)

    async def main() -> None:
        t = nano_transport()
        assert t.describe == "midi:nanoKONTROL2"
        await t.open()
        try:
            assert t.name == NANO
            delays = []
            for message in (b"\xb0\x10\x40", b"\xb0\x00\x7f", b"\x90\x24\x40"):
                sent = await asyncio.to_thread(nano.send, message)
                (chunk,) = await read_n(t, 1)
                received = time.monotonic_ns()
                assert chunk.data == message
                assert sent <= chunk.mono_ns <= received
                delays.append(chunk.mono_ns - sent)
            # The best near the send: a wrong clock fails it, one late wake-up of a loaded machine not.
            assert min(delays) < 50_000_000, delays
            await asyncio.to_thread(nano.send, *[bytes([0xB0, 0x10, v]) for v in range(50)])
            assert [c.data[2] for c in await read_n(t, 50)] == list(range(50))
        finally:
            await t.close()
        assert mido.opened[0].closed

    run(main())


def test_port_names() -> None:
    names = [THROUGH, NANO, "nanoKONTROL2:nanoKONTROL2 MIDI 1 24:0", "X-TOUCH MINI:X-TOUCH MINI MIDI 1 28:0"]
    assert pick_port(names, ["x-touch mini"]) == names[3]
    assert pick_port(names, [NANO]) == NANO  # the whole name wins over the other nanoKONTROL2
    with pytest.raises(DeviceUnavailable, match="2 MIDI input ports match 'nanoKONTROL2': set `port` to the whole"):
        pick_port(names, ["nanoKONTROL2"])
    with pytest.raises(DeviceUnavailable, match=r"no MIDI input port named like 'LaunchControl'.*Present: 'Midi Thr"):
        pick_port(names, ["LaunchControl"])


def test_an_unplug_is_device_gone_and_the_replugged_port_is_found_under_its_new_number(mido: FakeMidoModule) -> None:
    nano = FakeMidiController(NANO)
    mido.controllers.append(nano)

    async def main() -> None:
        t = nano_transport()
        await t.open()
        await asyncio.to_thread(nano.send, b"\xb0\x10\x01")
        nano.unplug()
        assert [c.data for c in await read_n(t, 1)] == [b"\xb0\x10\x01"]
        with pytest.raises(DeviceGone, match="disappeared"):
            async with asyncio.timeout(2):
                await t.read()
        await t.close()
        with pytest.raises(DeviceUnavailable, match="no MIDI input port named like 'nanoKONTROL2'"):
            await t.open()
        nano.plug("nanoKONTROL2:nanoKONTROL2 MIDI 1 24:0")
        await t.open()
        try:
            assert t.name == "nanoKONTROL2:nanoKONTROL2 MIDI 1 24:0"
            await asyncio.to_thread(nano.send, b"\xb0\x11\x02")
            assert [c.data for c in await read_n(t, 1)] == [b"\xb0\x11\x02"]
        finally:
            await t.close()

    run(main())


def test_deliver_to_hands_over_everything_read_then_device_gone(mido: FakeMidoModule) -> None:
    """The way the DeviceReader takes chunks: every message in order (sent before deliver_to and while
    it runs), then the watcher's DeviceGone for the port that disappeared."""
    nano = FakeMidiController(NANO)
    mido.controllers.append(nano)
    messages = [bytes([0xB0, 0x10, v]) for v in range(60)]

    async def main() -> None:
        t = nano_transport()
        await t.open()
        got: list[bytes] = []
        try:
            await asyncio.to_thread(nano.send, *messages[:20])
            task = asyncio.create_task(t.deliver_to(lambda chunks: got.extend(c.data for c in chunks)))
            await asyncio.to_thread(nano.send, *messages[20:], interval_s=0.001)
            await until(lambda: len(got) >= len(messages), "every message handed over")
            nano.unplug()
            with pytest.raises(DeviceGone, match="disappeared"):
                await task
            assert got == messages
        finally:
            await t.close()
        assert t.read_at_close == 0

    run(main())


def test_messages_received_but_not_taken_at_close_are_counted(
    mido: FakeMidoModule, caplog: pytest.LogCaptureFixture
) -> None:
    """What the callback handed over and nobody took is counted in read_at_close at close() and
    logged, not dropped silently; what was taken is not counted."""
    nano = FakeMidiController(NANO)
    mido.controllers.append(nano)

    async def main() -> MidiTransport:
        t = nano_transport()
        await t.open()
        await asyncio.to_thread(nano.send, b"\xb0\x10\x01", b"\xb0\x10\x02")
        assert [c.data for c in await read_n(t, 2)] == [b"\xb0\x10\x01", b"\xb0\x10\x02"]
        await asyncio.to_thread(nano.send, b"\xb0\x10\x03", b"\xb0\x00\x7f", b"\x90\x24\x40")
        await t.close()  # send() returned once the callback had run: the three are in, never taken
        assert t.read_at_close == 3
        await t.open()
        await asyncio.to_thread(nano.send, b"\xb0\x10\x04")
        assert [c.data for c in await read_n(t, 1)] == [b"\xb0\x10\x04"]
        await t.close()  # everything taken: nothing more counted
        return t

    with caplog.at_level(logging.WARNING, logger="daq.transports.midi"):
        t = run(main())
    assert t.read_at_close == 3
    said = [r.getMessage() for r in caplog.records if "read but not decoded" in r.getMessage()]
    assert said == ["midi:nanoKONTROL2: closed with 3 messages (9 bytes) read but not decoded"]


def test_no_midi_system_and_the_loop_never_waits(mido: FakeMidoModule) -> None:
    mido.list_error = SystemError("MidiInAlsa::initialize: error creating ALSA sequencer client object.")

    async def no_system() -> None:
        with pytest.raises(DeviceUnavailable, match=r"cannot list MIDI ports: MidiInAlsa.*ALSA sequencer available"):
            await nano_transport().open()

    run(no_system())
    mido.list_error = None
    nano = FakeMidiController(NANO)
    mido.controllers.append(nano)

    async def main() -> tuple[int, set[int], int]:
        t = nano_transport(Attachment(port="nanoKONTROL2 MIDI"))
        await t.open()
        (port,) = nano.ports
        handed: set[int] = set()  # the threads the transport's callback ran on
        inner = port.callback

        def callback(message: Any) -> None:
            handed.add(threading.get_ident())
            inner(message)

        port.callback = callback
        try:
            sender = asyncio.create_task(asyncio.to_thread(nano.send, *[b"\xb0\x10\x05"] * 20, interval_s=0.02))
            got = await read_n(t, 20)
            await sender
        finally:
            await t.close()
        return threading.get_ident(), handed, len(got)

    # The messages come in on rtmidi's thread and are handed over from there; the loop's thread never
    # runs device code, so it cannot wait on the device (a causal check: a bound on the loop's lag
    # failed on loaded machines).
    loop_thread, handed, got = run(main())
    assert got == 20
    assert handed and loop_thread not in handed


def test_missing_libraries_and_a_profile_without_a_port_name(
    mido: FakeMidoModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = REGISTRY.get("korg-nanokontrol2").profile
    bare = profile.model_copy(update={"match": profile.match.model_copy(update={"product": ()})})
    with pytest.raises(FatalError, match="the dial needs `port` = a part of the MIDI port's name"):
        make_transport(bare, Attachment())
    monkeypatch.setitem(sys.modules, "rtmidi", None)
    with pytest.raises(MissingExtraError, match=r"needs the 'python-rtmidi' library: .*pip install 'dialdaq\[midi\]'"):
        make_transport(profile, Attachment())
    monkeypatch.setitem(sys.modules, "mido", None)
    with pytest.raises(MissingExtraError, match="profile korg-nanokontrol2 needs the 'mido' library"):
        make_transport(profile, Attachment())


def test_station_reads_a_knob_and_a_fader_through_an_unplug(mido: FakeMidoModule, tmp_path: Path) -> None:
    nano = FakeMidiController(NANO)
    mido.controllers.append(nano)
    cfg = tmp_path / "daq.toml"
    cfg.write_text(
        '[station]\nid = "lab"\n[broker]\nurl = "mqtt://127.0.0.1:1"\n'
        '[[dials]]\nid = "r1"\nprofile = "korg-nanokontrol2"\n'
        '[[dials]]\nid = "r2"\nprofile = "korg-nanokontrol2"\nchannel = "fader1"\n'
    )
    station = Station(build_config(read_config_data(cfg), cfg))
    assert len(station.readers) == 1

    async def main() -> None:
        task = asyncio.create_task(station.readers[0].run())
        try:
            await asyncio.sleep(0.2)
            await asyncio.to_thread(nano.send, b"\xb0\x10\x00", b"\xb0\x00\x40", b"\xb0\x10\x7f")
            await asyncio.sleep(0.1)
            nano.unplug()
            await asyncio.sleep(0.2)
            nano.plug("nanoKONTROL2:nanoKONTROL2 MIDI 1 24:0")
            await asyncio.sleep(0.9)  # the reader retries after 0.25 s, then 0.5 s
            await asyncio.to_thread(nano.send, b"\xb0\x00\x7f", b"\xb0\x10\x40")
            await asyncio.sleep(0.2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(main())
    got: dict[str, list[tuple[int, int]]] = {}
    for entry in station.outbox.take(100):
        body = orjson.loads(entry.payload)
        got.setdefault(body["dial"], []).append((body["seq"], body["raw"]))
    assert got == {"r1": [(0, 0), (1, 127), (2, 64)], "r2": [(0, 64), (1, 127)]}
