"""The seam registries: a toy transport and a toy media clock added at test time through
daq.transports.registry and daq.mediaclock.registry alone (no other file knows them) are used
by profiles, make_transport, `daq devices`, `daq doctor` and the station config; removed
again, they are refused. Also: each registry's entries are whole (their lazy references
resolve, their framings exist, their extras are pyproject's)."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from daq.commands.devices import Device, list_devices
from daq.config import MediaConfig, build_config
from daq.diagnose.doctor import DialReport, diagnose_dial
from daq.exceptions import ConfigError, ProfileError
from daq.mediaclock.base import MediaPosition, Segment
from daq.mediaclock.factory import make_clock
from daq.mediaclock.registry import CLOCKS, ClockKind
from daq.profiles.decode import make_decoder
from daq.profiles.framing_registry import BY_KIND
from daq.profiles.loader import ProfileRegistry, load_profile
from daq.profiles.model import Profile
from daq.reading import Chunk, Reading
from daq.seams import resolve
from daq.timecode import FrameRate
from daq.transports import make_transport
from daq.transports.attachment import Attachment
from daq.transports.registry import TRANSPORTS, TransportKind
from tests.support.procs import REPO

TOY_PROFILE = """\
spec = 1
id = "toy-dial"
name = "A toy dial"
transport = "toy"
source = "tests/test_registries.py"
match = { usb = ["1209:0001"], product = ["Toy"] }

[framing]
kind = "line"
pattern = '(?P<position>[0-9]+)'

[channels.position]
kind = "absolute"
range = [0, 1023]
"""


class ToyTransport:
    """Lines from memory: what a toy device 'sends'."""

    def __init__(self, profile: Profile, attachment: Attachment) -> None:
        self.profile, self.attachment = profile, attachment
        self.lines = [b"12\n", b"512\n", b"1023\n"]
        self.opened = False

    @property
    def describe(self) -> str:
        return f"toy:{self.attachment.port or 'memory'}"

    async def open(self) -> None:
        self.opened = True

    async def read(self) -> list[Chunk]:
        await asyncio.sleep(0)
        return [Chunk(self.lines.pop(0), i) for i in range(1) if self.lines]

    async def close(self) -> None:
        self.opened = False


def toy_devices(notes: list[str]) -> list[Device]:
    return [Device(kind="toy", path="toy0", usb="1209:0001", product="Toy dial")]


def toy_doctor(report: DialReport, profile: Profile, attachment: Attachment) -> None:
    report.node = "toy0"
    report.add("ok", "present", f"a toy dial for {profile.id}")


TOY = TransportKind(
    "toy",
    framings=("line",),
    open=ToyTransport,
    title="Toy dials",
    devices=toy_devices,
    doctor=toy_doctor,
)


class ToyClock:
    """A clock that always says 00:00:01:00."""

    kind = "toy"

    def __init__(self, media: MediaConfig) -> None:
        self._rate = FrameRate.parse(media.rate)

    @property
    def rate(self) -> FrameRate:
        return self._rate

    def position_at(self, mono_ns: int) -> MediaPosition | None:
        return None

    def current(self) -> Segment:
        return Segment(0, 1_000_000_000, 0.0, "paused")


@pytest.fixture
def toy_transport() -> Iterator[TransportKind]:
    with TRANSPORTS.registered(TOY) as kind:
        yield kind
    assert "toy" not in TRANSPORTS.names()


@pytest.fixture
def toy_clock() -> Iterator[ClockKind]:
    with CLOCKS.registered(ClockKind("toy", build=ToyClock)) as kind:
        yield kind
    assert "toy" not in CLOCKS.names()


def toy_file(tmp_path: Path) -> Path:
    path = tmp_path / "toy-dial.toml"
    path.write_text(TOY_PROFILE)
    return path


def test_a_toy_transport_registered_at_test_time_loads_opens_and_decodes(
    toy_transport: TransportKind, tmp_path: Path
) -> None:
    loaded = load_profile(toy_file(tmp_path))
    assert loaded.profile.transport == "toy"
    transport = make_transport(loaded.profile, Attachment(port="toy0"))
    assert isinstance(transport, ToyTransport) and transport.describe == "toy:toy0"
    decoder = make_decoder(loaded, synced=True)

    async def read_all() -> list[Reading]:
        await transport.open()
        readings = []
        for _ in range(3):
            for chunk in await transport.read():
                readings += [r for r in decoder.feed(chunk) if isinstance(r, Reading)]
        await transport.close()
        return readings

    readings = asyncio.run(read_all())
    assert [(r.channel, r.raw) for r in readings] == [("position", 12), ("position", 512), ("position", 1023)]
    assert "toy" in Profile.model_json_schema()["properties"]["transport"]["enum"]


def test_the_toy_transport_is_listed_checked_and_matched(
    toy_transport: TransportKind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daq.commands import devices as devices_cli

    # This machine's own devices do not matter here: the built-in listers find none. (The registry
    # names them by 'module:function', looked up when `daq devices` runs.)
    for lister in ("serial_devices", "hid_devices", "input_devices", "midi_ports"):
        monkeypatch.setattr(devices_cli, lister, lambda notes: [])
    listed = list_devices([])
    assert [(d.kind, d.path) for d in listed] == [("toy", "toy0")]
    toy_file(tmp_path)
    devices_cli.suggest(listed, ProfileRegistry.load([tmp_path]))
    assert [p["id"] for p in listed[0].profiles] == ["toy-dial"]
    assert "Toy dials:" in devices_cli.render(listed, [])

    config = build_config({"dials": [{"id": "d1", "profile": str(toy_file(tmp_path))}]})
    report = diagnose_dial(config.dials[0], ProfileRegistry.load())
    assert report.transport == "toy" and report.node == "toy0" and report.ready


def test_an_unregistered_transport_is_refused(tmp_path: Path) -> None:
    with TRANSPORTS.registered(TOY):
        load_profile(toy_file(tmp_path))
    with pytest.raises(
        ProfileError, match=r"transport: Input should be 'serial', 'hid', 'evdev' or 'midi' \(got 'toy'\)"
    ):
        load_profile(toy_file(tmp_path))
    with pytest.raises(ValueError, match="built-in"):
        TRANSPORTS.unregister("serial")
    with pytest.raises(ValueError, match="registered already"):
        TRANSPORTS.register(TRANSPORTS.builtin[0])


def test_a_toy_clock_registered_at_test_time_is_configured_and_built(toy_clock: ClockKind) -> None:
    config = build_config({"media": {"clock": "toy", "rate": "30"}})
    clock = make_clock(config.media)
    assert isinstance(clock, ToyClock) and clock.rate == FrameRate.parse("30")


def test_an_unregistered_clock_is_refused() -> None:
    with CLOCKS.registered(ClockKind("toy", build=ToyClock)):
        build_config({"media": {"clock": "toy"}})
    with pytest.raises(ConfigError, match=r"media.clock: Input should be 'session', .* or 'none' \(got 'toy'\)"):
        build_config({"media": {"clock": "toy"}})


def test_the_built_in_entries_are_whole() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for kind in TRANSPORTS.builtin:
        for hook in (kind.open, kind.devices, kind.doctor):
            assert hook is not None and callable(resolve(hook)), (kind.name, hook)
        assert kind.framings and all(f in BY_KIND for f in kind.framings), kind.name
        assert kind.extra is None or kind.extra.name in extras, kind.name
    carried = {f for kind in TRANSPORTS.builtin for f in kind.framings}
    assert carried == set(BY_KIND)  # every framing has a transport that carries it
    for framing in BY_KIND.values():
        assert callable(resolve(framing.decoder)), framing.name
    for clock in CLOCKS.builtin:
        assert callable(resolve(clock.build)) and (clock.check is None or callable(resolve(clock.check)))
        assert clock.extra is None or clock.extra.name in extras, clock.name


def test_a_framing_without_kind_is_told_every_framing_of_the_list(tmp_path: Path) -> None:
    # The message used to name line, binary and report only: it now reads the framing list.
    path = tmp_path / "p.toml"
    path.write_text(
        TOY_PROFILE.replace('transport = "toy"', 'transport = "serial"\nserial = { baud = 9600 }').replace(
            'kind = "line"\n', ""
        )
    )
    with pytest.raises(ProfileError, match="add kind = 'line', 'binary', 'report', 'evdev' or 'midi'"):
        load_profile(path)
