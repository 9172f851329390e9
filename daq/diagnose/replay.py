"""Replay a capture (daq.diagnose.capture) through a profile: the readings the daemon would publish.

The capture's chunks go through the profile's decoder exactly as `daq run` feeds them (not
synced: the first line after opening is dropped when the profile says so; the decoder is reset
where the device went away), and each reading of the captured dial's channel is calibrated
with the dial's scale and calibration as recorded in the capture (or the defaults). A guided
capture's marks (low end, high end, button) are checked by `guided_checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daq.calibration import Calibrator
from daq.config import Calibration
from daq.contract import Scale
from daq.diagnose.capture import Capture
from daq.profiles.decode import make_decoder
from daq.profiles.input_text import printable_text
from daq.profiles.model import Profile
from daq.reading import ButtonEvent, Chunk, DeviceLoss, Discarded, Reading
from daq.station.device_reader import HELD_WHEN_GONE
from daq.station.profiled_dials import raw_range

END_TOLERANCE = 0.05  # an end is reached within 5% of the scale's span


@dataclass
class Replayed:
    """What a capture decoded to, in order."""

    channel: str  # the dial's channel: its readings are the dial's samples
    scale: Scale
    items: list[dict[str, Any]] = field(default_factory=list)  # JSON-able, in order
    marks: dict[str, int] = field(default_factory=dict)  # guided: mark -> t_ns (monotonic)
    ignored: int = 0
    discarded: int | None = None

    def samples(self) -> list[dict[str, Any]]:
        """The readings of the dial's channel: what the daemon would publish as samples."""
        return [i for i in self.items if i.get("channel") == self.channel and "value" in i]

    @property
    def garbage(self) -> int:
        return sum(1 for i in self.items if "garbage" in i and not i.get("continues"))


def replay(capture: Capture, profile: Profile) -> Replayed:
    """Decode and calibrate every chunk of `capture` with `profile`."""
    dial = capture.header.get("dial") or {}
    channel = dial.get("channel") or profile.default_channel
    if channel not in profile.channels:
        channel = profile.default_channel
    scale = Scale.model_validate(dial["scale"]) if dial.get("scale") else Scale(min=0, max=100)
    calibration = Calibration.model_validate(dial.get("calibration") or {})
    calibrate = Calibrator(scale, calibration, raw_range(profile.channels[channel]))
    offset = int(capture.header.get("wall_offset_ns", 0))
    decoder = make_decoder(profile)
    out = Replayed(channel, scale)
    for record in capture.records:
        t_mono = int(record.get("t_ns", 0))
        if "gone" in record:  # what the decoder held is discarded and counted, as the device reader does
            held = decoder.reset()
            if held:
                text = printable_text(held)
                out.items.append({"t_ns": t_mono + offset, "discarded": HELD_WHEN_GONE, "text": text, "_mono": t_mono})
            continue
        if "mark" in record:
            out.marks[str(record["mark"])] = t_mono
            continue
        if "hex" not in record:
            continue
        for item in decoder.feed(Chunk(bytes.fromhex(record["hex"]), t_mono)):
            t_ns = item.mono_ns + offset
            if isinstance(item, Reading):
                entry: dict[str, Any] = {"t_ns": t_ns, "channel": item.channel, "raw": item.raw}
                if item.channel == channel:
                    entry["value"] = calibrate(item.raw)
            elif isinstance(item, ButtonEvent):
                entry = {"t_ns": t_ns, "button": item.button, "pressed": item.pressed}
            elif isinstance(item, Discarded):
                entry = {"t_ns": t_ns, "discarded": item.reason, "text": printable_text(item.data)}
                if item.count != 1:
                    entry["readings"] = item.count
            elif isinstance(item, DeviceLoss):
                entry = {"t_ns": t_ns, "device_lost": item.lost, "expected": item.expected, "got": item.got}
            else:
                entry = {
                    "t_ns": t_ns,
                    "garbage": item.reason,
                    "text": printable_text(item.data),
                    "hex": item.data.hex(),
                }
                if item.continues:  # more of one undecodable run: counted once, as the daemon does
                    entry["continues"] = True
            entry["_mono"] = item.mono_ns
            out.items.append(entry)
    out.ignored = decoder.ignored
    out.discarded = sum(int(i.get("readings", 1)) for i in out.items if "discarded" in i)
    return out


@dataclass(frozen=True)
class Check:
    passed: bool
    name: str
    message: str


def guided_checks(result: Replayed, has_buttons: bool) -> list[Check]:
    """Did the range and the direction come out: the value at the low mark is the scale's min,
    at the high mark its max, rising from one to the other; and the button (if any) pressed."""
    samples = result.samples()
    scale = result.scale
    checks = [
        Check(
            bool(samples) and result.garbage <= len(samples) // 10,
            "decodes",
            f"{len(samples)} readings of {result.channel}, {result.garbage} garbage",
        )
    ]
    ends: dict[str, dict[str, Any] | None] = {}
    for mark, want in (("low", scale.min), ("high", scale.max)):
        at = result.marks.get(mark)
        before = [s for s in samples if at is not None and s["_mono"] <= at]
        sample = before[-1] if before else None
        ends[mark] = sample
        if at is None:
            checks.append(Check(False, f"{mark} end", "not marked in this capture"))
        elif sample is None:
            checks.append(Check(False, f"{mark} end", "no reading before it was marked: did the dial send?"))
        else:
            near = abs(sample["value"] - want) <= END_TOLERANCE * abs(scale.max - scale.min)
            hint = (
                ""
                if near
                else f"; the scale's {mark} end is {want:g}: set calibration.raw_{_end(mark)} = {sample['raw']:g}"
            )
            checks.append(Check(near, f"{mark} end", f"raw {sample['raw']:g} -> value {sample['value']:g}{hint}"))
    low, high = ends["low"], ends["high"]
    if low is not None and high is not None:
        rising = (high["value"] - low["value"]) * (scale.max - scale.min) > 0
        if rising:
            message = f"the value goes from {low['value']:g} to {high['value']:g} as the dial turns"
        elif high["value"] == low["value"]:
            message = f"the value stayed at {low['value']:g}: did the dial move between the ends?"
        else:
            message = f"the value falls ({low['value']:g} -> {high['value']:g}): set calibration.invert = true"
        checks.append(Check(rising, "direction", message))
    if has_buttons:
        after = result.marks.get("high", 0)
        pressed = [i for i in result.items if "button" in i and i["_mono"] > after]
        both = {i["pressed"] for i in pressed}
        names = sorted({i["button"] for i in pressed})
        checks.append(
            Check(
                both == {True, False},
                "button",
                f"{', '.join(names)} pressed and released"
                if both == {True, False}
                else "no press and release came after the high end was marked",
            )
        )
    return checks


def _end(mark: str) -> str:
    return "min" if mark == "low" else "max"


def public(item: dict[str, Any]) -> dict[str, Any]:
    """An item as printed (without the monotonic time kept for the checks)."""
    return {k: v for k, v in item.items() if not k.startswith("_")}
