"""SerialTransport over real pseudo-terminals (tests/ptydial.py): bytes, stamps, settle, init,
unplug and replug, open errors, and an event loop that never waits on the port.

Every test runs with the ports read in the reader process and in the daemon's thread
(`[station] readers`), but those that reach into the thread (`thread_only`)."""

from __future__ import annotations

import asyncio
import errno
import os
import termios
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
import serial
import serial.tools.list_ports

import daq.transports.serial as serial_transport
from daq.exceptions import DeviceGone, DeviceUnavailable
from daq.profiles.serial_settings import SerialSettings
from daq.reading import Chunk
from daq.transports.attachment import Attachment
from daq.transports.base import Transport
from daq.transports.reader_host import MODES, ReadersMode, readers_mode
from daq.transports.serial import SerialTransport, decode_escapes
from tests.ptydial import PtyDial
from tests.support.polling import until
from tests.support.readers import reader_processes

T = TypeVar("T")
FAST = SerialSettings(baud=115200, read_timeout_s=0.2)

thread_only = pytest.mark.parametrize("readers", ["thread"], indirect=True)
"""For a test that reaches into the daemon's reader thread (its os.read, its pyserial read)."""


@pytest.fixture(autouse=True, params=MODES)
def readers(request: pytest.FixtureRequest) -> Iterator[ReadersMode]:
    """Every transport the test makes reads in the reader process, then (a second run) in a thread."""
    mode: ReadersMode = request.param
    with readers_mode(mode):
        yield mode


def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def dial(tmp_path: Path) -> Iterator[PtyDial]:
    with PtyDial(tmp_path) as d:
        yield d


def transport_for(dial: PtyDial, settings: SerialSettings = FAST) -> SerialTransport:
    return SerialTransport(settings, Attachment(port=str(dial.path)))


async def read_bytes(transport: SerialTransport, n: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    async with asyncio.timeout(2.0):
        while sum(len(c.data) for c in chunks) < n:
            chunks += await transport.read()
    return chunks


def test_is_a_transport(dial: PtyDial) -> None:
    transport: Transport = transport_for(dial)
    assert transport.describe == f"serial:{dial.path}"
    by_usb = SerialTransport(FAST, Attachment(usb="2341:0043", serial_number="A1"))
    assert by_usb.describe == "serial:usb=2341:0043, serial_number=A1"


def test_receives_exact_bytes_stamped_right_after_the_write(dial: PtyDial) -> None:
    frames = [b"%d\r\n" % i for i in range(300)] + [bytes(range(256)) * 4]
    expected = b"".join(frames)

    async def main() -> None:
        transport = transport_for(dial)
        await transport.open()
        try:
            assert transport.device == dial.device  # the symlink resolved
            await dial.play(frames, rate_hz=2000)
            chunks = await read_bytes(transport, len(expected))
            assert b"".join(c.data for c in chunks) == expected
            stamps = [c.mono_ns for c in chunks]
            assert stamps == sorted(stamps)

            # Each stamp between the write and the chunk's arrival here; the best one near the write
            # (a wrong clock fails that; one late wake-up of a loaded machine does not).
            delays = []
            for _ in range(5):
                sent_ns = dial.write(b"1023\r\n")
                (chunk,) = await read_bytes(transport, 6)
                received_ns = time.monotonic_ns()
                assert chunk.data == b"1023\r\n"
                assert sent_ns <= chunk.mono_ns <= received_ns
                delays.append(chunk.mono_ns - sent_ns)
            assert min(delays) < 50_000_000, delays
        finally:
            await transport.close()

    run(main())


def test_settle_drops_what_arrived_while_the_board_rebooted(dial: PtyDial) -> None:
    async def main() -> None:
        transport = transport_for(dial, FAST.model_copy(update={"settle_s": 0.3}))
        opening = asyncio.create_task(transport.open())
        await asyncio.sleep(0.1)
        assert not opening.done()  # still settling
        dial.write(b"Arduino ready v2\r\n51")  # banner and a cut line
        await opening
        dial.write(b"2\r\n")
        try:
            chunks = await read_bytes(transport, 3)
            assert b"".join(c.data for c in chunks) == b"2\r\n"
        finally:
            await transport.close()

    run(main())


def test_line_settings_are_applied(dial: PtyDial) -> None:
    settings = FAST.model_copy(update={"baud": 57600, "bytesize": 7, "parity": "even", "stopbits": 2})

    async def main() -> tuple[list[Any], tuple[Any, ...]]:
        transport = transport_for(dial, settings)
        await transport.open()
        try:
            port = transport._serial
            assert port is not None
            asked = (port.baudrate, port.bytesize, port.parity, port.stopbits, port.exclusive)
            fd = os.open(dial.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                return termios.tcgetattr(fd), asked
            finally:
                os.close(fd)
        finally:
            await transport.close()

    (_, _, cflag, _, ispeed, ospeed, _), asked = run(main())
    assert asked == (57600, 7, serial.PARITY_EVEN, serial.STOPBITS_TWO, True)
    # What reached the tty: a pty keeps speed and stop bits but forces CS8 without parity.
    assert ispeed == ospeed == termios.B57600
    assert cflag & termios.CSTOPB


def test_init_string_is_sent_with_escapes_decoded(dial: PtyDial) -> None:
    async def main() -> None:
        transport = transport_for(dial, FAST.model_copy(update={"init": r"start\r\n\x02"}))
        await transport.open()
        try:
            assert dial.read() == b"start\r\n\x02"
        finally:
            await transport.close()

    run(main())


def test_decode_escapes() -> None:
    assert decode_escapes(r"a\tb\\n\0\x7F\xff") == b"a\tb\\n\0\x7f\xff"
    assert decode_escapes("unknown \\q stays, é is utf-8") == "unknown \\q stays, é is utf-8".encode()


def test_unplug_delivers_everything_read_then_device_gone(dial: PtyDial) -> None:
    sent = b"".join(b"%d\n" % i for i in range(100))

    async def main() -> None:
        transport = transport_for(dial)
        await transport.open()
        try:
            for i in range(0, len(sent), 7):
                dial.write(sent[i : i + 7])
            # Read by the reader (thread or process), not by us yet. Not dial.wait_consumed(): under
            # load the kernel's worker may not have moved the bytes to the port's queue yet, and
            # unplugging then drops them in the kernel, before any reader could see them.
            await until(lambda: transport.bytes_waiting >= len(sent), "the reader to have every byte")
            dial.unplug()
            got = b"".join(c.data for c in await read_bytes(transport, len(sent)))
            assert got == sent
            with pytest.raises(DeviceGone, match="unplugged"):
                await transport.read()
            with pytest.raises(DeviceGone):  # and stays gone
                await transport.read()
        finally:
            await transport.close()
            await transport.close()  # idempotent

    run(main())


@thread_only  # the read fails in this process; the reader process's reads are its own
def test_read_error_eio_is_device_gone(dial: PtyDial, monkeypatch: pytest.MonkeyPatch) -> None:
    """Older kernels (and some USB drivers) fail the read with EIO instead of returning b''."""
    real_read = os.read
    failing: set[int] = set()

    def read(fd: int, n: int) -> bytes:
        if fd in failing:
            raise OSError(errno.EIO, "Input/output error")
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read)  # only for the port's fd, see read()

    async def main() -> None:
        transport = transport_for(dial)
        await transport.open()
        try:
            dial.write(b"7\n")
            assert b"".join(c.data for c in await read_bytes(transport, 2)) == b"7\n"
            assert transport._serial is not None
            failing.add(transport._serial.fileno())
            dial.write(b"8\n")
            with pytest.raises(DeviceGone, match="Input/output error"):
                await transport.read()
        finally:
            await transport.close()

    run(main())


def test_replug_opens_again_at_the_same_path(dial: PtyDial) -> None:
    async def main() -> None:
        transport = transport_for(dial)
        await transport.open()
        dial.unplug()
        with pytest.raises(DeviceGone):
            await transport.read()
        await transport.close()
        with pytest.raises(DeviceUnavailable, match="not present"):
            await transport.open()

        dial.replug()
        await transport.open()
        try:
            assert transport.device == dial.device
            dial.write(b"42\n")
            assert b"".join(c.data for c in await read_bytes(transport, 3)) == b"42\n"
        finally:
            await transport.close()

    run(main())


def test_usb_attachment_is_resolved_again_at_every_open(dial: PtyDial, monkeypatch: pytest.MonkeyPatch) -> None:
    def comports() -> list[SimpleNamespace]:
        return [
            SimpleNamespace(
                device=dial.device, vid=0x2341, pid=0x0043, serial_number="A1", location="1-1.2:1.0", product="Uno"
            )
        ]

    monkeypatch.setattr(serial.tools.list_ports, "comports", comports)

    async def main() -> None:
        transport = SerialTransport(FAST, Attachment(usb="2341:0043"))
        seen = []
        for _ in range(2):
            await transport.open()
            seen.append(transport.device)
            try:
                assert transport.device == dial.device
                dial.write(b"5\n")
                assert b"".join(c.data for c in await read_bytes(transport, 2)) == b"5\n"
            finally:
                await transport.close()
            dial.replug()  # a new /dev/pts/N, as ttyACM0 -> ttyACM1
        assert seen[0] != seen[1]

    run(main())


def test_missing_port_is_unavailable_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "ttyACM9"
    dangling = tmp_path / "by-id-link"
    dangling.symlink_to(tmp_path / "gone")

    async def main() -> None:
        for path in (missing, dangling):
            transport = SerialTransport(FAST, Attachment(port=str(path)))
            with pytest.raises(DeviceUnavailable, match=f"{path}.* not present"):
                await transport.open()
            await transport.close()

    run(main())


def test_second_open_is_unavailable_in_use(dial: PtyDial) -> None:
    async def main() -> None:
        first = transport_for(dial)
        await first.open()
        try:
            with pytest.raises(DeviceUnavailable, match="in use by another program"):
                await transport_for(dial).open()
        finally:
            await first.close()
        second = transport_for(dial)  # free again
        await second.open()
        await second.close()

    run(main())


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (errno.EACCES, r"dialout group or install the udev rules: see `daq doctor`"),
        (errno.EBUSY, "in use by another program"),
        (errno.ENOENT, "not present"),
        (errno.EIO, "cannot open serial port"),
    ],
)
def test_open_errors_say_what_to_do(dial: PtyDial, monkeypatch: pytest.MonkeyPatch, code: int, message: str) -> None:
    # We run as root here, so a real EACCES cannot be provoked: fail pyserial's open() as the OS would.
    def refuse(self: serial.Serial) -> None:
        raise serial.SerialException(code, f"could not open port {self.port}: [Errno {code}] {os.strerror(code)}")

    monkeypatch.setattr(serial.Serial, "open", refuse)

    async def main() -> None:
        with pytest.raises(DeviceUnavailable, match=message) as caught:
            await transport_for(dial).open()
        assert str(dial.path) in str(caught.value)

    run(main())


def test_event_loop_is_never_blocked(dial: PtyDial, readers: ReadersMode, monkeypatch: pytest.MonkeyPatch) -> None:
    """The port is read off the loop's thread (in the reader process, or the reader thread): a read
    that blocks longer than its poll timeout holds nothing else up. A causal check (which thread
    read the port), not a bound on the loop's lag: that failed on loaded machines."""
    real_read = os.read
    port_fds: set[int] = set()
    read_on: set[int] = set()  # threads of this process that read the port

    def read(fd: int, n: int) -> bytes:
        if fd in port_fds:
            read_on.add(threading.get_ident())
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read)

    async def main() -> int:
        transport = transport_for(dial, FAST.model_copy(update={"settle_s": 0.2, "read_timeout_s": 1.0}))
        await transport.open()
        try:
            assert transport._serial is not None
            port_fds.add(transport._serial.fileno())
            waiting = asyncio.create_task(transport.read())
            await asyncio.sleep(0.5)  # the reader blocks in its thread, longer than its poll timeout
            assert not waiting.done()
            dial.write(b"9\n")
            assert b"".join(c.data for c in await waiting) == b"9\n"
        finally:
            await transport.close()
        return threading.get_ident()

    loop_thread = run(main())
    assert loop_thread not in read_on
    if readers == "thread":
        assert read_on, "the reader thread read the port through os.read"


def test_close_wakes_a_waiting_read_and_the_port_can_be_opened_again(dial: PtyDial) -> None:
    async def main() -> None:
        transport = transport_for(dial, FAST.model_copy(update={"read_timeout_s": 5.0}))
        await transport.open()
        waiting = asyncio.create_task(transport.read())
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await transport.close()
        assert time.monotonic() - started < 1.0  # woken, not waiting out the 5 s poll
        with pytest.raises(DeviceGone, match="closed"):
            await waiting
        # The shared reader let go of the port: it opens (exclusively) and reads again.
        await transport.open()
        try:
            dial.write(b"7\r\n")
            chunks = await read_bytes(transport, 3)
            assert b"".join(c.data for c in chunks) == b"7\r\n"
        finally:
            await transport.close()

    run(main())


def poller_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "serial readers"]


def readers_running() -> list[object]:
    """The poller threads and reader processes reading ports now (each mode has one or none)."""
    return [*poller_threads(), *reader_processes()]


def test_the_poller_thread_stops_when_its_last_port_closes(tmp_path: Path) -> None:
    """One poller thread (or reader process) for every open port; closing the last one ends it
    (joined by that close), and the next open starts a new one that reads as well."""

    async def main() -> None:
        with PtyDial(tmp_path, "a") as a, PtyDial(tmp_path, "b") as b:
            ta, tb = transport_for(a), transport_for(b)
            await asyncio.gather(ta.open(), tb.open())
            assert len(readers_running()) == 1
            await ta.close()
            b.write(b"1\r\n")
            assert b"".join(c.data for c in await read_bytes(tb, 3)) == b"1\r\n"  # still read
            assert len(readers_running()) == 1
            await tb.close()
            assert readers_running() == []  # gone as the last close returned, no grace needed
            await ta.open()
            try:
                assert len(readers_running()) == 1
                a.write(b"2\r\n")
                assert b"".join(c.data for c in await read_bytes(ta, 3)) == b"2\r\n"
            finally:
                await ta.close()
            assert readers_running() == []

    run(main())


def test_closing_ports_together_never_writes_to_a_closed_wake_pipe(tmp_path: Path) -> None:
    """Two ports closed at once, again and again: the poller may take the last port's remove (and close
    its wake pipe) before that close has written its wake byte unless both happen under one lock
    (it failed with EBADF at a station's stop)."""

    async def main() -> None:
        with PtyDial(tmp_path, "a") as a, PtyDial(tmp_path, "b") as b:
            for _ in range(60):
                ta, tb = transport_for(a), transport_for(b)
                await asyncio.gather(ta.open(), tb.open())
                await asyncio.gather(ta.close(), tb.close())  # raised OSError(EBADF) now and then
                assert readers_running() == []

    run(main())


@thread_only
def test_pyserial_read_fallback(dial: PtyDial, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path used off POSIX (no poll): pyserial's read(max(1, in_waiting)) in the thread."""
    monkeypatch.setattr(serial_transport, "USE_POLL", False)

    async def main() -> None:
        transport = transport_for(dial)
        await transport.open()
        try:
            delays = []
            for _ in range(3):  # the best of three near the write (one late wake-up is no failure)
                sent_ns = dial.write(b"300\r\n")
                chunks = await read_bytes(transport, 5)
                received_ns = time.monotonic_ns()
                assert b"".join(c.data for c in chunks) == b"300\r\n"
                assert sent_ns <= chunks[0].mono_ns <= received_ns
                delays.append(chunks[0].mono_ns - sent_ns)
            assert min(delays) < 50_000_000, delays
        finally:
            await transport.close()

    run(main())


def test_ptydial_paces_play_and_keeps_its_path(tmp_path: Path) -> None:
    with PtyDial(tmp_path, "by-id-dial") as dial:
        assert dial.path == tmp_path / "by-id-dial"
        assert os.path.realpath(dial.path) == dial.device
        before = time.monotonic_ns()  # at or before play's start
        times = run(dial.play([b"x"] * 20, rate_hz=200))
        assert len(times) == 20
        assert times == sorted(set(times))
        # Paced on its absolute schedule: no write before its time, frame k at start + k x 5 ms (one
        # made late by a loaded machine is the machine's; the next ones keep to the schedule).
        assert all(t - before >= k * 5_000_000 for k, t in enumerate(times)), times
        old = dial.device
        dial.replug()
        assert dial.device != old
        assert os.path.realpath(dial.path) == dial.device
        dial.unplug()
        assert not dial.plugged
        assert not dial.path.exists()
        with pytest.raises(OSError, match="unplugged"):
            dial.write(b"x")
    assert not dial.path.exists()
