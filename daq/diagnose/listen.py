"""`daq doctor --listen S`: open each ready dial for S seconds, decode what it sends, say what came.

Per dial, added to its doctor report (daq.diagnose.doctor.DialReport) as findings: what was read
(`listen`, `input`), the readings of its channel with their raw and calibrated range
(`readings`), the garbage with its reasons and the last undecodable input, as text where it is
printable (`garbage`), the lines dropped on purpose (`discarded`, `ignored`), and the button
events (`buttons`). A dial whose input never decodes fails; one that sent nothing is a warning
(a dial that sends only when it moves is quiet at rest). Dials on one device are listened to
together, every device at once, so the whole listen takes S seconds (plus each port's settle_s).
"""

from __future__ import annotations

import asyncio
import shlex
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from daq.calibration import Calibrator
from daq.config import DaqConfig, DialConfig
from daq.diagnose.capture import deadline_event, read_until
from daq.diagnose.doctor import DialReport, Level
from daq.exceptions import DeviceUnavailable, FatalError, ProfileError
from daq.profiles.decode import make_decoder
from daq.profiles.input_text import expectation, printable_text, shown
from daq.profiles.loader import LoadedProfile, ProfileRegistry
from daq.reading import ButtonEvent, Chunk, Discarded, Garbage, Reading
from daq.station.profiled_dials import raw_range, resolve_profile
from daq.transports import make_transport, port_check

OPEN_TIMEOUT_S = 15.0  # settle_s included


@dataclass
class ChannelTally:
    count: int = 0
    raw_lo: float = 0.0
    raw_hi: float = 0.0
    value_lo: float = 0.0
    value_hi: float = 0.0
    last_raw: float = 0.0
    last_value: float = 0.0

    def add(self, raw: float, value: float) -> None:
        if self.count == 0:
            self.raw_lo = self.raw_hi = raw
            self.value_lo = self.value_hi = value
        self.count += 1
        self.raw_lo, self.raw_hi = min(self.raw_lo, raw), max(self.raw_hi, raw)
        self.value_lo, self.value_hi = min(self.value_lo, value), max(self.value_hi, value)
        self.last_raw, self.last_value = raw, value


@dataclass
class DeviceTally:
    """What one device sent while listened to."""

    describe: str = ""
    reads: int = 0
    bytes: int = 0
    channels: dict[str, ChannelTally] = field(default_factory=dict)
    garbage: Counter[str] = field(default_factory=Counter)
    last_garbage: Garbage | None = None
    presses: Counter[str] = field(default_factory=Counter)
    releases: Counter[str] = field(default_factory=Counter)
    gone: str | None = None
    discarded: int = 0  # lines the profile drops on purpose (discard_first_line)

    @property
    def decoded(self) -> bool:
        return any(c.count for c in self.channels.values()) or bool(self.presses or self.releases)


async def listen(
    config: DaqConfig, reports: list[DialReport], seconds: float, on_open: Callable[[str], None] | None = None
) -> None:
    """Listen to every dial whose report is ready, adding what came to its report. `on_open(describe)`
    is called as each device starts being read: after its port's settle_s, whose input is dropped
    (`daq doctor` prints it, so the user turns the dial then)."""
    registry = ProfileRegistry.load(config.profile_dirs)
    groups: dict[tuple[str, str], tuple[LoadedProfile, list[tuple[DialConfig, DialReport]]]] = {}
    for dial, report in zip(config.dials, reports, strict=True):
        if dial.simulate is not None:
            continue
        if not report.ready:
            report.add("skip", "listen", "not listened to: fix what FAILed above first")
            continue
        assert dial.profile is not None
        try:
            loaded = resolve_profile(registry, dial.profile)
        except ProfileError:
            continue  # the report says so already
        key = (loaded.id, dial.attachment.model_dump_json())
        groups.setdefault(key, (loaded, []))[1].append((dial, report))
    await asyncio.gather(*(_listen_device(loaded, members, seconds, on_open) for loaded, members in groups.values()))


async def _listen_device(
    loaded: LoadedProfile,
    members: list[tuple[DialConfig, DialReport]],
    seconds: float,
    on_open: Callable[[str], None] | None,
) -> None:
    profile = loaded.profile
    reports = [r for _, r in members]
    try:
        transport = make_transport(profile, members[0][0].attachment)
    except FatalError as exc:
        _add_all(reports, "fail", "listen", str(exc))
        return
    tally = DeviceTally(transport.describe)
    try:
        await asyncio.wait_for(transport.open(), OPEN_TIMEOUT_S)
    except (DeviceUnavailable, TimeoutError) as exc:
        why = str(exc) or f"did not open within {OPEN_TIMEOUT_S:.0f} s"
        node = next((r.node for r in reports if r.node), None)
        if node and "in use" in why:
            why += f" ({port_check.in_use_text(node)})"
        _add_all(reports, "fail", "listen", f"could not open {tally.describe}: {why}")
        await transport.close()
        return
    if on_open is not None:
        on_open(tally.describe)
    decoder = make_decoder(loaded)
    calibrators = {}
    for dial, _ in members:
        channel = dial.channel or profile.default_channel
        calibrators[channel] = Calibrator(dial.scale, dial.calibration, raw_range(profile.channels[channel]))

    def on_chunk(chunk: Chunk) -> None:
        tally.reads += 1
        tally.bytes += len(chunk.data)
        for item in decoder.feed(chunk):
            if isinstance(item, Reading):
                calibrate = calibrators.get(item.channel)
                value = calibrate(item.raw) if calibrate is not None else float(item.raw)
                tally.channels.setdefault(item.channel, ChannelTally()).add(float(item.raw), value)
            elif isinstance(item, Garbage):
                if not item.continues:  # one count per undecodable run, as the daemon counts
                    tally.garbage[item.reason] += 1
                tally.last_garbage = item
            elif isinstance(item, ButtonEvent):
                (tally.presses if item.pressed else tally.releases)[item.button] += 1
            elif isinstance(item, Discarded):
                tally.discarded += item.count

    def on_gone(why: str) -> None:
        tally.gone = why

    await read_until(transport, deadline_event(seconds), on_chunk, on_gone)
    for dial, report in members:
        _findings(
            report, dial.channel or profile.default_channel, tally, seconds, loaded, decoder.ignored, tally.discarded
        )


def _add_all(reports: list[DialReport], level: Level, check: str, message: str) -> None:
    for report in reports:
        report.add(level, check, message)


def _findings(
    report: DialReport,
    channel: str,
    tally: DeviceTally,
    seconds: float,
    loaded: LoadedProfile,
    ignored: int,
    discarded: int,
) -> None:
    profile = loaded.profile
    report.add("ok", "listen", f"read {tally.describe} for {seconds:g} s: {tally.reads} reads, {tally.bytes} bytes")
    if tally.gone:
        report.add("warn", "listen", f"the device went away while listened to: {tally.gone}", "check the cable")
    if not tally.bytes:
        report.add(
            "warn",
            "input",
            f"nothing arrived in {seconds:g} s",
            "turn the dial while listening (a dial that sends only when it moves is quiet at rest); "
            "check the firmware runs and the baud rate",
        )
        return
    mine = tally.channels.get(channel)
    others = ", ".join(f"{name} {c.count}" for name, c in tally.channels.items() if name != channel)
    if mine is not None:
        report.add(
            "ok",
            "readings",
            f"{mine.count} readings of {channel}: raw {mine.raw_lo:g}..{mine.raw_hi:g}, "
            f"value {mine.value_lo:g}..{mine.value_hi:g} (last {mine.last_value:g})",
        )
    elif tally.decoded:
        report.add("warn", "readings", f"no reading of channel {channel} (other channels: {others or 'none'})")
    elif tally.garbage:
        report.add("fail", "readings", f"none in {seconds:g} s: nothing the device sent decoded")
    else:
        report.add(
            "warn", "readings", f"none in {seconds:g} s: everything was ignored (banners, comments, empty lines)"
        )
    if tally.garbage:
        reasons = "; ".join(f"{n} x {reason}" for reason, n in tally.garbage.most_common(3))
        last = shown(tally.last_garbage.data) if tally.last_garbage is not None else "?"
        total = sum(tally.garbage.values())
        name = str(loaded.path) if loaded.path is not None and not _bundled(loaded) else profile.id
        text = printable_text(tally.last_garbage.data) if tally.last_garbage is not None else None
        try_with = f"--line {shlex.quote(text)}" if text is not None else "--hex '...'"
        report.add(
            "warn" if tally.decoded else "fail",
            "garbage",
            f"{total} inputs did not decode ({reasons}); the last: {last}",
            f"the profile {profile.id} expects {expectation(profile)}: check what the firmware prints, or the "
            f"profile (try it: daq profiles decode {name} {try_with})",
        )
    else:
        report.add("ok", "garbage", "none")
    if discarded:
        report.add("ok", "discarded", f"{discarded} (the first line after opening, dropped by design)")
    if ignored:
        report.add("ok", "ignored", f"{ignored} (banners, comments, empty lines, other reports)")
    if profile.buttons:
        names = sorted(set(tally.presses) | set(tally.releases))
        said = ", ".join(f"{n}: {tally.presses[n]} pressed, {tally.releases[n]} released" for n in names)
        report.add("ok", "buttons", said or "none pressed")


def _bundled(loaded: LoadedProfile) -> bool:
    """Whether `daq profiles decode` finds the profile by its id alone."""
    try:
        return ProfileRegistry.load([]).get(loaded.id).path == loaded.path
    except ProfileError:
        return False
