"""Issue 13.7: config numbers are finite and in sane ranges. Each one that is not stops `daq run`
with exit 2 before anything starts, naming the file, the key and the fix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from daq.config import load_config
from daq.exceptions import ConfigError
from tests.support.procs import clean_env, daq_cmd

DIAL = '[[dials]]\nid = "p01"\n[dials.simulate]\nrate_hz = 10\n'

CASES: dict[str, tuple[str, list[str]]] = {
    # name: (config text, what the message must say)
    "max_nan": (DIAL + "[dials.scale]\nmin = 0\nmax = nan\n", ["dials[0].scale.max", "finite"]),
    "max_inf": (DIAL + "[dials.scale]\nmin = 0\nmax = inf\n", ["dials[0].scale.max", "finite"]),
    "min_minus_inf": (DIAL + "[dials.scale]\nmin = -inf\nmax = 1\n", ["dials[0].scale.min", "finite"]),
    "raw_min_nan": (DIAL + "[dials.calibration]\nraw_min = nan\n", ["dials[0].calibration.raw_min", "finite"]),
    "center_inf": (DIAL + "[dials.calibration]\ncenter = inf\n", ["dials[0].calibration.center", "finite"]),
    "raw_ends_equal": (
        DIAL + "[dials.calibration]\nraw_min = 5\nraw_max = 5\n",
        ["dials[0].calibration", "must differ"],
    ),
    "step_inf": (DIAL + "[dials.scale]\nmin = 0\nmax = 10\nstep = inf\n", ["dials[0].scale.step", "finite"]),
    "step_subnormal": (DIAL + "[dials.scale]\nmin = 0\nmax = 10\nstep = 1e-320\n", ["dials[0].scale", "step"]),
    "step_wider_than_scale": (DIAL + "[dials.scale]\nmin = 0\nmax = 10\nstep = 11\n", ["dials[0].scale", "step"]),
    "span_overflows": (DIAL + "[dials.scale]\nmin = -1e308\nmax = 1e308\n", ["dials[0].scale", "min"]),
    "min_above_max": (DIAL + "[dials.scale]\nmin = 10\nmax = 0\n", ["dials[0].scale", "invert"]),
    "rate_tiny": (
        '[[dials]]\nid = "p01"\n[dials.simulate]\nrate_hz = 1e-300\n',
        ["dials[0].simulate.rate_hz", "0.01"],
    ),
    "rate_huge": (
        '[[dials]]\nid = "p01"\n[dials.simulate]\nrate_hz = 1e300\n',
        ["dials[0].simulate.rate_hz", "10000"],
    ),
    "rate_nan": ('[[dials]]\nid = "p01"\n[dials.simulate]\nrate_hz = nan\n', ["dials[0].simulate.rate_hz"]),
    "linger_nan": ("[publish]\nbatch_linger_ms = nan\n" + DIAL, ["publish.batch_linger_ms", "finite"]),
    "backlog_inf": ("[outbox]\nbacklog_share = inf\n" + DIAL, ["outbox.backlog_share", "finite"]),
    "deadband_inf": (DIAL + "[dials.calibration]\ndeadband = inf\n", ["dials[0].calibration.deadband", "finite"]),
    "dial_id_too_long": ('[[dials]]\nid = "' + "p" * 65 + '"\n[dials.simulate]\n', ["dials[0].id", "at most 64"]),
    "station_id_too_long": ('[station]\nid = "' + "s" * 300 + '"\n' + DIAL, ["station.id", "at most 64"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_config_refuses(case: str, tmp_path: Path) -> None:
    text, expected = CASES[case]
    path = tmp_path / "daq.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize("case", sorted(CASES))
def test_daq_run_exits_2_naming_the_key(case: str, tmp_path: Path) -> None:
    text, expected = CASES[case]
    path = tmp_path / "daq.toml"
    path.write_text(text)
    result = subprocess.run(
        daq_cmd("run", "--config", str(path)), capture_output=True, text=True, timeout=30, env=clean_env()
    )
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr and expected[0] in result.stderr
    assert "Traceback" not in result.stderr


def test_sane_numbers_still_load(tmp_path: Path) -> None:
    path = tmp_path / "daq.toml"
    path.write_text(
        '[[dials]]\nid = "' + "p" * 64 + '"\n[dials.simulate]\nrate_hz = 0.01\n'
        "[dials.scale]\nmin = -1e15\nmax = 1e15\nstep = 1e-6\n"
        "[dials.calibration]\nraw_min = 0\nraw_max = 1023\ncenter = 500\n"
    )
    config = load_config(path, env={})
    assert config.dials[0].scale.step == 1e-6 and len(config.dials[0].id) == 64


def test_the_contract_bounds_ids_too() -> None:
    import jsonschema

    from daq.contract import json_schemas

    schema = json_schemas()["payloads"]["samples"]
    sample = {
        "v": 1,
        "station": "lab",
        "dial": "p" * 64,
        "session": None,
        "boot": "b",
        "seq": 0,
        "t_ns": 1,
        "media_s": None,
        "timecode": None,
        "frame": None,
        "value": 1.0,
        "raw": 1,
    }
    jsonschema.validate(sample, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**sample, "dial": "p" * 65}, schema)
