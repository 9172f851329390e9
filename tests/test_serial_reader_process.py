"""The serial reader process (daq.transports.reader_process, reader_host) over real pseudo-terminals:
its wire format, stamps that do not wait for the daemon's interpreter, a reader process killed
mid-stream (nothing lost, the port never reset), ports that end alone, and the choice of mode."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

from daq.calibration import Calibrator, RawRange
from daq.config import Calibration, build_config
from daq.contract import Scale
from daq.exceptions import ConfigError, DeviceGone, DeviceUnavailable
from daq.mediaclock.session_clock import SessionClock
from daq.outbox.memory import MemoryOutbox
from daq.profiles.decode import make_decoder
from daq.profiles.loader import ProfileRegistry
from daq.profiles.serial_settings import SerialSettings
from daq.readclock import ReadClock
from daq.reading import Chunk
from daq.station.device_reader import DeviceReader
from daq.station.dial_pipeline import DialPipeline
from daq.station.session_state import SessionState
from daq.timecode import FrameRate
from daq.transports import reader_host
from daq.transports import reader_process as wire
from daq.transports.attachment import Attachment
from daq.transports.inbox import Inbox, Sink
from daq.transports.reader_host import ProcessHost, ProcessPort, ReaderDied, ReaderPriority, ReadersMode, readers_mode
from daq.transports.serial import SerialTransport
from tests.ptydial import PtyDial
from tests.support.polling import until
from tests.support.readers import reader_processes, wait_dead
from tests.support.transports import opened

T = TypeVar("T")
FAST = SerialSettings(baud=115200, read_timeout_s=0.2)


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def dial(tmp_path: Path) -> Iterator[PtyDial]:
    with PtyDial(tmp_path) as d:
        yield d


@pytest.fixture(autouse=True)
def no_restart_backoff() -> Iterator[None]:
    """Each test starts with no quick deaths counted (a killed process counts as one)."""
    ProcessHost._quick_deaths = 0
    yield
    ProcessHost._quick_deaths = 0


def transport_for(
    dial: PtyDial, readers: ReadersMode = "process", priority: ReaderPriority = "realtime"
) -> SerialTransport:
    with readers_mode(None, priority):
        return SerialTransport(FAST, Attachment(port=str(dial.path)), readers=readers)


def waiting(fd: int | socket.socket) -> int:
    """Bytes waiting to be read on a tty or a socket (FIONREAD, which is TIOCINQ on a tty)."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


def sent_its_round(pid: int, sock: socket.socket) -> bool:
    """The reader process waits in epoll again and bytes wait on `sock`: it sent what it read."""
    return Path(f"/proc/{pid}/wchan").read_text() == "do_epoll_wait" and waiting(sock) > 0


async def read_until(transport: SerialTransport, data: bytes, within_s: float = 3.0) -> list[Chunk]:
    chunks: list[Chunk] = []
    async with asyncio.timeout(within_s):
        while b"".join(c.data for c in chunks) != data:
            chunks += await transport.read()
            assert data.startswith(b"".join(c.data for c in chunks))
    return chunks


async def read_all(transport: SerialTransport) -> None:
    """Read until the transport ends (raises its DeviceGone)."""
    while True:
        await transport.read()


def test_wire_items_parse_whole_and_keep_a_cut_one() -> None:
    sent = wire.item(wire.CHUNK, 7, 123_456_789_012, b"512\r\n") + wire.item(wire.GONE, 8, 0, b"unplugged")
    sent += wire.item(wire.REMOVED, 9)
    buffer = bytearray(sent + wire.item(wire.CHUNK, 1, 5, b"cut here")[:-3])
    items, used = wire.parse(buffer)
    assert items == [
        (wire.CHUNK, 7, 123_456_789_012, b"512\r\n"),
        (wire.GONE, 8, 0, b"unplugged"),
        (wire.REMOVED, 9, 0, b""),
    ]
    assert used == len(sent)  # the cut item waits for its end
    assert wire.parse(bytearray(b"\x0a\x01"))[0] == []


def test_the_reader_process_imports_nothing_of_dialdaq() -> None:
    """It starts as a script with the standard library only: fast, and its interpreter does nothing else."""
    script = Path(wire.__file__)
    probe = (
        f"import runpy, sys; runpy.run_path({str(script)!r}); "
        "print(sorted(m for m in sys.modules if 'daq' in m or m in ('serial', 'pydantic')))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_killed_reader_process_loses_nothing_and_the_port_is_not_reopened(dial: PtyDial) -> None:
    """SIGKILL mid-stream: what it read was delivered, then ReaderDied; the port stays open (no settle,
    no dropped input, no init sent again), and a new process reads what was written meanwhile."""
    first = b"".join(b"%d\r\n" % i for i in range(50))
    meanwhile = b"".join(b"%d\r\n" % i for i in range(50, 100))
    settings = FAST.model_copy(update={"init": "go\\n"})

    async def main() -> None:
        transport = SerialTransport(settings, Attachment(port=str(dial.path)), readers="process")
        await transport.open()
        assert dial.read() == b"go\n"
        try:
            pid = transport.reader_pid
            assert pid is not None and [p.pid for p in reader_processes()] == [pid]
            dial.write(first)
            await read_until(transport, first)
            os.kill(pid, signal.SIGKILL)
            await asyncio.to_thread(wait_dead, pid)
            dial.write(meanwhile)  # nobody reads now: it waits in the tty
            with pytest.raises(DeviceGone, match="serial reader process was killed by SIGKILL"):
                await transport.read()
            port = transport._serial
            await transport.close()
            assert port is not None and port.is_open  # parked, not closed
            assert reader_processes() == []
            await transport.open()
            assert transport._serial is port
            assert dial.read(timeout=0.2) == b""  # not set up again: no init string
            new_pid = transport.reader_pid
            assert new_pid is not None and new_pid != pid
            chunks = await read_until(transport, meanwhile)
            assert all(c.mono_ns > 0 for c in chunks)
        finally:
            await transport.close()
        assert reader_processes() == []
        assert transport._parked is None

    run(main())


def test_bursts_bigger_than_a_receive_arrive_whole_and_in_order(tmp_path: Path) -> None:
    """8 ports x 64 KiB written at once: the reader's sends are cut across the daemon's receives."""
    blobs = [bytes((i * 7 + k) % 251 for k in range(65536)) for i in range(8)]

    async def main() -> None:
        dials = [PtyDial(tmp_path, f"d{i}") for i in range(8)]
        transports = [transport_for(d) for d in dials]
        try:
            async with opened(*transports):
                # Written from threads while the loop reads: a write blocks once the port's buffers are
                # full, and from the loop it would block the very reading that empties them (the
                # reader process waits for the loop to take what it sent; CI hung here once).
                writes = [asyncio.to_thread(d.write, blob) for d, blob in zip(dials, blobs, strict=True)]
                reads = [read_until(t, blob, within_s=20) for t, blob in zip(transports, blobs, strict=True)]
                got, _ = await asyncio.gather(asyncio.gather(*reads), asyncio.gather(*writes))
                for chunks in got:
                    stamps = [c.mono_ns for c in chunks]
                    assert stamps == sorted(stamps)
        finally:
            for dial in dials:
                dial.close()

    run(main())


def test_a_reader_process_death_ends_every_port_it_read(tmp_path: Path) -> None:
    async def main() -> None:
        with PtyDial(tmp_path, "a") as a, PtyDial(tmp_path, "b") as b:
            ta, tb = transport_for(a), transport_for(b)
            async with opened(ta, tb):
                pid = ta.reader_pid
                assert pid is not None and tb.reader_pid == pid  # one process reads both
                os.kill(pid, signal.SIGKILL)
                for transport in (ta, tb):
                    with pytest.raises(ReaderDied):
                        await read_all(transport)
            async with opened(ta, tb):
                assert ta.reader_pid == tb.reader_pid != pid
                a.write(b"1\n")
                b.write(b"2\n")
                await read_until(ta, b"1\n")
                await read_until(tb, b"2\n")

    run(main())


def test_a_tty_with_nothing_to_read_is_not_unplugged(tmp_path: Path) -> None:
    """pyserial sets VMIN = 0: a tty with nothing to read reads 0 bytes, not EAGAIN. An edge-triggered
    wake-up for bytes an earlier read took already then read 0 bytes, which the reader took for an
    unplug (a loaded machine, 8 ports x 64 KiB: 'device reports data but gives none: unplugged').
    Only a hang-up the poller reports makes 0 bytes an end."""
    with PtyDial(tmp_path) as dial:
        fd = os.open(dial.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~(termios.ICANON | termios.ECHO)
        attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 0, 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        ours, theirs = socket.socketpair()
        try:
            reader = wire.Reader(theirs)
            reader.ports[fd], reader.fd_of[1] = 1, fd
            reader.ttys.add(fd)
            reader.poller.add(fd)
            out = bytearray()
            reader._drain(fd, out)  # woken, but the bytes were taken: 0 bytes read
            assert out == b""
            dial.write(b"5\n")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not waiting(fd):  # the kernel's worker moves them in
                time.sleep(0.002)
            reader._drain(fd, out)
            assert wire.parse(out)[0][0][3] == b"5\n"
            out.clear()
            reader._drain(fd, out, select.POLLHUP)  # a hang-up: now 0 bytes are the end
            (gone,) = wire.parse(out)[0]
            assert gone[0] == wire.GONE and b"unplugged" in gone[3]
        finally:
            ours.close()
            theirs.close()
            with contextlib.suppress(OSError):
                os.close(fd)


def test_rounds_waiting_in_the_socket_when_a_send_finds_the_process_dead_are_handed_over(tmp_path: Path) -> None:
    """The reader process sent 50 lines, the loop (busy) has not read them, the process dies, and a
    port is attached before the loop reads the end of file: that send fails (EPIPE), and what waits
    in the socket still reaches the first port, then ReaderDied (it was closed unread, all lost)."""
    lines = b"".join(b"%d\n" % i for i in range(50))

    async def main() -> None:
        with PtyDial(tmp_path, "a") as a, PtyDial(tmp_path, "b") as b:
            ta = transport_for(a)
            await ta.open()
            try:
                pid, reader = ta.reader_pid, ta._reader
                assert pid is not None and isinstance(reader, ProcessPort)
                a.write(lines)
                # The loop blocked (no await) until the process has read everything and sent it: the
                # tty is empty and the process waits in epoll again, having sent its round.
                assert a.wait_consumed(5)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not sent_its_round(pid, reader.host._sock):
                    time.sleep(0.002)  # noqa: ASYNC251
                os.kill(pid, signal.SIGKILL)
                wait_dead(pid)
                fd = os.open(b.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
                try:
                    other = await ProcessHost.attach(fd, "serial:b", Inbox())  # its ADD meets the dead process
                    assert other.host is not reader.host and other.host.pid is not None
                    await other.stop()
                finally:
                    os.close(fd)
                assert b"".join(c.data for c in await ta.read()) == lines
                with pytest.raises(ReaderDied, match="killed by SIGKILL"):
                    await ta.read()
            finally:
                await ta.close()

    run(main())


def test_an_unplugged_port_ends_alone_and_the_process_reads_on(tmp_path: Path) -> None:
    async def main() -> None:
        with PtyDial(tmp_path, "a") as a, PtyDial(tmp_path, "b") as b:
            ta, tb = transport_for(a), transport_for(b)
            async with opened(ta, tb):
                a.write(b"5\n")
                await read_until(ta, b"5\n")
                a.unplug()
                with pytest.raises(DeviceGone, match="unplugged") as gone:
                    await ta.read()
                assert not isinstance(gone.value, ReaderDied)
                await ta.close()
                assert ta._parked is None  # a real unplug closes the port
                b.write(b"6\n")
                await read_until(tb, b"6\n")
                assert len(reader_processes()) == 1
            assert reader_processes() == []

    run(main())


def test_a_process_that_keeps_dying_is_restarted_with_a_wait(dial: PtyDial) -> None:
    async def main() -> float:
        transport = transport_for(dial)
        await transport.open()
        pid = transport.reader_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # within QUICK_DEATH_S of its start
        with pytest.raises(ReaderDied):
            await read_all(transport)
        await transport.close()
        assert ProcessHost._quick_deaths == 1
        started = time.monotonic()
        await transport.open()
        waited = time.monotonic() - started
        await transport.close()
        return waited

    assert run(main()) >= reader_host.RESTART_BACKOFF_S[0] - 0.01


class Handing(SerialTransport):
    """A serial transport that remembers every byte it handed over (read() or deliver_to())."""

    def __init__(self, dial: PtyDial) -> None:
        super().__init__(FAST, Attachment(port=str(dial.path)), readers="process")
        self.handed = bytearray()

    async def read(self) -> list[Chunk]:
        chunks = await super().read()
        for chunk in chunks:
            self.handed += chunk.data
        return chunks

    async def deliver_to(self, sink: Sink) -> NoReturn:
        def handing(chunks: list[Chunk]) -> None:
            for chunk in chunks:
                self.handed += chunk.data
            sink(chunks)

        await super().deliver_to(handing)


class Raws(DialPipeline):
    """A dial pipeline that remembers the raw value of every reading it was given."""

    raws: list[float]

    def on_value(self, raw: float, mono_ns: int, channel: str) -> dict[str, object] | None:
        self.raws.append(raw)
        return super().on_value(raw, mono_ns, channel)


def test_a_line_cut_by_the_reader_process_death_is_discarded_and_counted_never_spliced(dial: PtyDial) -> None:
    """The process is killed after it sent "100\n2": the port and its stream live on, but the dead
    process's last round may be missing (it read "50\n3" and died before sending it, say), so what
    comes next may not continue the "2" ("2" + "00" would be 200, or 2300 with the lost round).
    The "2" held and the end of its line after the death are one cut line, discarded and counted
    once (its event shows both); 300 reads on. The
    device is said lost and back, with word that the dead process's last unsent round, if any,
    cannot be counted."""
    profile = ProfileRegistry.load([]).get("teensy-fast").profile  # discard_first_line = true
    events: list[tuple[str, str]] = []
    connections: list[bool] = []
    inputs: list[object] = []  # what each event shows of the input

    def on_event(kind: str, dial_id: str | None, message: str, data: Mapping[str, object]) -> None:
        events.append((kind, message))
        inputs.append(data.get("input"))

    async def main() -> Raws:
        transport = Handing(dial)
        calibrator = Calibrator(Scale(min=0, max=1), Calibration(), RawRange(0, 4095))
        session = SessionState(SessionClock(FrameRate.parse("25")))
        pipe = Raws("lab-a", "p1", "b", "t", calibrator, ReadClock(), session, MemoryOutbox())
        pipe.raws = []
        reader = DeviceReader(
            transport,
            make_decoder(profile),  # as the daemon makes it: the first line after opening is dropped
            {"position": pipe},
            on_event,
            lambda dial_id, connected: connections.append(connected),
        )
        task = asyncio.create_task(reader.run())
        try:
            await until(lambda: transport.reader_pid is not None)
            pid = transport.reader_pid
            assert pid is not None
            dial.write(b"\n100\n2")
            await until(lambda: transport.handed.endswith(b"100\n2"))
            os.kill(pid, signal.SIGKILL)
            await asyncio.to_thread(wait_dead, pid)
            dial.write(b"00\n300\n")
            await until(lambda: len(pipe.raws) >= 2)
            await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return pipe

    pipe = run(main())
    assert pipe.raws == [100, 300]
    assert pipe.stats.extra.get("discarded", 0) == 1 and pipe.stats.garbage == 0
    (discarded,) = [message for kind, message in events if kind == "input.discarded"]
    assert "after a gap in the byte stream" in discarded and "200" in inputs  # head and tail, one item
    assert connections == [True, False, True]
    (lost,) = [message for kind, message in events if kind == "device.disconnected"]
    assert "killed by SIGKILL" in lost and "cannot be counted" in lost


@pytest.mark.parametrize("readers", ["process", "thread"])
def test_chunks_read_but_not_handed_over_at_close_are_counted(
    dial: PtyDial, readers: ReadersMode, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop is busy while the process reads and sends a line; then the port is closed, never
    read: what was read reaches the port's queue (the process host keeps the port until REMOVED;
    it dropped chunks that came after its stop()) and close() counts and logs it."""
    data = b"1\n2\n3\n"

    async def main() -> SerialTransport:
        transport = transport_for(dial, readers)
        await transport.open()
        dial.write(data)
        # The loop blocked until the reader has read the line: the tty's queue is empty
        # (asked on our own descriptor of it) and, from a process, its send waits on the host's socket; a
        # thread queues its callback right after its read (50 ms for that few microseconds' work).
        port, reader = transport._serial, transport._reader
        assert port is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and port.in_waiting:
            time.sleep(0.002)  # noqa: ASYNC251
        if isinstance(reader, ProcessPort):
            while time.monotonic() < deadline and not waiting(reader.host._sock):
                time.sleep(0.002)  # noqa: ASYNC251
        else:
            time.sleep(0.05)  # noqa: ASYNC251
        await transport.close()
        return transport

    with caplog.at_level(logging.WARNING, logger="daq.transports.serial"):
        transport = run(main())
    assert transport.read_at_close >= 1
    (said,) = [r.getMessage() for r in caplog.records if "read but not decoded" in r.getMessage()]
    match = re.search(r"closed with (\d+) chunks \((\d+) bytes\)", said)
    assert match is not None and (int(match[1]), int(match[2])) == (transport.read_at_close, len(data))


def test_a_process_that_dies_at_every_start_is_tried_again_not_given_up_for_threads(
    dial: PtyDial, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sends to a process that died at once: the port's open() raises DeviceUnavailable (the
    DeviceReader tries again later), the port stays parked, and the transport still uses a process."""

    def broken(self: ProcessHost, fd: int, describe: str, inbox: Inbox) -> Any:
        raise BrokenPipeError(32, "Broken pipe")

    async def main() -> None:
        transport = transport_for(dial)
        await transport.open()
        pid = transport.reader_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ReaderDied):
            await read_all(transport)
        await transport.close()
        port = transport._parked
        assert port is not None
        with monkeypatch.context() as patch:
            patch.setattr(ProcessHost, "add", broken)
            with pytest.raises(DeviceUnavailable, match="died at every start"):
                await transport.open()
        assert port.is_open and transport._parked is port and transport.readers == "process"
        ProcessHost._quick_deaths = 0
        await transport.open()
        try:
            assert transport._serial is port and transport.reader_pid is not None
            dial.write(b"7\n")
            await read_until(transport, b"7\n")
        finally:
            await transport.close()
        assert reader_processes() == []

    run(main())


def test_a_host_whose_first_add_fails_is_shut_down() -> None:
    """add() raising something other than a broken pipe (here: a bad descriptor) with no port
    attached: the process started for it is ended, not left running."""

    async def main() -> None:
        with pytest.raises(OSError):
            await ProcessHost.attach(-1, "serial:nothing", Inbox())
        assert ProcessHost._hosts.get(asyncio.get_running_loop()) is None
        assert reader_processes() == []

    run(main())


def test_a_clean_shutdown_clears_the_quick_deaths(dial: PtyDial) -> None:
    """Deaths counted before: a process ended cleanly (its last port closed) means the next start waits not."""

    async def main() -> float:
        transport = transport_for(dial)
        await transport.open()
        ProcessHost._quick_deaths = 4  # as after four quick deaths
        await transport.close()
        assert ProcessHost._quick_deaths == 0
        started = time.monotonic()
        await transport.open()
        waited = time.monotonic() - started
        await transport.close()
        return waited

    assert run(main()) < reader_host.RESTART_BACKOFF_S[0]


WRITER = """
import os, sys, time
fd, start_ns, count, period_ns = (int(x) for x in sys.argv[1:5])
times = []
for k in range(count):
    due = start_ns + k * period_ns
    while (left := due - time.monotonic_ns()) > 0:
        time.sleep(left / 1e9)
    times.append(time.monotonic_ns())
    os.write(fd, b"%d\\n" % k)
print(" ".join(map(str, times)))
"""


@pytest.mark.parametrize("readers", ["process", "thread"])
def test_stamps_do_not_wait_for_the_daemons_interpreter(dial: PtyDial, readers: ReadersMode) -> None:
    """Another process writes 30 lines at 100 Hz while the daemon's interpreter is held for 0.5 s
    (one C call that keeps the GIL). The reader process stamps each line as it comes, so the lines
    of the hold's first half are stamped before the hold ends; a reader thread can stamp only once
    the interpreter is free again, after it (why "process" is the default). Causal, not timed: the
    process's side fails only if the machine left the reader unscheduled for a quarter second."""
    hold_s = 0.5
    usleep = ctypes.PyDLL(None).usleep  # called with the GIL held, unlike ctypes.CDLL

    async def main() -> tuple[list[int], list[Chunk], int]:  # written, chunks, when the hold ended
        transport = transport_for(dial, readers)
        await transport.open()
        try:
            start_ns = time.monotonic_ns() + 200_000_000
            writer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WRITER,
                str(dial._master),
                str(start_ns),
                "30",
                "10000000",
                pass_fds=(dial._master,),
                stdout=subprocess.PIPE,
            )
            try:
                await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9 - 0.02))
                hold_start_ns = time.monotonic_ns()
                # The writer writes its lines in here. 0: the whole hold was slept, so the
                # interpreter was held until hold_start_ns + hold_s at least (not interrupted).
                assert usleep(int(hold_s * 1e6)) == 0
                out, _ = await asyncio.wait_for(writer.communicate(), 10)
            finally:
                if writer.returncode is None:
                    writer.kill()
                    await writer.wait()
            written = [int(t) for t in out.split()]
            expected = b"".join(b"%d\n" % k for k in range(30))
            return written, await read_until(transport, expected), hold_start_ns + int(hold_s * 1e9)
        finally:
            await transport.close()

    written, chunks, hold_end_ns = run(main())
    stamps = {}
    for chunk in chunks:
        for line in chunk.data.split(b"\n")[:-1]:
            stamps[int(line)] = chunk.mono_ns
    assert sorted(stamps) == list(range(30))
    assert all(stamps[k] > written[k] for k in stamps), "a line stamped before it was written"
    # The lines written in the hold's first half. Not those written before it (the loop can wake
    # past the 20 ms lead on a loaded machine, and a thread stamps those before the hold), nor in
    # its first 50 ms (between taking hold_start_ns and entering usleep the interpreter can still
    # pass to the reader thread once).
    hold_start_ns = hold_end_ns - int(hold_s * 1e9)
    first_half = [k for k in stamps if hold_start_ns + 50_000_000 <= written[k] < hold_end_ns - hold_s / 2 * 1e9]
    assert first_half, (written, hold_end_ns)  # the writer wrote in the hold, as meant (20 lines, unless late)
    if readers == "process":
        assert all(stamps[k] < hold_end_ns for k in first_half), (stamps, hold_end_ns)
    else:
        assert all(stamps[k] > hold_end_ns for k in first_half), (stamps, hold_end_ns)


def test_the_mode_where_a_process_cannot_run_is_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    assert reader_host.resolve_mode(None) == "process"
    with readers_mode("thread"):
        assert reader_host.current_mode() == "thread"
        with readers_mode(None):
            assert reader_host.current_mode() == "process"
    assert reader_host.current_mode() == "process"
    monkeypatch.setattr(reader_host, "process_supported", lambda: False)  # Windows
    assert reader_host.resolve_mode("process") == "thread"
    assert SerialTransport(FAST, Attachment(port="COM3"), readers="process").readers == "thread"


def test_the_config_key_chooses_the_mode() -> None:
    assert build_config({}).station.readers == "process"
    assert build_config({"station": {"readers": "thread"}}).station.readers == "thread"
    with pytest.raises(ConfigError, match=r"station\.readers"):
        build_config({"station": {"readers": "fork"}})
    assert build_config({}).station.reader_priority == "realtime"
    assert build_config({"station": {"reader_priority": "normal"}}).station.reader_priority == "normal"
    with pytest.raises(ConfigError, match=r"station\.reader_priority"):
        build_config({"station": {"reader_priority": "high"}})


def test_an_inbox_delivers_every_chunk_in_order_then_raises_the_end() -> None:
    """deliver_to: what waited is handed over at once, the rest as it is put (by the putting
    callback, no task woken), then the end; a chunk put after the end stays, unread."""

    async def main() -> None:
        inbox = Inbox()
        got: list[bytes] = []
        inbox.put(Chunk(b"1\n", 1))
        inbox.put(Chunk(b"2\n", 2))
        task = asyncio.create_task(inbox.deliver_to(lambda chunks: got.extend(c.data for c in chunks)))
        await asyncio.sleep(0)
        assert got == [b"1\n", b"2\n"]
        inbox.put(Chunk(b"3\n", 3))
        assert got == [b"1\n", b"2\n", b"3\n"]  # handed over by put() itself
        inbox.put(ReaderDied("serial:x: the reader process was killed"))
        inbox.put(Chunk(b"late\n", 4))
        with pytest.raises(ReaderDied, match="was killed"):
            await task
        assert isinstance(inbox.raised, ReaderDied)
        assert got == [b"1\n", b"2\n", b"3\n"]
        assert inbox.unread() == (1, 5)
        with pytest.raises(ReaderDied):  # and stays ended
            await inbox.read()

    run(main())


def sink_failing_at(bad: bytes, why: str, got: list[bytes]) -> Callable[[list[Chunk]], None]:
    """A sink that keeps each chunk's bytes in `got` and raises ValueError(`why`) at the chunk `bad`."""

    def sink(chunks: list[Chunk]) -> None:
        for chunk in chunks:
            if chunk.data == bad:
                raise ValueError(why)
            got.append(chunk.data)

    return sink


def test_an_inbox_sink_that_raises_ends_the_delivery_with_its_exception() -> None:
    """The sink's exception is raised in the task awaiting deliver_to (the DeviceReader, whose
    supervisor restarts it), not in the callback that put the chunk; what comes after is kept."""

    async def main() -> None:
        inbox = Inbox()
        got: list[bytes] = []
        task = asyncio.create_task(inbox.deliver_to(sink_failing_at(b"bad", "a bug in the decoder", got)))
        await asyncio.sleep(0)
        inbox.put(Chunk(b"ok", 1))
        inbox.put(Chunk(b"bad", 2))  # does not raise here
        inbox.put(Chunk(b"after", 3))
        with pytest.raises(ValueError, match="a bug in the decoder"):
            await task
        assert got == [b"ok"] and inbox.raised is None
        assert inbox.unread() == (1, 5)

    run(main())


def test_a_cancelled_delivery_hands_nothing_more_over() -> None:
    async def main() -> None:
        inbox = Inbox()
        got: list[Chunk] = []
        task = asyncio.create_task(inbox.deliver_to(got.extend))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        inbox.put(Chunk(b"1\n", 1))
        assert got == [] and inbox.unread() == (1, 2)
        task = asyncio.create_task(inbox.deliver_to(got.extend))  # a new taker may come
        await asyncio.sleep(0)
        inbox.put(Chunk(b"2\n", 2))
        inbox.close(DeviceGone("serial:x: closed"))
        with pytest.raises(DeviceGone, match="closed"):
            await task
        assert [c.data for c in got] == [b"2\n"]

    run(main())


def test_at_its_end_a_cancelled_delivery_hands_over_what_came_and_counts_what_its_sink_could_not_take() -> None:
    async def main() -> None:
        inbox = Inbox()
        got: list[bytes] = []
        task = asyncio.create_task(inbox.deliver_to(sink_failing_at(b"2\n", "a bug below the reader", got)))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for k in range(4):
            inbox.put(Chunk(b"%d\n" % k, k))
        assert got == []
        assert inbox.end("serial:x") == 2  # 0 and 1 handed over; 2 fails: it and 3 counted, not lost
        assert got == [b"0\n", b"1\n"]

    run(main())


@pytest.mark.parametrize("readers", ["process", "thread"])
def test_deliver_to_hands_over_everything_read_then_device_gone(dial: PtyDial, readers: ReadersMode) -> None:
    """The way the DeviceReader takes chunks: every byte written, in order, then the unplug."""
    sent = b"".join(b"%d\n" % i for i in range(100))

    async def main() -> None:
        transport = transport_for(dial, readers)
        await transport.open()
        got = bytearray()
        try:
            for i in range(0, len(sent), 7):
                dial.write(sent[i : i + 7])
            task = asyncio.create_task(
                transport.deliver_to(lambda chunks: got.extend(b"".join(c.data for c in chunks)))
            )
            await until(lambda: len(got) >= len(sent))
            dial.unplug()
            with pytest.raises(DeviceGone, match="unplugged"):
                await task
            assert bytes(got) == sent
        finally:
            await transport.close()

    run(main())


def slice_of(pid: int) -> int | None:
    """The task's time slice in ns (/proc/PID/sched `se.slice`, Linux 6.6+), None where not shown."""
    sched = Path(f"/proc/{pid}/sched")
    lines = sched.read_text().splitlines() if sched.exists() else []
    slices = [int(line.split(":")[1]) for line in lines if line.startswith("se.slice")]
    return slices[0] if slices else None


def test_the_reader_process_asks_for_the_shortest_slice(dial: PtyDial) -> None:
    """Where the kernel takes a slice of a SCHED_OTHER task (Linux 6.12+, no privileges needed: asked
    in a throwaway interpreter), the reader process runs with SLICE_NS; elsewhere nothing changes."""
    probe = f"import runpy; print(runpy.run_path({str(Path(wire.__file__))!r})['short_slice']())"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=30)
    taken = out.stdout.strip() == "True"

    async def main() -> int | None:
        transport = transport_for(dial, priority="normal")  # real-time, its slice would not matter
        await transport.open()
        try:
            dial.write(b"1\n")
            await read_until(transport, b"1\n")  # it has read: it is past its start
            pid = transport.reader_pid
            assert pid is not None
            return slice_of(pid)
        finally:
            await transport.close()

    got = run(main())
    assert (got == wire.SLICE_NS) == taken  # not taken: the kernel's own slice, or none shown


def reader_policy(dial: PtyDial, priority: ReaderPriority) -> tuple[int, int]:
    """The reader process's scheduling policy and priority, once it has read."""

    async def main() -> tuple[int, int]:
        transport = transport_for(dial, priority=priority)
        await transport.open()
        try:
            dial.write(b"1\n")
            await read_until(transport, b"1\n")
            pid = transport.reader_pid
            assert pid is not None
            return os.sched_getscheduler(pid), os.sched_getparam(pid).sched_priority
        finally:
            await transport.close()

    return run(main())


def test_the_reader_process_runs_real_time_where_permitted(
    dial: PtyDial, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reader_priority = "realtime"` (the default): SCHED_FIFO where the daemon may give it, and the
    log says which it got; where it may not, normal priority and a line saying how to grant it."""
    monkeypatch.setattr(ProcessHost, "_priority_told", False)
    permitted = reader_host.realtime_permitted()  # asked for a throwaway child
    with caplog.at_level(logging.INFO, logger="daq.transports.reader_host"):
        policy, priority = reader_policy(dial, "realtime")
    if permitted is not None:
        assert (policy, priority) == (os.SCHED_FIFO, permitted)
        assert f"reader process (serial and hidraw dials) at real-time priority (SCHED_FIFO {permitted})" in caplog.text
    else:
        assert policy == os.SCHED_OTHER
        assert "real-time (SCHED_FIFO) is not permitted" in caplog.text


def test_normal_priority_leaves_the_reader_process_at_normal(dial: PtyDial) -> None:
    assert reader_policy(dial, "normal")[0] == os.SCHED_OTHER


def test_an_unprivileged_user_gets_no_real_time_and_no_error() -> None:
    """Without CAP_SYS_NICE and with no rtprio limit, realtime() is refused quietly (None); with a
    limit below RT_PRIORITY it takes the limit. As root, the probe runs as nobody with no capabilities."""
    import resource

    probe = f"import runpy; print(runpy.run_path({str(Path(wire.__file__))!r})['realtime']())"
    cmd = [sys.executable, "-I", "-S", "-c", probe]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", *cmd]
    limit = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("None" if limit == 0 else str(min(limit, wire.RT_PRIORITY)))
