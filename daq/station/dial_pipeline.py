"""One dial's path from a decoded reading to an outbox entry.

    transport -> decode -> [calibrate -> timestamp -> media clock -> sample] -> outbox -> MQTT

This module is the bracketed part: it runs on every reading, so it does plain work only:
no models, no lookups that could be done once at start-up. A sample is placed by its read time:
the media position and the session id both are those of `reading.mono_ns`, not of the moment
the reading is processed.

The invariant, kept here: every reading read becomes exactly one sample, or is counted as
garbage; nothing between the read and the outbox can drop it or raise out of `on_reading` (or
`on_value`, the same without the Reading, which the common dial's shortcut calls: a subclass that
wants to see every reading overrides `on_value`).

- A media clock that cannot place the reading (it raises, or says a position a sample cannot
  carry: not finite, beyond the bounds, a frame beyond 2**53) costs the media fields only: the
  sample goes out with `media_s`, `timecode` and `frame` null (the contract allows null for
  each), the dial's `media_errors` count rises and an `error` event says why (rate-limited).
- A reading whose value or raw cannot go into a sample (not finite, an integer JSON cannot
  carry, a calibration that raised) is garbage: counted in the dial's `garbage` and reported on
  `events` as `garbage` (rate-limited); never published (the contract: bad input never reaches
  the wire).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson

from daq.calibration import Calibrator
from daq.contract import CONTRACT_VERSION
from daq.mediaclock.base import MediaPosition
from daq.outbox.base import Outbox
from daq.readclock import ReadClock
from daq.reading import Reading
from daq.station.session_state import SessionState
from daq.station.throttle import Throttle

log = logging.getLogger(__name__)

# kind, dial id (or None), message, data: the announcer's `event`
EventSink = Callable[[str, str | None, str, Mapping[str, object]], None]

_JSON_INT_MIN, _JSON_INT_MAX = -(1 << 63), (1 << 64) - 1  # what orjson writes


def _number_ok(x: object) -> bool:
    """Can `x` be a sample's `value` or `raw` (a finite number JSON carries)?"""
    if type(x) is float:
        return math.isfinite(x)
    if type(x) is int:
        return _JSON_INT_MIN <= x <= _JSON_INT_MAX
    return False


@dataclass(slots=True)
class DialStats:
    samples: int = 0
    garbage: int = 0
    buttons: int = 0
    media_errors: int = 0  # samples sent with null media fields because the clock could not place them
    last_value: float | None = None
    last_raw: float | None = None
    last_t_ns: int = 0
    last_timecode: str | None = None
    connected: bool = False
    reconnects: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _no_events(kind: str, dial: str | None, message: str, data: Mapping[str, object]) -> None:
    pass


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
        on_event: EventSink = _no_events,
    ) -> None:
        self.station = station
        self.dial = dial
        self.boot = boot
        self.topic = topic
        self.calibrate = calibrator
        self.read_clock = read_clock
        self.session = session
        self.outbox = outbox
        self.on_event = on_event
        self.seq = 0
        self.stats = DialStats()
        self._media_trouble = Throttle()
        self._garbage_trouble = Throttle()

    def on_reading(self, reading: Reading) -> dict[str, object] | None:
        """Turn one reading into a sample, put it in the outbox, and return it (None: it was garbage)."""
        return self.on_value(reading.raw, reading.mono_ns, reading.channel)

    def on_value(self, raw: float, mono_ns: int, channel: str) -> dict[str, object] | None:
        """`on_reading` of the reading (`channel`, `raw`, `mono_ns`), without the Reading (the
        common dial's shortcut calls this, daq.station.device_reader)."""
        try:
            value = self.calibrate(raw)
        except Exception as exc:  # a reading the calibration cannot take is garbage, never a lost read
            self._garbage(channel, f"calibration failed: {type(exc).__name__}: {exc}")
            return None
        if not (_number_ok(raw) and _number_ok(value)):
            self._garbage(channel, f"raw {raw!r} gives value {value!r}: not a finite number")
            return None
        t_ns = mono_ns + self.read_clock.offset_ns
        pos, problem = self.session.checked_position_at(mono_ns)
        if problem is not None:
            self._media_error(problem)
        sample = self._sample(mono_ns, t_ns, value, raw, pos)
        try:
            payload = orjson.dumps(sample)
        except (TypeError, orjson.JSONEncodeError) as exc:  # not reached after the checks above; kept as the net
            if pos is None:
                self._garbage(channel, f"cannot encode the sample: {exc}")
                return None
            self._media_error(f"cannot encode the media fields: {exc}")
            pos = None
            sample = self._sample(mono_ns, t_ns, value, raw, None)
            payload = orjson.dumps(sample)
        self.outbox.put(self.dial, self.topic, payload)
        self.seq += 1
        stats = self.stats
        stats.samples += 1
        stats.last_value = value
        stats.last_raw = raw
        stats.last_t_ns = t_ns
        stats.last_timecode = pos.timecode if pos else None
        return sample

    def _sample(
        self, mono_ns: int, t_ns: int, value: float, raw: float, pos: MediaPosition | None
    ) -> dict[str, object]:
        return {
            "v": CONTRACT_VERSION,
            "station": self.station,
            "dial": self.dial,
            "session": self.session.session_at(mono_ns),
            "boot": self.boot,
            "seq": self.seq,
            "t_ns": t_ns,
            "media_s": pos.media_s if pos else None,
            "timecode": pos.timecode if pos else None,
            "frame": pos.frame if pos else None,
            "value": value,
            "raw": raw,
        }

    def _media_error(self, problem: str) -> None:
        self.stats.media_errors += 1
        said = f"{problem}; samples carry null media fields", f"{problem}: samples carry null media fields"
        self._report(self._media_trouble, "error", said, "media_errors", {})

    def _garbage(self, channel: str, why: str) -> None:
        self.stats.garbage += 1
        said = f"a reading cannot be a sample: {why}"
        self._report(self._garbage_trouble, "garbage", (said, said), "count", {"channel": channel})

    def _report(
        self, trouble: Throttle, kind: str, said: tuple[str, str], count_key: str, data: Mapping[str, object]
    ) -> None:
        """Say a trouble, rate-limited by `trouble` (which counts it): `said` is (the log line, the event's message)."""
        if trouble.hit():
            since = trouble.since_report()
            log.warning("%s: %s (%d so far)", self.dial, said[0], trouble.count)
            self.on_event(
                kind,
                self.dial,
                f"{said[1]} ({trouble.count} so far)",
                {count_key: trouble.count, "since_last_report": since, **data},
            )
