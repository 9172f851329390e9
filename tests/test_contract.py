"""The contract as code: the examples in CONTRACT.md validate against the generated schema,
and what the hot path writes has exactly the model's fields."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest

from daq.contract import Sample, json_schemas
from tests.support.procs import REPO, clean_env, daq_cmd

SHARED = REPO.parent / "shared" / "CONTRACT.md"
FIXTURE = Path(__file__).parent / "fixtures" / "CONTRACT.md"


def contract_text() -> str:
    return (SHARED if SHARED.exists() else FIXTURE).read_text(encoding="utf-8")


def json_examples(text: str) -> list[object]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_fixture_is_the_shared_contract() -> None:
    if not SHARED.exists():
        pytest.skip(f"needs the shared contract at {SHARED} (CI has it beside the clone)")
    assert FIXTURE.read_text() == SHARED.read_text(), "tests/fixtures/CONTRACT.md is out of date: copy it again"


def test_contract_examples_validate() -> None:
    examples = json_examples(contract_text())
    assert examples, "CONTRACT.md has no JSON example"
    schema = json_schemas()["payloads"]["samples"]
    for example in examples:
        jsonschema.validate(example, schema)
        jsonschema.validate([example, example], schema)  # the batched form


def test_schema_rejects_what_the_contract_forbids() -> None:
    schema = json_schemas()["payloads"]["samples"]
    good = json_examples(contract_text())[0]
    assert isinstance(good, dict)
    for bad in (
        {**good, "seq": -1},
        {**good, "dial": "a/b"},
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "boot"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_pipeline_writes_the_model_fields() -> None:
    import asyncio
    import time

    from daq.calibration import Calibrator, RawRange
    from daq.config import Calibration
    from daq.contract import Scale
    from daq.mediaclock.session_clock import SessionClock
    from daq.outbox.memory import MemoryOutbox
    from daq.readclock import ReadClock
    from daq.reading import Reading
    from daq.station.dial_pipeline import DialPipeline
    from daq.station.session_state import SessionState
    from daq.timecode import FrameRate

    async def make() -> dict[str, object]:
        clock = SessionClock(FrameRate.parse("29.97df"))
        base = time.monotonic_ns()
        clock.start(mono_ns=base)
        session = SessionState(clock)
        session.set_session("s-1", 0)
        pipe = DialPipeline(
            "st",
            "d1",
            "b",
            "t",
            Calibrator(Scale(min=1, max=9), Calibration(), RawRange(0, 100)),
            ReadClock(),
            session,
            MemoryOutbox(),
        )
        sample = pipe.on_reading(Reading("position", 50, base + 60_060_000_000))
        assert sample is not None
        return sample

    sample = asyncio.run(make())
    assert set(sample) == set(Sample.model_fields) - {"replay"}
    Sample.model_validate(sample)
    assert sample["timecode"] == "00:01:00;02" and sample["frame"] == 1800 and sample["value"] == 5.0


def test_daq_schema_prints_every_payload() -> None:
    result = subprocess.run(daq_cmd("schema"), capture_output=True, text=True, timeout=30, env=clean_env())
    assert result.returncode == 0
    printed = json.loads(result.stdout)
    assert set(printed["payloads"]) == {"sample", "samples", "status", "meta", "session", "event"}
    assert printed == json.loads(json.dumps(json_schemas()))


def test_meta_stamp_is_optional_kernel_or_read() -> None:
    from pydantic import ValidationError

    from daq.contract import Meta

    meta = {
        "v": 1,
        "station": "lab",
        "dial": "p1",
        "boot": "b",
        "connected": True,
        "profile": "griffin-powermate-evdev",
        "transport": "evdev",
        "scale": {"min": 0, "max": 1},
        "t_ns": 1,
    }
    assert Meta.model_validate(meta).stamp == "read"  # a meta without it (an older station) reads as "read"
    assert Meta.model_validate(meta | {"stamp": "kernel"}).stamp == "kernel"
    with pytest.raises(ValidationError):
        Meta.model_validate(meta | {"stamp": "wall"})
    schema = json_schemas()["payloads"]["meta"]
    assert "stamp" in schema["properties"] and "stamp" not in schema.get("required", [])
