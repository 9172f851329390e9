"""Linux input devices (/dev/input/event*) through python-evdev: the optional `evdev` extra.

The Surface Dial, and the PowerMate once the kernel's `powermate` driver has it, are input
devices: the kernel decodes them into events (REL_DIAL, BTN_0). One thread per device
polls the device's fd (and a wake pipe, so close() ends it at once), reads every pending
event as soon as there is one, and hands the events to the loop as chunks (8-byte '<HHi'
records: type, code, value; see daq.profiles.framing_input) with call_soon_threadsafe, into the
device's Inbox (daq.transports.inbox), taken with `read()` or `deliver_to(sink)`. Right after
opening, a first chunk carries the range (absinfo) of each absolute axis the profile reads.
ENODEV on read is an unplug: DeviceGone, after the chunks read before it. Chunks read but not
handed over at `close()` are counted in `read_at_close` and logged.

Read times are the kernel's: on opening, EVIOCSCLOCKID asks for CLOCK_MONOTONIC event times
(the default is CLOCK_REALTIME, which jumps with the wall clock), and each chunk is stamped with
its events' time, taken by the kernel in the input interrupt path when the frame was reported
(every event of one SYN_REPORT frame has the same time; a read that returns several frames
gives one chunk per frame). So the stamp waits for nothing in this process: not for the reader
thread to be scheduled, nor for the GIL. Where the ioctl fails (a kernel before 3.4), the
events' CLOCK_REALTIME times are moved onto the monotonic clock by the wall-minus-monotonic
offset measured at that read (a wall-clock step between the event and its read, microseconds
apart, would shift that one stamp). A stamp is never later than the read itself
(min(event time, read time)). So an evdev dial's `stamp` (in its `meta`) is always "kernel".

Which device: the station's `port`, a path (best /dev/input/by-id/...-event-...) or, not
starting with '/', a substring of the device's name ('Surface Dial'); else the `usb` id (or
the profile's [match] ids and names), narrowed by `serial_number` (the device's uniq) and
`location`. Only devices that send every event the profile reads are candidates: a dial
with several event nodes is found by the one that carries its dial.

`grab = true` in the profile's [framing] opens it exclusively (EVIOCGRAB): the desktop no
longer sees its events.

SYN_DROPPED (the kernel's buffer for this reader overflowed) loses events: the decoder discards
the frame it cut, counted. As the kernel's documentation asks, the reader then queries the
device's state once that frame ends (SYN_REPORT): the keys only buttons read
(daq.profiles.framing_input.button_keys), with EVIOCGKEY (`active_keys()`), follow as a frame
of their states, stamped when asked. A button whose release was lost is released then (a button's
event comes only when its state changes, so a key still held says nothing). The kernel drops all
of this reader's queued key events when it answers (its state includes them), so the reader
first reads what is queued (up to DRAIN_READS reads); key events that come between that read and
the query are gone as events: a button's state is what the query reports (a click there is
lost), and a key a channel reads would lose its step uncounted (no bundled profile reads a key
with a channel). Lost relative steps stay lost; an absolute axis says its position again when
it moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import glob
import importlib
import logging
import os
import select
import struct
import sys
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

from daq.exceptions import DeviceGone, DeviceUnavailable, FatalError, MissingExtraError
from daq.profiles.framing_input import SYN_DROPPED, SYN_REPORT, button_keys, pack_absinfo, pack_events
from daq.profiles.input_codes import EV_KEY, EV_SYN, event_name, parse_event
from daq.profiles.model_framings import EvdevFraming
from daq.reading import Chunk
from daq.transports import hid_enum
from daq.transports.attachment import Attachment
from daq.transports.inbox import Inbox, Sink, taking_from

if TYPE_CHECKING:
    from daq.profiles.model import Profile

log = logging.getLogger(__name__)

DRAIN_READS = 16  # reads of what is queued before the key state is asked (_EvdevReader._restore_keys)

INPUT_DIR = "/dev/input"  # tests point it elsewhere
JOIN_TIMEOUT_S = 5.0
GONE = {errno.ENODEV, errno.ENOENT, errno.ENXIO, errno.EIO}
EVIOCSCLOCKID = 0x400445A0  # _IOW('E', 0xa0, int): the clock of this handle's event times


def import_evdev(needed_by: str) -> ModuleType:
    """python-evdev, or MissingExtraError naming the extra (FatalError off Linux)."""
    if not sys.platform.startswith("linux"):
        raise FatalError(f"{needed_by} reads a Linux input device (evdev): on macOS and Windows use a HID profile")
    try:
        return importlib.import_module("evdev")
    except ImportError:
        raise MissingExtraError("evdev", "evdev", needed_by) from None


@dataclass(frozen=True, slots=True)
class InputInfo:
    """One input device node as discovery sees it (plain data: `daq devices` prints it)."""

    path: str
    name: str
    vid: int
    pid: int
    uniq: str | None = None
    phys: str | None = None
    usb_interface: str | None = None

    @property
    def usb(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"

    @property
    def location(self) -> str | None:
        return self.usb_interface.split(":")[0] if self.usb_interface else None

    def describe(self) -> str:
        parts = [self.path, f"{self.name!r}", f"usb={self.usb}"]
        if self.uniq:
            parts.append(f"serial_number={self.uniq}")
        if self.location:
            parts.append(f"location={self.location}")
        return " ".join(parts)


def info_of(device: Any) -> InputInfo:
    """What an open evdev.InputDevice says about itself."""
    path = str(device.path)
    sys_dev = hid_enum.SYS / "class" / "input" / os.path.basename(path) / "device"
    return InputInfo(
        path=path,
        name=str(device.name or ""),
        vid=int(device.info.vendor),
        pid=int(device.info.product),
        uniq=device.uniq or None,
        phys=device.phys or None,
        usb_interface=hid_enum.usb_interface_of(sys_dev),
    )


def capability_codes(device: Any) -> tuple[set[tuple[int, int]], dict[int, tuple[int, int]]]:
    """The (type, code) events a device can send, and each absolute axis's (min, max)."""
    codes: set[tuple[int, int]] = set()
    ranges: dict[int, tuple[int, int]] = {}
    for ev_type, entries in device.capabilities(absinfo=True).items():
        for entry in entries:
            if isinstance(entry, tuple):  # EV_ABS: (code, AbsInfo)
                code, absinfo = entry
                ranges[int(code)] = (int(absinfo.min), int(absinfo.max))
            else:
                code = entry
            codes.add((int(ev_type), int(code)))
    return codes, ranges


def list_input_devices(evdev: ModuleType) -> list[InputInfo]:
    """The input devices this user can open, sorted by path (`daq devices`)."""
    found = []
    for path in sorted(evdev.list_devices(INPUT_DIR)):
        try:
            device = evdev.InputDevice(path)
        except OSError:
            continue
        try:
            found.append(info_of(device))
        finally:
            device.close()
    return found


def all_nodes() -> list[str]:
    """The input device nodes present (/dev/input/event*), whoever may open them."""
    return sorted(glob.glob(f"{INPUT_DIR}/event*"))


def unreadable_nodes() -> list[str]:
    """Input device nodes present but not readable and writable by this user."""
    return [p for p in all_nodes() if not hid_enum.can_open(p)]


class EvdevTransport:
    """A dial read as a Linux input device. Reusable: after close() (or DeviceGone) open() finds it again."""

    def __init__(
        self,
        attachment: Attachment,
        framing: EvdevFraming,
        *,
        ids: Collection[tuple[int, int]] = (),
        products: Collection[str] = (),
        buttons: Collection[int] = (),
        needed_by: str = "an evdev profile",
    ) -> None:
        self.attachment = attachment
        self._buttons = sorted(buttons)  # EV_KEY codes only buttons read: asked for after SYN_DROPPED
        self._evdev = import_evdev(needed_by)
        self._wanted = {parse_event(e) for e in framing.events.values()}
        self._grab = framing.grab
        self._ids = frozenset(ids)
        self._products = tuple(products)
        if not attachment.port and attachment.vid_pid is None and not self._ids and not self._products:
            raise FatalError(
                f"{needed_by} has no [match] to find the device by, so the dial needs `port` (a path such as "
                "/dev/input/by-id/...-event-joystick, or a part of the device's name) or `usb` = 'VID:PID'"
            )
        self._device: Any = None
        self._reader: _EvdevReader | None = None
        self._inbox: Inbox | None = None  # where the reader thread puts the chunks, while open
        self.read_at_close = 0  # chunks read but not handed over when it was closed
        self.info: InputInfo | None = None

    @property
    def describe(self) -> str:
        return "evdev:" + describe_wanted(self.attachment, self._ids, self._products)

    stamp = "kernel"  # read times are the events' own (the dial's `meta` says so)

    async def open(self) -> None:
        """Find the device, open (and grab) it, start reading. Raises DeviceUnavailable."""
        if self._device is not None:
            raise RuntimeError(f"{self.describe} is open already")
        device, ranges, monotonic = await asyncio.to_thread(self._open_device)
        self._device = device
        self.info = info_of(device)
        self._inbox = inbox = Inbox()
        first = b"".join(pack_absinfo(code, lo, hi) for code, (lo, hi) in sorted(ranges.items()))
        if first:
            inbox.put(Chunk(first, time.monotonic_ns()))
        self._reader = _EvdevReader(device, self.describe, inbox, monotonic, self._buttons)
        log.info("opened %s at %s (%r)", self.describe, device.path, device.name)

    async def read(self) -> list[Chunk]:
        """The events read since the last call (waiting for some); DeviceGone after the last."""
        return await self._open_inbox().read()

    async def deliver_to(self, sink: Sink) -> NoReturn:
        """Hand every chunk to `sink` as it arrives, from the event loop's callback that received it
        (daq.transports.inbox), until the device is gone: then raise DeviceGone, as `read()` would."""
        await self._open_inbox().deliver_to(sink)

    def _open_inbox(self) -> Inbox:
        return taking_from(self._inbox, None, self.describe)

    async def close(self) -> None:
        """Stop the reader thread, release the grab, close the device. Idempotent."""
        device, reader, inbox = self._device, self._reader, self._inbox
        self._device = self._reader = self._inbox = None
        try:
            if reader is not None:
                await reader.stop()
            if device is not None:
                await asyncio.to_thread(_release, device, self._grab)
        finally:
            if inbox is not None:
                self.read_at_close += inbox.end(self.describe)  # counts what is left, wakes a read()

    def _open_device(self) -> tuple[Any, dict[int, tuple[int, int]], bool]:
        """In a worker thread: find and open the device, grab it if the profile says so, and ask for
        CLOCK_MONOTONIC event times (whether the kernel switched is the last of the three)."""
        device, ranges = find_input(self._evdev, self.attachment, self._wanted, self._ids, self._products)
        if self._grab:
            try:
                device.grab()
            except OSError as exc:
                device.close()
                raise DeviceUnavailable(
                    f"cannot grab {device.path} ({device.name!r}): another program holds it exclusively "
                    f"(a second daq?): {exc.strerror or exc}"
                ) from None
        return device, ranges, use_monotonic_clock(device.fd, self.describe)


def use_monotonic_clock(fd: int, describe: str) -> bool:
    """Ask the kernel for CLOCK_MONOTONIC event times on this handle (EVIOCSCLOCKID); whether it did."""
    import fcntl  # POSIX only, as evdev is

    try:
        fcntl.ioctl(fd, EVIOCSCLOCKID, struct.pack("i", time.CLOCK_MONOTONIC))
    except OSError as exc:
        log.warning("%s: the kernel keeps CLOCK_REALTIME event times (%s): converted at each read", describe, exc)
        return False
    return True


Ranges = dict[int, tuple[int, int]]


def find_input(
    evdev: ModuleType,
    attachment: Attachment,
    wanted: Collection[tuple[int, int]],
    ids: Collection[tuple[int, int]] = (),
    products: Collection[str] = (),
) -> tuple[Any, Ranges]:
    """The one input device meant, opened, with its axes' ranges. Raises DeviceUnavailable.

    `port` a path: that node (it must send `wanted`). Otherwise every node this user can open
    that sends all of `wanted` and fits the attachment (or, without usb and port, `ids` and
    `products`), which must be exactly one.
    """
    port = attachment.port
    if port and port.startswith("/"):
        try:
            device = evdev.InputDevice(port)
        except OSError as exc:
            raise DeviceUnavailable(_open_problem(port, exc)) from None
        codes, ranges = capability_codes(device)
        missing = set(wanted) - codes
        if missing:
            device.close()
            names = ", ".join(sorted(event_name(*c) for c in missing))
            raise DeviceUnavailable(
                f"{port} ({device.name!r}) does not send {names}: is it the right event node? "
                "`daq devices` lists input devices"
            )
        return device, ranges
    hits: list[tuple[Any, Ranges]] = []
    seen: list[InputInfo] = []
    for path in sorted(evdev.list_devices(INPUT_DIR)):
        try:
            device = evdev.InputDevice(path)
        except OSError:
            continue
        info = info_of(device)
        seen.append(info)
        codes, ranges = capability_codes(device)
        if set(wanted) <= codes and input_matches(info, attachment, ids, products):
            hits.append((device, ranges))
        else:
            device.close()
    if len(hits) == 1:
        return hits[0]
    for device, _ in hits:
        device.close()
    looked_for = describe_wanted(attachment, ids, products)
    if hits:
        listed = "; ".join(info_of(d).describe() for d, _ in hits)
        raise DeviceUnavailable(
            f"{len(hits)} input devices match {looked_for}: set `port` to one of them "
            f"(/dev/input/by-id/... survives replugging) or add serial_number/location ({listed})"
        )
    shown = "; ".join(i.describe() for i in seen[:8]) or "none"
    hidden = unreadable_nodes()
    hint = (
        f" {len(hidden)} input devices are not readable by you: install the udev rules "
        "(`daq devices --udev-rules uaccess`; `daq doctor` says how)."
        if hidden
        else ""
    )
    raise DeviceUnavailable(
        f"no input device matches {looked_for} sending {', '.join(sorted(event_name(*c) for c in wanted))}: "
        f"is the dial plugged in (or paired)?{hint} Present: {shown}"
    )


def describe_wanted(attachment: Attachment, ids: Collection[tuple[int, int]], products: Collection[str]) -> str:
    if not attachment.is_empty:
        return attachment.port or attachment.describe()
    return ", ".join([f"{v:04x}:{p:04x}" for v, p in sorted(ids)] + [repr(p) for p in products])


def input_matches(
    info: InputInfo, attachment: Attachment, ids: Collection[tuple[int, int]], products: Collection[str]
) -> bool:
    """Whether `info` is the device the attachment (or, without usb and port, the profile) names."""
    att = attachment
    if att.port and att.port.casefold() not in info.name.casefold():
        return False
    if att.vid_pid is not None:
        if (info.vid, info.pid) != att.vid_pid:
            return False
    elif not att.port:
        if ids and (info.vid, info.pid) not in ids:
            return False
        wanted = [p.casefold() for p in products]
        if wanted and not any(w in info.name.casefold() for w in wanted):
            return False
    if att.serial_number is not None and (info.uniq or "").casefold() != att.serial_number.casefold():
        return False
    return att.location is None or att.location in (info.location, info.usb_interface)


def _open_problem(path: str, exc: OSError) -> str:
    if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return f"input device {path} not present: is the dial plugged in (or paired)?"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"no permission to open {path}: install the udev rules (`daq devices --udev-rules uaccess`) or "
            "add this user to the group that owns it; `daq doctor` says how"
        )
    return f"cannot open input device {path}: {exc.strerror or exc}"


def _release(device: Any, grabbed: bool) -> None:
    if grabbed:
        with contextlib.suppress(OSError):  # gone already: the kernel dropped the grab with it
            device.ungrab()
    with contextlib.suppress(OSError):
        device.close()


class _EvdevReader:
    """The thread that polls one input device and puts its events in the inbox, in the event loop
    (made there; started when made)."""

    def __init__(self, device: Any, describe: str, inbox: Inbox, monotonic: bool, keys: list[int]) -> None:
        self._device = device
        self._keys = keys  # the EV_KEY codes only buttons read: their state is asked for after SYN_DROPPED
        self._dropped = False  # a SYN_DROPPED was read and its frame has not ended yet
        self._resync = False  # a cut frame ended: the keys' state is due
        self._describe = describe
        self._monotonic = monotonic  # the events' times are CLOCK_MONOTONIC (else CLOCK_REALTIME)
        self._inbox = inbox
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"reader {describe}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        os.write(self._wake[1], b"x")
        await asyncio.to_thread(self._thread.join, JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("%s: reader thread did not stop within %.0f s", self._describe, JOIN_TIMEOUT_S)
        else:
            os.close(self._wake[0])
            os.close(self._wake[1])

    def _run(self) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody is left to read
            self._read_loop()

    def _read_loop(self) -> None:
        device, stop = self._device, self._stop
        poller = select.poll()
        poller.register(device.fd, select.POLLIN | select.POLLPRI)
        poller.register(self._wake[0], select.POLLIN)
        while not stop.is_set():
            if not poller.poll() or stop.is_set():
                continue
            if self._read_some() and self._resync and not self._dropped:
                self._restore_keys()

    def _read_some(self) -> bool:
        """Read what the device has and hand it over; False once it is gone (said) or has nothing."""
        try:
            events = list(self._device.read())
        except BlockingIOError:
            return False
        except OSError as exc:
            if not self._stop.is_set():
                why = "unplugged" if exc.errno in GONE else "read failed"
                self._to_loop(DeviceGone(f"{self._describe}: {why}: {exc.strerror or exc}"))
            self._stop.set()
            return False
        read_ns = time.monotonic_ns()
        if not events:
            return False
        to_mono_ns = 0 if self._monotonic else read_ns - time.time_ns()
        for chunk in kernel_stamped(events, read_ns, to_mono_ns):
            self._to_loop(chunk)
        if self._keys:
            self._note_drops(events)
        return True

    def _to_loop(self, item: Chunk | DeviceGone) -> None:
        self._loop.call_soon_threadsafe(self._inbox.put, item)  # RuntimeError once the loop closed

    def _note_drops(self, events: list[Any]) -> None:
        """Follow SYN_DROPPED through `events`: `_resync` once the frame it cut has ended."""
        for e in events:
            if e.type == EV_SYN:
                if e.code == SYN_DROPPED:
                    self._dropped = True
                elif e.code == SYN_REPORT and self._dropped:
                    self._dropped, self._resync = False, True

    def _restore_keys(self) -> None:
        """The buttons' keys as the device has them now (EVIOCGKEY), handed over as a frame of
        (EV_KEY, code, 0 or 1), stamped when asked. The kernel drops this reader's queued key events
        when it answers, so what is queued is read first (and a drop in it waits for its frame's end)."""
        for _ in range(DRAIN_READS):  # a device that never pauses still gets its state asked
            if not self._read_some():
                break
            if self._dropped:
                return  # another cut frame: its end asks again
        if self._stop.is_set() or self._dropped:
            return  # gone, or inside another cut frame (its end asks)
        self._resync = False
        try:
            down = set(self._device.active_keys())
        except OSError:  # gone: the next read says so
            return
        asked_ns = time.monotonic_ns()
        frame = [(EV_KEY, code, int(code in down)) for code in self._keys] + [(EV_SYN, SYN_REPORT, 0)]
        self._to_loop(Chunk(pack_events(frame), asked_ns))


def kernel_stamped(events: list[Any], read_ns: int, to_mono_ns: int = 0) -> list[Chunk]:
    """Events as read, one chunk per event time (one per SYN_REPORT frame), each stamped with that time
    plus `to_mono_ns` (0 for CLOCK_MONOTONIC event times), and never later than `read_ns`."""
    chunks: list[Chunk] = []
    frame: list[tuple[int, int, int]] = []
    frame_ns = -1
    for e in events:
        ns = e.sec * 1_000_000_000 + e.usec * 1000 + to_mono_ns
        if ns != frame_ns and frame:
            chunks.append(Chunk(pack_events(frame), min(frame_ns, read_ns)))
            frame = []
        frame_ns = ns
        frame.append((e.type, e.code, e.value))
    chunks.append(Chunk(pack_events(frame), min(frame_ns, read_ns)))
    return chunks


def by_id_links(folder: Path | None = None) -> dict[str, str]:
    """Real event node -> its /dev/input/by-id link (empty when udev made none)."""
    links: dict[str, str] = {}
    try:
        entries = sorted((folder or Path(INPUT_DIR) / "by-id").iterdir())
    except OSError:
        return links
    for entry in entries:
        if "-event-" in entry.name:
            links.setdefault(os.path.realpath(entry), str(entry))
    return links


def open_evdev(profile: Profile, attachment: Attachment) -> EvdevTransport:
    """The evdev transport of `profile` (its registry entry's `open`, daq.transports.registry)."""
    assert isinstance(profile.framing, EvdevFraming)  # the transport registry pairs them
    return EvdevTransport(
        attachment,
        profile.framing,
        ids=profile.match.usb_ids(),
        products=profile.match.product,
        buttons=button_keys(profile),
        needed_by=f"profile {profile.id}",
    )
