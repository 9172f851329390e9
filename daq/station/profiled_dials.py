"""Dials read through firmware profiles: group them by device, build transport and decoder.

Dials that name the same profile and the same attachment share one device; each reads one of
the profile's channels (the profile's default channel when the dial names none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from daq.calibration import RawRange
from daq.config import DaqConfig, DialConfig
from daq.exceptions import ConfigError, ProfileError
from daq.profiles.decode import make_decoder
from daq.profiles.input_text import expectation
from daq.profiles.loader import LoadedProfile, ProfileRegistry, load_profile
from daq.profiles.model import Channel
from daq.station.device_reader import DeviceSetup
from daq.station.dial_pipeline import DialPipeline
from daq.transports import make_transport

PipelineFactory = Callable[[DialConfig, RawRange], DialPipeline]

# A relative dial with no counts_per_turn: one full scale per this many counts.
DEFAULT_RELATIVE_SPAN = 100.0


def raw_range(channel: Channel) -> RawRange:
    """Which raw readings span the scale by default (calibration.raw_min/raw_max override it).

    Absolute channels: their declared range. Relative and counter channels start at 0 and one
    full turn spans the scale, centred on 0.
    """
    if channel.range is not None:
        return RawRange(channel.range[0], channel.range[1])
    span = channel.counts_per_turn or channel.detents_per_turn or DEFAULT_RELATIVE_SPAN
    return RawRange(-span / 2, span / 2)


def resolve_profile(registry: ProfileRegistry, name: str) -> LoadedProfile:
    if name.endswith(".toml") or "/" in name:
        return load_profile(Path(name))
    return registry.get(name)


def build_profiled(config: DaqConfig, dials: Sequence[DialConfig], make_pipeline: PipelineFactory) -> list[DeviceSetup]:
    file = config.source_file
    registry = ProfileRegistry.load(config.profile_dirs)
    groups: dict[tuple[str, str], tuple[LoadedProfile, list[tuple[int, DialConfig]]]] = {}
    for dial in dials:
        index = config.dials.index(dial)
        assert dial.profile is not None
        try:
            loaded = resolve_profile(registry, dial.profile)
        except ProfileError as exc:
            if exc.file is None or "unknown profile" in exc.problem or not Path(exc.file).exists():
                raise ConfigError(file, f"dials[{index}].profile", exc.problem) from None
            raise
        key = (loaded.id, dial.attachment.model_dump_json())
        groups.setdefault(key, (loaded, []))[1].append((index, dial))

    setups = []
    for loaded, members in groups.values():
        profile = loaded.profile
        transport = make_transport(profile, members[0][1].attachment)
        setup = DeviceSetup(transport, make_decoder(loaded), expects=expectation(profile))
        for index, dial in members:
            channel_name = dial.channel or profile.default_channel
            channel = profile.channels.get(channel_name)
            if channel is None:
                raise ConfigError(
                    file,
                    f"dials[{index}].channel",
                    f"profile {profile.id} has no channel {channel_name!r}; "
                    f"its channels: {', '.join(profile.channels)}",
                )
            if channel_name in setup.routes:
                other = setup.routes[channel_name].dial
                raise ConfigError(
                    file,
                    f"dials[{index}].channel",
                    f"dial {other!r} reads channel {channel_name!r} of this device already",
                )
            try:
                pipeline = make_pipeline(dial, raw_range(channel))
            except ValueError as exc:
                raise ConfigError(file, f"dials[{index}].calibration", str(exc)) from None
            setup.routes[channel_name] = pipeline
            setup.meta[dial.id] = {
                "profile": profile.id,
                "transport": profile.transport,
                "device": setup.transport.describe,
                "channel": channel_name,
                "kind": channel.kind,
                "scale": dial.scale.model_dump(),
                "rate_hz": None,
                "stamp": getattr(setup.transport, "stamp", "read"),  # "kernel": the device's event times
            }
        setups.append(setup)
    return setups
