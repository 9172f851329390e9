"""One dial's path from a decoded reading to an outbox entry.

    transport -> decode -> [calibrate -> timestamp -> media clock -> sample] -> outbox -> MQTT

This module is the bracketed part: it runs on every reading, so it does plain work only:
no models, no lookups that could be done once at start-up. A sample is placed by its read time:
the media position and the session id both are those of `reading.mono_ns`, not of the moment
the reading is processed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from daq.calibration import Calibrator
from daq.contract import CONTRACT_VERSION
from daq.outbox.base import Outbox
from daq.readclock import ReadClock
from daq.reading import Reading
from daq.station.session_state import SessionState


@dataclass(slots=True)
class DialStats:
    samples: int = 0
    garbage: int = 0
    buttons: int = 0
    last_value: float | None = None
    last_raw: float | None = None
    last_t_ns: int = 0
    last_timecode: str | None = None
    connected: bool = False
    reconnects: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class DialPipeline:
    def __init__(
        self,
        station: str,
        dial: str,
        boot: str,
        topic: str,
        calibrator: Calibrator,
        read_clock: ReadClock,
        session: SessionState,
        outbox: Outbox,
    ) -> None:
        self.station = station
        self.dial = dial
        self.boot = boot
        self.topic = topic
        self.calibrate = calibrator
        self.read_clock = read_clock
        self.session = session
        self.outbox = outbox
        self.seq = 0
        self.stats = DialStats()

    def on_reading(self, reading: Reading) -> dict[str, object]:
        """Turn one reading into a sample, put it in the outbox, and return it."""
        raw = reading.raw
        value = self.calibrate(raw)
        t_ns = reading.mono_ns + self.read_clock.offset_ns
        pos = self.session.position_at(reading.mono_ns)
        sample: dict[str, object] = {
            "v": CONTRACT_VERSION,
            "station": self.station,
            "dial": self.dial,
            "session": self.session.session_at(reading.mono_ns),
            "boot": self.boot,
            "seq": self.seq,
            "t_ns": t_ns,
            "media_s": pos.media_s if pos else None,
            "timecode": pos.timecode if pos else None,
            "frame": pos.frame if pos else None,
            "value": value,
            "raw": raw,
        }
        self.outbox.put(self.dial, self.topic, orjson.dumps(sample))
        self.seq += 1
        stats = self.stats
        stats.samples += 1
        stats.last_value = value
        stats.last_raw = raw
        stats.last_t_ns = t_ns
        stats.last_timecode = pos.timecode if pos else None
        return sample
