"""One answer to a refused login, from every command that talks to a broker (issue 12).

A real Mosquitto that requires a password; each command (a real subprocess) is given a wrong one
and must exit 2 within 10 s, naming the broker and the refusal, and never print the password.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import Mosquitto, clean_env, daq_cmd, need

LIMIT_S = 10.0
USER = "lab-s"


class PasswordBroker(Mosquitto):
    """Mosquitto on a free port that lets in only the users of its password file."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.password = secrets.token_hex(10)
        passwd = folder / "passwd"
        subprocess.run(
            [need("mosquitto_passwd"), "-b", "-c", str(passwd), USER, self.password], check=True, capture_output=True
        )
        self.extra_conf = ["allow_anonymous false", f"password_file {passwd}", "log_type all"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordBroker]:
    mosquitto = PasswordBroker(tmp_path_factory.mktemp("broker"))
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


@dataclass
class Run:
    code: int
    output: str
    seconds: float


def run_with_wrong_password(args: list[str], cwd: Path, wrong: str, env_password: bool = True) -> Run:
    """`python -m daq ARGS`; subprocess.run kills it (by pid) should it overrun the limit by far."""
    env = {"DAQ_BROKER_USERNAME": USER, "DAQ_BROKER_PASSWORD": wrong} if env_password else {}
    began = time.monotonic()
    try:
        done = subprocess.run(
            daq_cmd(*args), cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"still running after 30 s (it retries a wrong password):\n{out}{err}")
    return Run(done.returncode, done.stdout + done.stderr, time.monotonic() - began)


COMMANDS: dict[str, list[str]] = {
    "run": ["run", "--station", USER, "--simulate", "1", "--duration", "30"],
    "record": ["record", "--out", "rec", "--duration", "30"],
    "lsl": ["lsl", "--duration", "30"],
    "watch": ["watch", "--port", "0"],
    "status": ["status"],
    "session": ["session", "start", "--station", USER, "--timeout", "30"],
}


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_wrong_password_exits_2_at_once_naming_broker_and_refusal(
    command: str, protocol: str, broker: PasswordBroker, tmp_path: Path
) -> None:
    wrong = secrets.token_hex(10)
    args = [COMMANDS[command][0], *COMMANDS[command][1:], "--broker", broker.url, "--mqtt-protocol", protocol]
    if command == "session":  # the broker options belong to the action
        args = ["session", "start", "--broker", broker.url, "--mqtt-protocol", protocol, *COMMANDS[command][2:]]
    run = run_with_wrong_password(args, tmp_path, wrong)
    check(run, broker, wrong)


def test_demo_with_a_wrong_password_in_the_url_exits_2(broker: PasswordBroker, tmp_path: Path) -> None:
    wrong = secrets.token_hex(10)
    url = f"mqtt://{USER}:{wrong}@127.0.0.1:{broker.port}"
    run = run_with_wrong_password(
        ["demo", "--broker", url, "--duration", "30", "--out", "rec"], tmp_path, wrong, env_password=False
    )
    check(run, broker, wrong)


def check(run: Run, broker: PasswordBroker, wrong: str) -> None:
    assert run.code == 2, f"exit {run.code}, not 2:\n{run.output}"
    assert run.seconds < LIMIT_S, f"a refused login must stop at once ({run.seconds:.1f} s):\n{run.output}"
    where = f"mqtt://127.0.0.1:{broker.port}"
    assert f"broker {where} refused the connection" in run.output, run.output
    assert "user name or password" in run.output, run.output
    assert "broker.username" in run.output, run.output  # what to check
    for secret in (wrong, broker.password):
        assert secret not in run.output
