"""The wire contract (../shared/CONTRACT.md) as pydantic models.

These models are the source of the JSON Schema (`daq schema`) and what tests validate
payloads against. The hot path does not build models: it writes dicts with exactly these
fields (see `daq.station.dial_pipeline`), and a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from daq.ids import ID_PATTERN
from daq.validation import StrictModel

CONTRACT_VERSION = 1

Id = Field(pattern=ID_PATTERN)


class Scale(StrictModel):
    """The rating scale a dial's `value` is on."""

    min: float = Field(description="value at one end of the dial")
    max: float = Field(description="value at the other end")
    step: float = Field(0, ge=0, description="values are multiples of step from min; 0 = continuous")
    labels: dict[str, str] = Field(default_factory=dict, description="value -> label, e.g. {'1': 'hindering'}")
    unit: str = Field("", description="unit or name of the scale, free text")


class Sample(StrictModel):
    """One reading of one dial."""

    v: Literal[1] = Field(description="contract version")
    station: str = Field(pattern=ID_PATTERN)
    dial: str = Field(pattern=ID_PATTERN)
    session: str | None = Field(description="session id; null when no session runs")
    boot: str = Field(min_length=1, description="random id of this daemon run")
    seq: int = Field(ge=0, description="per dial, from 0 each boot, +1 per sample: a gap is a lost sample")
    t_ns: int = Field(ge=0, description="host wall clock (Unix epoch ns) when the report was read")
    media_s: float | None = Field(description="position in the media in seconds; null without a media clock")
    timecode: str | None = Field(
        pattern=r"^\d{2}:\d{2}:\d{2}[:;.]\d{2}$", description="SMPTE timecode of media_s; ';' for drop-frame"
    )
    frame: int | None = Field(description="frame count from 00:00:00:00 at the session's rate")
    value: float = Field(description="the rating on the dial's scale, after calibration")
    raw: float = Field(description="the device's reading after decoding")
    replay: bool = Field(False, description="true when re-sent from the outbox after an outage (optional)")


class Status(StrictModel):
    """Station state; retained; also the MQTT Last Will (state 'offline', reason 'lost')."""

    v: Literal[1]
    station: str = Field(pattern=ID_PATTERN)
    boot: str
    state: Literal["online", "offline"]
    reason: str = Field("", description="why offline: 'stopped' (clean exit) or 'lost' (Last Will)")
    t_ns: int | None = Field(None, description="when this state was published (absent in the Last Will)")
    version: str = Field("", description="dialdaq version")
    dials: list[str] = Field(default_factory=list, description="ids of the configured dials")


class Meta(StrictModel):
    """What a dial is; retained per dial."""

    v: Literal[1]
    station: str = Field(pattern=ID_PATTERN)
    dial: str = Field(pattern=ID_PATTERN)
    boot: str
    connected: bool
    profile: str = Field(description="firmware profile id, or 'simulated'")
    transport: str = Field(description="serial, hid, evdev, midi or simulated")
    device: str = Field("", description="where the device is attached")
    channel: str = Field("", description="the profile channel this dial reads")
    kind: Literal["absolute", "relative", "counter"] = "absolute"
    scale: Scale
    rate_hz: float | None = Field(None, description="nominal readings per second, when known")
    stamp: Literal["kernel", "read"] = Field(
        "read",
        description="where samples' t_ns come from: 'kernel' = the device event's time kept by the OS kernel "
        "(evdev), 'read' = taken when the read returned (optional; 'read' when absent)",
    )
    t_ns: int


class ClockInfo(StrictModel):
    kind: str = Field(description="session, mpv, mqtt, mtc or none")
    rate: str = Field(description="frame rate label, e.g. '25' or '29.97df'")
    state: Literal["running", "paused", "stopped", "lost"]
    position_s: float | None = Field(description="media position at anchor_t_ns")
    anchor_t_ns: int | None = Field(description="wall clock time the position refers to")
    speed: float = 1.0
    start_timecode: str | None = None


class Session(StrictModel):
    """The current session and its media clock; retained."""

    v: Literal[1]
    station: str = Field(pattern=ID_PATTERN)
    boot: str
    session: str | None
    clock: ClockInfo
    t_ns: int


class Event(StrictModel):
    """Marks, errors, device plugged/unplugged, clock jumps; not retained."""

    v: Literal[1]
    station: str = Field(pattern=ID_PATTERN)
    boot: str
    t_ns: int
    kind: str = Field(description="e.g. device.connected, device.disconnected, garbage, mark, clock.seek, error")
    dial: str | None = None
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


PAYLOADS: dict[str, type[StrictModel]] = {
    "sample": Sample,
    "status": Status,
    "meta": Meta,
    "session": Session,
    "event": Event,
}


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every payload, keyed by payload name (what `daq schema` prints)."""
    schemas: dict[str, Any] = {name: model.model_json_schema() for name, model in PAYLOADS.items()}
    sample = schemas["sample"]
    schemas["samples"] = {
        "description": "a samples message: one sample object, or a JSON array of them (a batch)",
        "oneOf": [{"$ref": "#/$defs/Sample"}, {"type": "array", "items": {"$ref": "#/$defs/Sample"}}],
        "$defs": {"Sample": sample},
    }
    return {"contract_version": CONTRACT_VERSION, "payloads": schemas}
