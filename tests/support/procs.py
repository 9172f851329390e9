"""Real processes for tests: Mosquitto on a free port, the daq CLI, mosquitto_sub.

Every process is started in its own session and stopped by its own pid; nothing is left behind.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from tests.support.ports import claim_port

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nothing listens on, this process's alone while it lives: parallel workers never
    share one (tests/support/ports.py)."""
    return claim_port()


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Stop `proc` by its pid: `sig`, then SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return int(proc.returncode)


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise RuntimeError(f"{program} is not installed: run scripts/test, which installs it (apt-get)")
    return path


SUBSCRIPTION_LOGS: dict[int, Path] = {}
"""The log of each running `Mosquitto` that logs subscriptions, by port."""

_sub_ids = itertools.count(1)


class Mosquitto:
    """A real Mosquitto broker on a free loopback port, its files in `folder`."""

    def __init__(
        self, folder: Path, port: int | None = None, extra_conf: Sequence[str] = (), persistence: bool = False
    ) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra_conf = list(extra_conf)
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "mosquitto.log"
        self.logs_subscriptions = False  # this class's config says so; a subclass with a config of its own may not

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def write_conf(self) -> Path:
        conf = self.folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.folder}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type subscribe",  # "<client id> <qos> <topic>" per subscription: Sub.wait_subscribed reads it
            "max_queued_messages 1000000",
            *self.extra_conf,
        ]
        if os.geteuid() == 0:
            # As root Mosquitto drops to user 'mosquitto', who cannot write pytest's private tmp folders.
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        self.logs_subscriptions = True
        return conf

    def start(self) -> Self:
        conf = self.write_conf()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [need("mosquitto"), "-c", str(conf)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        wait_port(self.port)
        if getattr(self, "logs_subscriptions", False):
            SUBSCRIPTION_LOGS[self.port] = self.log_path
        return self

    def log_mark(self) -> int:
        """Where the broker's log ends now: for `wait_subscription(since=...)`."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def wait_subscription(self, topic: str, since: int, timeout: float = 10.0) -> None:
        """Until some client subscribed to `topic` (exactly this filter) after `since` in the log (this
        class's config logs each subscription as the broker adds it)."""

        def subscribed() -> bool:
            with self.log_path.open("rb") as handle:
                handle.seek(since)
                lines = handle.read().decode("utf-8", errors="replace").splitlines()
            return any(line.endswith(f" {topic}") and line.split(" ")[-2].isdigit() for line in lines)

        wait_for(subscribed, timeout=timeout, interval=0.01, what=f"a subscription to {topic}")

    def stop(self) -> None:
        SUBSCRIPTION_LOGS.pop(self.port, None)
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def kill(self) -> None:
        SUBSCRIPTION_LOGS.pop(self.port, None)
        if self.proc is not None:
            stop_process(self.proc, signal.SIGKILL)
            self.proc = None


def daq_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "daq", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAQ_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_daq(args: Sequence[str], cwd: Path, log_name: str = "daq", **env: str) -> subprocess.Popen[bytes]:
    """`python -m daq ARGS` in its own session; stdout+stderr to cwd/<log_name>.log."""
    log = (cwd / f"{log_name}.log").open("ab")
    proc = subprocess.Popen(
        daq_cmd(*args), cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=clean_env(**env), start_new_session=True
    )
    log.close()
    return proc


class Sub:
    """A mosquitto_sub client (a subscriber we did not write), each message as one JSON line."""

    def __init__(self, port: int, topics: Sequence[str], out: Path, extra: Sequence[str] = ()) -> None:
        self.out = out
        self.topics = list(topics)
        self.broker_log = SUBSCRIPTION_LOGS.get(port)
        self._log_from = self.broker_log.stat().st_size if self.broker_log is not None else 0
        if self.broker_log is not None and "-i" not in extra:  # an id of its own, to find it in the broker's log
            extra = [*extra, "-i", f"sub-{os.getpid()}-{next(_sub_ids)}"]
        self.client_id = list(extra)[list(extra).index("-i") + 1] if "-i" in extra else None
        args = [
            need("mosquitto_sub"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-q",
            "1",
            "-V",
            "mqttv5",
            "-F",
            '{"topic":"%t","retain":%r,"payload":%p}',
            *extra,
        ]
        for topic in topics:
            args += ["-t", topic]
        handle = out.open("ab")
        self.proc = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        self._read = 0  # bytes of `out` parsed so far: a poll reads only what is new, not the whole file again
        self._parsed: list[dict[str, Any]] = []

    def stop(self) -> None:
        stop_process(self.proc)

    def wait_subscribed(self, fallback_s: float = 0.3, timeout: float = 10.0) -> None:
        """Until the broker holds every subscription of this client (a `Mosquitto` here logs each one as
        it adds it, before it routes the next publish); for a broker whose log does not say, `fallback_s`."""
        log = self.broker_log
        if log is None:
            time.sleep(fallback_s)
            return
        wanted = [f": {self.client_id} 1 {topic}\n" for topic in self.topics]  # -q 1

        def subscribed() -> bool:
            with log.open("rb") as handle:
                handle.seek(self._log_from)
                text = handle.read().decode("utf-8", errors="replace")
            return all(line in text for line in wanted)

        with contextlib.suppress(TimeoutError):  # never said: on as before, the test's assertions decide
            wait_for(subscribed, timeout=timeout, interval=0.01, what=f"{self.client_id}'s subscriptions")

    def messages(self) -> list[dict[str, Any]]:
        """Every message written so far: the complete lines only (mosquitto_sub may be half way through
        writing the last one while the test reads)."""
        with self.out.open("rb") as handle:
            handle.seek(self._read)
            text = handle.read()
        complete = text[: text.rfind(b"\n") + 1]
        self._parsed += [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]
        self._read += len(complete)
        return list(self._parsed)


def wait_stopped(sub: Sub, station: str, timeout: float = 5.0) -> None:
    """After `daq run` for `station` exited 0: wait until its last publish, the live (not retained)
    `offline` status with reason `stopped`, is the latest status `sub` got (daq/station/station.py sends
    it after the drain: every message of that run came before it). Instead of sleeping a guess; on a
    timeout the test's own assertions say what is missing."""
    topic = f"daq/{station}/status"

    def arrived() -> bool:  # the latest status (another run's may come before it in the same file)
        statuses = [m for m in sub.messages() if m["topic"] == topic]
        last = statuses[-1] if statuses else {"payload": None}
        body = last["payload"]
        return (
            isinstance(body, dict)
            and not last["retain"]
            and body.get("state") == "offline"
            and body.get("reason") == "stopped"
        )

    with contextlib.suppress(TimeoutError):
        wait_for(arrived, timeout=timeout, interval=0.02, what=f"{station}'s offline status at the subscriber")


def render_conf(template: Path, values: Mapping[str, str], head: Sequence[str] = ()) -> str:
    """A shipped Mosquitto config with the value of each named directive replaced (its first
    uncommented line), so tests and benchmarks run the very file a lab copies."""
    out: list[str] = list(head)
    done: set[str] = set()
    for line in template.read_text(encoding="utf-8").splitlines():
        words = line.split(maxsplit=1)
        key = words[0] if words and not line.startswith("#") else ""
        if key in values and key not in done:
            out.append(f"{key} {values[key]}")
            done.add(key)
        else:
            out.append(line)
    if done != set(values):
        raise ValueError(f"{template.name} has no {', '.join(sorted(set(values) - done))} line")
    return "\n".join(out) + "\n"


def samples_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every sample in `Sub.messages()`, single or batched, in arrival order."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg["topic"].endswith("/samples"):
            body = msg["payload"]
            out.extend(body if isinstance(body, list) else [body])
    return out


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
