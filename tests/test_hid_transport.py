"""HidTransport over a fake hidapi (tests/support/fake_inputs.py) at the `hid` / `hidraw` module
boundary: exact reports, stamps, timeouts, unplug and replug, device selection, backends, one
thread per device, an event loop that never waits on a read; and the daemon path (Station's
devices, DeviceReader, pipelines) on top, in-process and against a real Mosquitto. All on
hidapi's thread (`readers = "thread"`); the hidraw reader process: tests/test_hid_reader_process.py."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from daq.config import build_config
from daq.exceptions import DeviceGone, DeviceUnavailable, FatalError
from daq.profiles.loader import ProfileRegistry, profile_from_dict
from daq.station.station import Station
from daq.transports import hid_enum, make_transport
from daq.transports.attachment import Attachment
from daq.transports.base import Transport
from daq.transports.hid import HidTransport
from tests.support.fake_inputs import FakeHidDial, FakeHidModule, SysUsb, make_sysfs, read_n
from tests.support.procs import Mosquitto, Sub, wait_for

T = TypeVar("T")
SHUTTLE_IDS = {(0x0B33, 0x0020)}
REGISTRY = ProfileRegistry.load()


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sys"
    root.mkdir()
    monkeypatch.setattr(hid_enum, "SYS", root)
    return root


@pytest.fixture
def hidraw(monkeypatch: pytest.MonkeyPatch, sysfs: Path) -> FakeHidModule:
    """The hidraw backend (the Linux default) with nothing attached yet; libusb sees nothing."""
    module = FakeHidModule("hidraw")
    monkeypatch.setitem(sys.modules, "hidraw", module)
    monkeypatch.setitem(sys.modules, "hid", FakeHidModule("hid"))
    monkeypatch.setattr(hid_enum, "LINUX", True)
    return module


def shuttle(path: bytes = b"/dev/hidraw0", serial: str = "") -> FakeHidDial:
    return FakeHidDial(path, 0x0B33, 0x0020, serial=serial, product="ShuttleXpress", manufacturer="Contour Design")


def report(ring: int, jog: int, keys: int = 0) -> bytes:
    return bytes([ring & 0xFF, jog, 0, keys & 0xFF, keys >> 8])


def transport(attachment: Attachment | None = None, **kwargs: Any) -> HidTransport:
    """The hidapi thread path (the reader process path: tests/test_hid_reader_process.py)."""
    kwargs.setdefault("ids", SHUTTLE_IDS)
    kwargs.setdefault("timeout_ms", 50)
    kwargs.setdefault("readers", "thread")
    return HidTransport(attachment or Attachment(), **kwargs)


# ---------------------------------------------------------------- the transport


def test_is_a_transport_described_by_where_it_is(hidraw: FakeHidModule) -> None:
    t: Transport = transport()
    assert t.describe == "hid:usb=0b33:0020"
    assert transport(Attachment(usb="0b33:0020", serial_number="A7")).describe == "hid:usb=0b33:0020, serial_number=A7"
    assert transport(Attachment(port="/dev/hidraw3")).describe == "hid:/dev/hidraw3"


def test_exact_reports_stamped_right_after_read_returns(hidraw: FakeHidModule) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)
    sent = [report(0, i, i << 4) for i in range(40)]

    async def main() -> None:
        t = transport()
        await t.open()
        try:
            assert t.device is not None and t.device.path == b"/dev/hidraw0"
            delays = []
            for data in sent:
                pushed = dial.push(data)
                (chunk,) = await read_n(t, 1)
                received = time.monotonic_ns()
                assert chunk.data == data
                assert pushed <= chunk.mono_ns <= received
                delays.append(chunk.mono_ns - pushed)
            # The best near the push: a wrong clock fails it, one late wake-up of a loaded machine not.
            assert min(delays) < 50_000_000, delays
            dial.push(*sent[:5])  # a burst: each report its own chunk, in order
            assert [c.data for c in await read_n(t, 5)] == sent[:5]
        finally:
            await t.close()

    run(main())


def test_the_loop_never_waits_while_the_thread_blocks_in_read(hidraw: FakeHidModule) -> None:
    """hidapi's blocking read happens on the reader's thread only, never on the loop's (a causal
    check: a bound on the loop's lag failed on loaded machines)."""
    dial = shuttle()
    hidraw.dials.append(dial)

    async def main() -> tuple[int, float, list[bytes]]:
        t = transport(timeout_ms=200)  # each idle read blocks 200 ms inside hidapi
        await t.open()
        got: list[bytes] = []
        try:
            await asyncio.sleep(0.6)  # idle: reads time out, [] each time
            dial.push(report(0, 1))
            got = [c.data for c in await read_n(t, 1)]
        finally:
            await t.close()
        return threading.get_ident(), hidraw.handles[0].read_blocked_s, got

    loop_thread, blocked_s, got = run(main())
    assert got == [report(0, 1)]
    assert blocked_s > 0.4  # the fake really blocked inside read()
    reads = [c.thread for c in hidraw.handles[0].calls if c.what == "read"]
    assert reads and loop_thread not in reads, "the event loop's thread blocked in hidapi's read"


def test_unplug_hands_over_what_was_read_then_device_gone_and_replug_is_found_again(
    hidraw: FakeHidModule,
) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)

    async def main() -> None:
        t = transport()
        await t.open()
        dial.push(report(0, 1), report(0, 2), report(0, 3))
        await asyncio.sleep(0.2)
        dial.unplug()
        chunks = await read_n(t, 3)
        assert [c.data[1] for c in chunks] == [1, 2, 3]
        with pytest.raises(DeviceGone, match="read failed: read error"):
            await t.read()
        await t.close()

        with pytest.raises(DeviceUnavailable, match="no HID device matches 0b33:0020") as info:
            await t.open()
        assert "daq devices" in str(info.value)

        dial.plug(b"/dev/hidraw7")  # back, under another node
        await t.open()
        try:
            assert t.device is not None and t.device.path == b"/dev/hidraw7"
            dial.push(report(0, 4))
            assert [c.data for c in await read_n(t, 1)] == [report(0, 4)]
        finally:
            await t.close()
        await t.close()  # idempotent

    run(main())


def test_every_hidapi_call_for_a_device_comes_from_its_one_thread(hidraw: FakeHidModule) -> None:
    a, b = shuttle(b"/dev/hidraw0", "A"), shuttle(b"/dev/hidraw1", "B")
    hidraw.dials += [a, b]

    async def main() -> None:
        ta = transport(Attachment(usb="0b33:0020", serial_number="A"))
        tb = transport(Attachment(usb="0b33:0020", serial_number="B"))
        await asyncio.gather(ta.open(), tb.open())
        a.push(report(0, 1))
        b.push(report(0, 2))
        assert [c.data[1] for c in await read_n(ta, 1)] == [1]
        assert [c.data[1] for c in await read_n(tb, 1)] == [2]
        await asyncio.gather(ta.close(), tb.close())

    run(main())
    threads: list[int] = []
    for handle in hidraw.handles:
        kinds = [c.what for c in handle.calls]
        assert kinds[0] == "open_path" and kinds[-1] == "close" and "read" in kinds
        ids = {c.thread for c in handle.calls}
        assert len(ids) == 1
        threads += ids
    assert len(set(threads)) == 2
    assert threading.get_ident() not in threads


def test_open_errors_say_what_to_do(hidraw: FakeHidModule, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    node = tmp_path / "hidraw0"
    node.touch()
    hidraw.dials.append(shuttle(str(node).encode()))
    hidraw.open_error = OSError("open failed")

    async def attempt() -> str:
        with pytest.raises(DeviceUnavailable) as info:
            await transport().open()
        return str(info.value)

    assert "Another program may hold it" in run(attempt())
    monkeypatch.setattr(hid_enum, "can_open", lambda path: False)
    message = run(attempt())
    assert "no permission to open" in message and "udev rules" in message


# ---------------------------------------------------------------- which device, which backend


def test_selection_by_serial_number_path_and_location(hidraw: FakeHidModule, monkeypatch: pytest.MonkeyPatch) -> None:
    hidraw.dials += [shuttle(b"/dev/hidraw0", "A"), shuttle(b"/dev/hidraw1", "B")]
    present = hid_enum.enumerate_hid("hidraw")
    with pytest.raises(DeviceUnavailable, match="2 HID devices match 0b33:0020: add serial_number or location"):
        hid_enum.find_hid("hidraw", Attachment(), None, SHUTTLE_IDS)
    assert hid_enum.find_hid("hidraw", Attachment(serial_number="b"), None, SHUTTLE_IDS).path == b"/dev/hidraw1"
    assert hid_enum.find_hid("hidraw", Attachment(port="/dev/hidraw1"), "/dev/hidraw1", ()).serial_number == "B"
    with pytest.raises(DeviceUnavailable, match="not present"):
        hid_enum.find_hid("hidraw", Attachment(port="/dev/hidraw9"), "/dev/hidraw9", ())
    assert [d.location for d in present] == [None, None]  # no sysfs entries for them here

    libusb = FakeHidModule("hid", [FakeHidDial(b"1-3:1.0", 0x0B33, 0x0020), FakeHidDial(b"1-4.2:1.0", 0x0B33, 0x0020)])
    monkeypatch.setitem(sys.modules, "hid", libusb)
    found = hid_enum.find_hid("libusb", Attachment(location="1-4.2"), None, SHUTTLE_IDS)
    assert (found.path, found.location, found.usb_interface) == (b"1-4.2:1.0", "1-4.2", "1-4.2:1.0")


def test_hidraw_location_comes_from_sysfs(hidraw: FakeHidModule, sysfs: Path) -> None:
    make_sysfs(
        sysfs, [SysUsb("1-3", 0x0B33, 0x0020, hidraw="hidraw0"), SysUsb("1-4", 0x0B33, 0x0020, hidraw="hidraw1")]
    )
    hidraw.dials += [shuttle(b"/dev/hidraw0"), shuttle(b"/dev/hidraw1")]
    assert hid_enum.find_hid("hidraw", Attachment(location="1-4"), None, SHUTTLE_IDS).path == b"/dev/hidraw1"


def test_backend_choice(hidraw: FakeHidModule, monkeypatch: pytest.MonkeyPatch) -> None:
    assert hid_enum.resolve_backend("auto") == ("hidraw", None)
    assert hid_enum.resolve_backend("auto", "libusb:") == ("libusb", None)
    assert hid_enum.resolve_backend("auto", "libusb:1-3:1.0") == ("libusb", "1-3:1.0")
    assert hid_enum.resolve_backend("libusb", "/dev/hidraw2") == ("hidraw", "/dev/hidraw2")
    assert hid_enum.resolve_backend("libusb", None) == ("libusb", None)
    monkeypatch.setitem(sys.modules, "hidraw", None)  # a hidapi built without hidraw
    assert hid_enum.resolve_backend("auto") == ("libusb", None)
    monkeypatch.setattr(hid_enum, "LINUX", False)
    assert hid_enum.resolve_backend("auto", "libusb:") == ("native", None)


def test_make_transport_uses_the_profile_and_refuses_what_cannot_work(
    hidraw: FakeHidModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    shuttle_profile = REGISTRY.get("contour-shuttlexpress").profile
    made = make_transport(shuttle_profile, Attachment())
    assert isinstance(made, HidTransport) and made.backend == "hidraw" and made.describe == "hid:usb=0b33:0020"

    data = shuttle_profile.model_dump(exclude_defaults=True)
    data.update(id="lab-libusb", match={}, framing={"kind": "report", "length": 5, "backend": "libusb"})
    lab = profile_from_dict(data)
    assert isinstance(made := make_transport(lab, Attachment(usb="0b33:0020")), HidTransport)
    assert made.backend == "libusb"
    with pytest.raises(FatalError, match="has no \\[match\\] usb ids, so the dial needs `port`"):
        make_transport(lab, Attachment())

    monkeypatch.setitem(sys.modules, "hidraw", None)
    monkeypatch.setitem(sys.modules, "hid", None)
    with pytest.raises(FatalError, match="profile contour-shuttlexpress needs the hidapi library"):
        make_transport(shuttle_profile, Attachment())


# ---------------------------------------------------------------- the daemon path


def station_config(tmp_path: Path, dials: str, broker: str = "mqtt://127.0.0.1:1", readers: str = "thread") -> Any:
    path = tmp_path / "daq.toml"
    path.write_text(f'[station]\nid = "lab"\nreaders = "{readers}"\n[broker]\nurl = "{broker}"\n{dials}')
    return build_config(__import__("tomllib").loads(path.read_text()), path)


SHUTTLE_DIALS = """
[[dials]]
id = "jog"
profile = "contour-shuttlexpress"
[[dials]]
id = "ring"
profile = "contour-shuttlexpress"
channel = "ring"
"""


def samples(station: Station) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in station.outbox.take(10_000):
        body = orjson.loads(entry.payload)
        out.setdefault(body["dial"], []).append(body)
    return out


def events(station: Station) -> list[dict[str, Any]]:
    return [orjson.loads(p) for t, p, retained in station.publisher._control if t.endswith("/events")]


def test_station_reads_jog_and_ring_through_unplug_and_replug_without_a_gap(
    hidraw: FakeHidModule, tmp_path: Path
) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)
    station = Station(station_config(tmp_path, SHUTTLE_DIALS))
    assert len(station.readers) == 1  # jog and ring share the device

    async def main() -> int:
        reader = station.readers[0]
        task = asyncio.create_task(reader.run())
        try:
            await asyncio.sleep(0.1)
            for r in [report(0, 250), report(1, 253), report(2, 2), report(0, 2, 0x10), report(-3, 1)]:
                dial.push(r)
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            dial.unplug()
            await asyncio.sleep(0.1)
            dial.plug(b"/dev/hidraw3")
            for _ in range(100):
                if sum(1 for e in events(station) if (e["kind"], e["dial"]) == ("device.connected", "jog")) >= 2:
                    break
                await asyncio.sleep(0.05)
            for r in [report(0, 100), report(0, 104), report(7, 103)]:  # a new baseline, +4, -1
                dial.push(r)
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return threading.get_ident()

    loop_thread = run(main())
    got = samples(station)
    jog, ring = got["jog"], got["ring"]
    assert [s["raw"] for s in jog] == [3, 8, 7, 11, 10]
    assert [s["raw"] for s in ring] == [0, 1, 2, 0, -3, 0, 0, 7]
    for series in (jog, ring):
        assert [s["seq"] for s in series] == list(range(len(series)))  # no gap across the replug
    kinds = [e["kind"] for e in events(station) if e["dial"] == "jog"]  # each dial of the device is told
    assert kinds.count("device.connected") == 2 and kinds.count("device.disconnected") == 1
    assert ("button", "b1 pressed") in [(e["kind"], e["message"]) for e in events(station)]
    reads = [c.thread for handle in hidraw.handles for c in handle.calls if c.what == "read"]
    assert reads and loop_thread not in reads, "the event loop's thread read the device"


def test_daq_run_in_process_publishes_the_stream_deck_dials(
    hidraw: FakeHidModule, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    deck = FakeHidDial(b"/dev/hidraw0", 0x0FD9, 0x0084, serial="DK1", product="Stream Deck +")
    hidraw.dials.append(deck)
    dials = "".join(
        f'[[dials]]\nid = "r{i}"\nprofile = "elgato-streamdeck-plus"\nchannel = "dial{i}"\n' for i in range(1, 5)
    )
    station = Station(station_config(tmp_path, dials, mosquitto.url))
    sub = Sub(mosquitto.port, ["daq/lab/dials/+/samples"], tmp_path / "sub.jsonl")

    def turn(*deltas: int) -> bytes:
        return bytes([0x01, 0x03, 0, 0, 0x01, *(d & 0xFF for d in deltas), 0, 0, 0, 0, 0])

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(station.run(stop))
        try:
            await asyncio.sleep(0.5)
            for r in [
                turn(1, 0, 0, -1),
                turn(2, 1, 0, -1),
                bytes([1, 3, 0, 0, 0, 1, 1, 1, 1]) + bytes(5),
                turn(0, 0, 3, 0),
            ]:
                deck.push(r)
                await asyncio.sleep(0.02)
            await asyncio.to_thread(
                wait_for, lambda: len(sub.messages()) >= 6, 10, 0.05, "the samples at mosquitto_sub"
            )
        finally:
            stop.set()
            await running

    try:
        run(main(), timeout=30)
        by_dial: dict[str, list[int]] = {}
        for m in sub.messages():
            payload = m["payload"]
            for s in payload if isinstance(payload, list) else [payload]:
                by_dial.setdefault(s["dial"], []).append(s["raw"])
    finally:
        sub.stop()
    assert by_dial == {"r1": [1, 3], "r2": [1], "r3": [3], "r4": [-1, -2]}
