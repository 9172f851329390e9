"""HidTransport's reader process path (daq.transports.hid_node, reader_host, reader_process): a
hidraw dial's node opened by the daemon and read and stamped in the reader process, over a fake
hidraw node (tests/support/fake_inputs.py: `FakeHidModule.open_node`, a SEQPACKET socket pair, put
in place of daq.transports.hid_node.open_node): the same reports in give the same readings out as
hidapi's thread, one Chunk per report, stamps taken in the process, unplug and replug, a killed
reader process, and where the thread stays (readers = "thread", libusb, no process)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from daq.exceptions import DeviceGone, DeviceUnavailable
from daq.profiles.serial_settings import SerialSettings
from daq.reading import Chunk
from daq.station.station import Station
from daq.transports import hid_enum, hid_node, reader_host, reader_process
from daq.transports.attachment import Attachment
from daq.transports.hid import HidTransport
from daq.transports.reader_host import ReaderDied
from daq.transports.serial import SerialTransport
from tests.ptydial import PtyDial
from tests.support.fake_inputs import FakeHidDial, FakeHidModule, read_n
from tests.test_hid_transport import SHUTTLE_DIALS, SHUTTLE_IDS, events, report, run, samples, shuttle, station_config


@pytest.fixture
def hidraw(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The hidraw backend with nothing attached yet, its nodes opened by the fake's open_node."""
    root = tmp_path / "sys"
    root.mkdir()
    monkeypatch.setattr(hid_enum, "SYS", root)
    module = FakeHidModule("hidraw")
    monkeypatch.setitem(sys.modules, "hidraw", module)
    monkeypatch.setitem(sys.modules, "hid", FakeHidModule("hid"))
    monkeypatch.setattr(hid_enum, "LINUX", True)
    monkeypatch.setattr(hid_node, "open_node", module.open_node)
    yield module
    module.close_nodes()


def transport(attachment: Attachment | None = None, **kwargs: Any) -> HidTransport:
    kwargs.setdefault("ids", SHUTTLE_IDS)
    kwargs.setdefault("timeout_ms", 50)
    kwargs.setdefault("readers", "process")
    return HidTransport(attachment or Attachment(), **kwargs)


def test_reports_are_read_and_stamped_in_the_reader_process_one_chunk_each(hidraw: FakeHidModule) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)
    sent = [report(0, i, i << 4) for i in range(30)]

    async def main() -> None:
        t = transport()
        assert t.readers == "process"
        await t.open()
        try:
            pid = t.reader_pid
            assert pid is not None and pid != os.getpid()
            assert hidraw.nodes_opened == ["/dev/hidraw0"] and hidraw.handles == []  # hidapi opened nothing
            assert t.device is not None and t.device.path == b"/dev/hidraw0"
            for data in sent:
                pushed = dial.push(data)
                (chunk,) = await read_n(t, 1)
                received = time.monotonic_ns()
                assert chunk.data == data
                assert pushed <= chunk.mono_ns <= received
            # A burst of numbered reports of several lengths (the report id byte kept): one chunk each, in order.
            burst = [bytes([1 + i % 3, *range(i + 1)]) for i in range(12)]
            dial.push(*burst)
            assert [c.data for c in await read_n(t, len(burst))] == burst
            assert t.reader_pid == pid
        finally:
            await t.close()
        assert t.reader_pid is None and t.read_at_close == 0

    run(main())


def test_a_backlog_past_one_rounds_read_limit_is_read_whole_without_another_report(hidraw: FakeHidModule) -> None:
    """The reader's epoll is edge-triggered: a node is reported once for what is queued, so the reader
    reads it until EAGAIN, at most MAX_READS a round, and reads on in the next round by itself. 150
    reports queued at once (more than two rounds' worth) all arrive, in order, with nothing pushed after."""
    dial = shuttle()
    hidraw.dials.append(dial)
    backlog = [bytes([1, i & 0xFF, i >> 8]) for i in range(150)]
    assert len(backlog) > 2 * reader_process.MAX_READS

    async def main() -> None:
        t = transport()
        await t.open()
        try:
            dial.push(*backlog)
            assert [c.data for c in await read_n(t, len(backlog))] == backlog
        finally:
            await t.close()

    run(main())


def test_stamps_do_not_wait_for_the_daemon_holding_the_interpreter_lock(hidraw: FakeHidModule) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)

    async def main() -> tuple[int, int, int]:
        t = transport()
        await t.open()
        interval = sys.getswitchinterval()
        try:
            # A first report read back: the reader process is running and reads the node (its start
            # is not timed; a loaded machine can take a while to start a process).
            dial.push(report(0, 8))
            await read_n(t, 1)
            sys.setswitchinterval(2.0)  # no thread of this process could take the lock in the spin
            pushed = dial.push(report(0, 9))
            spin_until = time.monotonic() + 0.8
            while time.monotonic() < spin_until:  # the daemon busy in Python, holding the lock
                pass
            busy_until = time.monotonic_ns()
            sys.setswitchinterval(interval)
            (chunk,) = await read_n(t, 1)
            return pushed, chunk.mono_ns, busy_until
        finally:
            sys.setswitchinterval(interval)
            await t.close()

    pushed, stamp, busy_until = run(main())
    # Taken in the reader process while this one held the lock, not after the spin (a reader thread
    # would stamp after busy_until); half the spin is the margin for a loaded machine's scheduling.
    assert pushed <= stamp < busy_until - 400_000_000


def test_deliver_to_hands_each_report_over_as_one_chunk_then_device_gone(hidraw: FakeHidModule) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)
    burst = [bytes([2, i, 0, 0, 0, i]) for i in range(20)]

    async def main() -> list[list[Chunk]]:
        t = transport()
        await t.open()
        got: list[list[Chunk]] = []
        try:
            dial.push(*burst)
            dial.unplug()  # right behind them: every report queued before is still read
            with pytest.raises(DeviceGone, match="unplugged"):
                await asyncio.wait_for(t.deliver_to(got.append), 5)
        finally:
            await t.close()
        assert t.read_at_close == 0
        return got

    got = run(main())
    assert [c.data for chunks in got for c in chunks] == burst


def test_unplug_hands_over_what_was_read_then_device_gone_and_the_next_open_enumerates_again(
    hidraw: FakeHidModule,
) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)

    async def main() -> None:
        t = transport()
        await t.open()
        dial.push(report(0, 1), report(0, 2), report(0, 3))
        dial.unplug()  # no wait: the node's queue is read out before its end of file
        chunks = await read_n(t, 3)
        assert [c.data[1] for c in chunks] == [1, 2, 3]
        with pytest.raises(DeviceGone, match=r"hid:usb=0b33:0020: .*unplugged"):
            await t.read()
        await t.close()

        before = hidraw.enumerate_calls
        with pytest.raises(DeviceUnavailable, match="no HID device matches 0b33:0020"):
            await t.open()
        assert hidraw.enumerate_calls > before

        dial.plug(b"/dev/hidraw7")  # back, under another node
        await t.open()
        try:
            assert t.device is not None and t.device.path == b"/dev/hidraw7"
            assert hidraw.nodes_opened == ["/dev/hidraw0", "/dev/hidraw7"]
            dial.push(report(0, 4))
            assert [c.data for c in await read_n(t, 1)] == [report(0, 4)]
        finally:
            await t.close()
        await t.close()  # idempotent

    run(main())


def test_a_killed_reader_process_ends_the_port_and_the_next_open_reads_on(hidraw: FakeHidModule) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)

    async def main() -> None:
        t = transport()
        await t.open()
        first = t.reader_pid
        assert first is not None
        try:
            dial.push(report(0, 1))
            assert [c.data for c in await read_n(t, 1)] == [report(0, 1)]
            os.kill(first, signal.SIGKILL)
            with pytest.raises(ReaderDied, match=r"hid:usb=0b33:0020: the reader process was killed by SIGKILL"):
                await asyncio.wait_for(t.read(), 5)
            await t.close()
            dial.push(report(0, 2), report(0, 3))  # while no process reads: they wait in the node
            with pytest.raises(ReaderDied):  # closed after ReaderDied: read() says why
                await t.read()
            enumerated = hidraw.enumerate_calls
            await t.open()
            assert t.reader_pid not in (None, first)
            assert [c.data for c in await read_n(t, 2)] == [report(0, 2), report(0, 3)]
            assert hidraw.nodes_opened == ["/dev/hidraw0"]  # the node was kept open, not opened again
            assert hidraw.enumerate_calls == enumerated
            dial.push(report(0, 4))
            assert [c.data for c in await read_n(t, 1)] == [report(0, 4)]
        finally:
            await t.close()
        assert t.read_at_close == 0

    run(main())


def test_the_same_reports_give_the_same_readings_as_the_thread(hidraw: FakeHidModule, tmp_path: Path) -> None:
    """The Shuttle's jog and ring through unplug and replug, by a Station, once per way of reading."""

    def scenario(readers: str) -> tuple[dict[str, list[tuple[int, int]]], list[str], set[int | None]]:
        hidraw.dials.clear()
        dial = shuttle()
        hidraw.dials.append(dial)
        (tmp_path / readers).mkdir()
        own_outbox = f'[outbox]\npath = "{tmp_path / readers / "outbox"}"\n'
        station = Station(station_config(tmp_path / readers, own_outbox + SHUTTLE_DIALS, readers=readers))
        reader = station.readers[0]
        pids: set[int | None] = set()

        async def main() -> None:
            task = asyncio.create_task(reader.run())
            try:
                await asyncio.sleep(0.1)
                for r in [report(0, 250), report(1, 253), report(2, 2), report(0, 2, 0x10), report(-3, 1)]:
                    dial.push(r)
                    await asyncio.sleep(0.02)
                pids.add(getattr(reader.transport, "reader_pid", None))
                await asyncio.sleep(0.1)
                dial.unplug()
                await asyncio.sleep(0.1)
                dial.plug(b"/dev/hidraw3")
                for _ in range(100):
                    if sum(1 for e in events(station) if (e["kind"], e["dial"]) == ("device.connected", "jog")) >= 2:
                        break
                    await asyncio.sleep(0.05)
                for r in [report(0, 100), report(0, 104), report(7, 103)]:
                    dial.push(r)
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.2)
                pids.add(getattr(reader.transport, "reader_pid", None))
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        run(main())
        got = {dial_id: [(s["seq"], s["raw"]) for s in series] for dial_id, series in samples(station).items()}
        kinds = [e["kind"] for e in events(station) if e["dial"] == "jog"]
        return got, kinds, pids

    thread, thread_kinds, thread_pids = scenario("thread")
    process, process_kinds, process_pids = scenario("process")
    assert process == thread
    assert [raw for _, raw in process["jog"]] == [3, 8, 7, 11, 10]
    assert [raw for _, raw in process["ring"]] == [0, 1, 2, 0, -3, 0, 0, 7]
    assert process_kinds == thread_kinds and process_kinds.count("device.connected") == 2
    assert thread_pids == {None}
    assert None not in process_pids and os.getpid() not in process_pids
    assert hidraw.nodes_opened == ["/dev/hidraw0", "/dev/hidraw3"]


def test_readers_thread_and_libusb_keep_hidapis_thread(hidraw: FakeHidModule, monkeypatch: pytest.MonkeyPatch) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)
    libusb = FakeHidModule("hid", [FakeHidDial(b"1-3:1.0", 0x0B33, 0x0020)])
    monkeypatch.setitem(sys.modules, "hid", libusb)

    async def one(t: HidTransport, module: FakeHidModule, push: FakeHidDial) -> None:
        assert t.readers == "thread"
        await t.open()
        try:
            assert t.reader_pid is None
            push.push(report(0, 5))
            assert [c.data for c in await read_n(t, 1)] == [report(0, 5)]
            assert [c.what for c in module.handles[-1].calls][:2] == ["open_path", "read"]
        finally:
            await t.close()

    run(one(transport(readers="thread"), hidraw, dial))
    run(one(transport(Attachment(port="libusb:1-3:1.0"), readers="process"), libusb, libusb.dials[0]))
    assert hidraw.nodes_opened == []
    with reader_host.readers_mode("thread"):
        assert transport(readers=None).readers == "thread"  # the station's [station] readers = "thread"
    with reader_host.readers_mode(None):
        assert transport(readers=None).readers == "process"


def test_no_reader_process_reads_in_hidapis_thread(hidraw: FakeHidModule, monkeypatch: pytest.MonkeyPatch) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)

    async def main() -> None:
        t = transport()
        monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # no process can start
        await t.open()
        try:
            assert t.readers == "thread" and t.reader_pid is None
            assert hidraw.nodes_opened == ["/dev/hidraw0"] and len(hidraw.handles) == 1
            dial.push(report(0, 6))
            assert [c.data for c in await read_n(t, 1)] == [report(0, 6)]
        finally:
            await t.close()

    run(main())


def test_open_errors_on_the_process_path_say_what_to_do(
    hidraw: FakeHidModule, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    node = tmp_path / "hidraw0"
    node.touch()
    hidraw.dials.append(shuttle(str(node).encode()))

    async def attempt() -> str:
        with pytest.raises(DeviceUnavailable) as info:
            await transport().open()
        return str(info.value)

    hidraw.node_error = OSError(errno.EBUSY, "Device or resource busy")
    assert "Another program may hold it" in run(attempt())
    hidraw.node_error = PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(hid_enum, "can_open", lambda path: False)
    message = run(attempt())
    assert "no permission to open" in message and "udev rules" in message
    assert hidraw.handles == []  # the node, not hidapi, was opened


async def read_bytes(t: SerialTransport, n: int) -> bytes:
    """At least `n` bytes from a serial port, however its reads cut them."""
    data = b""
    async with asyncio.timeout(3):
        while len(data) < n:
            data += b"".join(c.data for c in await t.read())
    return data


def test_a_serial_port_and_a_hid_dial_share_the_one_reader_process(hidraw: FakeHidModule, tmp_path: Path) -> None:
    dial = shuttle()
    hidraw.dials.append(dial)

    async def main() -> None:
        with PtyDial(tmp_path) as pty:
            serial_port = SerialTransport(SerialSettings(settle_s=0), Attachment(port=str(pty.path)), readers="process")
            hid = transport()
            await serial_port.open()
            await hid.open()
            try:
                assert hid.reader_pid is not None and hid.reader_pid == serial_port.reader_pid
                pty.write(b"512\r\n")
                dial.push(report(0, 1))
                assert [c.data for c in await read_n(hid, 1)] == [report(0, 1)]
                assert await read_bytes(serial_port, 5) == b"512\r\n"
                await hid.close()  # the process goes on for the serial port
                assert serial_port.reader_pid is not None
                pty.write(b"7\r\n")
                assert await read_bytes(serial_port, 3) == b"7\r\n"
            finally:
                await hid.close()
                await serial_port.close()

    run(main())


def test_open_node_opens_read_only_non_blocking_close_on_exec(tmp_path: Path) -> None:
    node = tmp_path / "hidraw0"
    os.mkfifo(node)  # a FIFO opened read-only and non-blocking opens at once, as a hidraw node does
    fd = hid_node.open_node(str(node))
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        assert flags & os.O_ACCMODE == os.O_RDONLY and flags & os.O_NONBLOCK
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        os.close(fd)
    with pytest.raises(FileNotFoundError):
        hid_node.open_node(str(tmp_path / "hidraw9"))
