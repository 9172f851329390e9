"""Every capture in tests/captures/ (made by `daq profiles capture`, see its README) replays
through its profile as `daq run` would decode it: guided ones pass their checks, others decode
to samples without garbage. A lab's dial recorded once is a byte-exact test from then on."""

from __future__ import annotations

from pathlib import Path

import pytest

from daq.diagnose.capture import read_capture
from daq.diagnose.replay import guided_checks, replay
from daq.profiles.loader import ProfileRegistry

CAPTURES = sorted((Path(__file__).parent / "captures").glob("*.jsonl"))


@pytest.mark.parametrize("path", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_capture_replays(path: Path) -> None:
    capture = read_capture(path)
    profile = ProfileRegistry.load([]).get(capture.header["profile"]).profile
    result = replay(capture, profile)
    assert result.samples(), f"{path.name}: no sample"
    if capture.header.get("guided"):
        failed = [c for c in guided_checks(result, bool(profile.buttons)) if not c.passed]
        assert not failed, failed
    else:
        assert result.garbage == 0
