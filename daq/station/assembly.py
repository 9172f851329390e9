"""From config to devices: one DeviceSetup per physical (or simulated) device, its dial pipelines built.

Simulated dials are assembled here; dials read through firmware profiles in
`daq.station.profiled_dials`. Dials that name the same profile and the same attachment share one
device (a ShuttleXpress's jog and ring are two dials on one USB device).
"""

from __future__ import annotations

from dataclasses import dataclass

from daq.calibration import Calibrator, RawRange
from daq.config import DaqConfig, DialConfig
from daq.outbox.base import Outbox
from daq.readclock import ReadClock
from daq.station.device_reader import DeviceSetup
from daq.station.dial_pipeline import DialPipeline, EventSink
from daq.station.profiled_dials import build_profiled
from daq.station.session_state import SessionState
from daq.topics import Topics
from daq.transports.reader_host import readers_mode
from daq.transports.simulated import RAW_MAX, RAW_MIN, SimulatedDecoder, SimulatedTransport


@dataclass(frozen=True, slots=True)
class PipelineParts:
    """What every dial pipeline of a station shares."""

    station: str
    boot: str
    topics: Topics
    read_clock: ReadClock
    session: SessionState
    outbox: Outbox
    on_event: EventSink  # what a pipeline has to say (a media error, a reading that cannot be a sample)

    def pipeline(self, dial: DialConfig, raw_range: RawRange) -> DialPipeline:
        calibrator = Calibrator(dial.scale, dial.calibration, raw_range)
        return DialPipeline(
            self.station,
            dial.id,
            self.boot,
            self.topics.samples(dial.id),
            calibrator,
            self.read_clock,
            self.session,
            self.outbox,
            self.on_event,
        )


def build_devices(config: DaqConfig, parts: PipelineParts) -> list[DeviceSetup]:
    """Every configured dial's device, simulated ones first, in config order."""
    setups: list[DeviceSetup] = []
    profiled = [d for d in config.dials if d.profile is not None]
    for dial in config.dials:
        if dial.simulate is not None:
            setups.append(_simulated(parts, dial))
    if profiled:
        # where serial ports are read (a process or a thread), and how a reader process is scheduled
        with readers_mode(config.station.readers, config.station.reader_priority):
            setups.extend(build_profiled(config, profiled, parts.pipeline))
    return setups


def _simulated(parts: PipelineParts, dial: DialConfig) -> DeviceSetup:
    assert dial.simulate is not None
    transport = SimulatedTransport(dial.id, dial.simulate.rate_hz, dial.simulate.seed)
    decoder = SimulatedDecoder()
    pipeline = parts.pipeline(dial, RawRange(RAW_MIN, RAW_MAX))
    setup = DeviceSetup(transport, decoder)
    setup.routes[decoder.channel] = pipeline
    setup.meta[dial.id] = {
        "profile": "simulated",
        "transport": "simulated",
        "device": transport.describe,
        "channel": decoder.channel,
        "kind": "absolute",
        "scale": dial.scale.model_dump(),
        "rate_hz": dial.simulate.rate_hz,
        "stamp": "read",
    }
    return setup
