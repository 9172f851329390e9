"""A broken config exits 2 before anything starts, naming the file, the key and the fix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from daq.config import load_config
from daq.exceptions import ConfigError
from tests.support.procs import clean_env, daq_cmd

GOOD_DIAL = '[[dials]]\nid = "p01"\n[dials.simulate]\nrate_hz = 10\n'

CASES = {
    "unknown_key": ('[station]\nid = "lab"\ncolour = "blue"\n' + GOOD_DIAL, ["station.colour", "unknown key"]),
    "wrong_type": ('[publish]\nbatch_max = "lots"\n' + GOOD_DIAL, ["publish.batch_max", "integer"]),
    "bad_station_id": ('[station]\nid = "lab a/1"\n' + GOOD_DIAL, ["station.id", "not a valid id"]),
    "bad_url": ('[broker]\nurl = "http://localhost"\n' + GOOD_DIAL, ["broker.url", "mqtt://"]),
    "bad_rate": ('[media]\nrate = "33"\n' + GOOD_DIAL, ["media", "rate"]),
    "dial_without_source": ('[[dials]]\nid = "p01"\n', ["dials[0]", "profile"]),
    "duplicate_dial": (GOOD_DIAL + GOOD_DIAL, ["used twice"]),
    "bad_toml": ("[station\nid = 1\n", ["not valid TOML"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_config_names_the_problem(case: str, tmp_path: Path) -> None:
    text, expected = CASES[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message


@pytest.mark.parametrize("case", ["unknown_key", "wrong_type", "bad_station_id", "bad_url"])
def test_daq_run_exits_2_before_starting(case: str, tmp_path: Path) -> None:
    text, expected = CASES[case]
    path = tmp_path / "daq.toml"
    path.write_text(text)
    # An unreachable broker: if validation let the config through, the run would hang retrying, not exit 2.
    result = subprocess.run(
        daq_cmd("run", "--config", str(path)), capture_output=True, text=True, timeout=30, env=clean_env()
    )
    assert result.returncode == 2
    assert str(path) in result.stderr and expected[0] in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    result = subprocess.run(
        daq_cmd("run", "--config", str(path)), capture_output=True, text=True, timeout=30, env=clean_env()
    )
    assert result.returncode == 2
    assert f"{path}: no such file" in result.stderr


def test_bad_command_line_values(tmp_path: Path) -> None:
    result = subprocess.run(
        daq_cmd("run", "--broker", "http://localhost:1883", "--simulate", "1"),  # HOST:PORT alone is mqtt://
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert result.returncode == 2 and "broker.url" in result.stderr and "mqtt://" in result.stderr
    result = subprocess.run(
        daq_cmd("run", "--station", "a b", "--simulate", "1"),
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert result.returncode == 2 and "station.id" in result.stderr


def test_environment_overrides_and_secrets(tmp_path: Path) -> None:
    path = tmp_path / "daq.toml"
    path.write_text('[broker]\nurl = "mqtt://a:1"\nusername = "u"\n' + GOOD_DIAL)
    config = load_config(path, env={"DAQ_BROKER_URL": "mqtts://b:8884", "DAQ_BROKER_PASSWORD": "s3cret"})
    assert config.broker.address.host == "b" and config.broker.use_tls
    assert config.broker.effective_password() == "s3cret"
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.model_dump())
