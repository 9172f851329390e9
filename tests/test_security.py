"""A locked-down broker connection (issue 6): passwords, TLS, client certificates, the ACL.

Real Mosquitto processes, each on a free port with its files in tmp_path and stopped by pid;
`daq run` as a subprocess; `mosquitto_sub` / `mosquitto_pub` as the other clients. The TLS and
ACL tests run the shipped broker files in config/mosquitto/, only paths and port changed.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from daq import redact
from daq.config import apply_env, build_config
from daq.exceptions import ConfigError
from daq.station.station import Station
from tests.support.certs import Ca, Pki, make_pki
from tests.support.procs import REPO, Mosquitto, Sub, clean_env, daq_cmd, need, wait_for

SHIPPED = REPO / "config" / "mosquitto"
# As root, Mosquitto switches to user mosquitto, which cannot read files in tmp_path: stay root.
# (The setting does nothing when the tests run as another user.) log_type all: see every
# connection attempt and every denied publish.
TEST_TAIL = ["user root", "persistence false", "log_dest stderr", "log_type all"]

PASSWORD_HINT = "Check broker.username and the password"
PUBLISHER_FIX = (
    "daq/mqtt/client.py connect() must build the fatal message with daq.mqtt.refusal.connect_failure(exc, "
    "broker) instead of appending the password hint to every refusal: a TLS problem is not a password problem"
)


# -- brokers ------------------------------------------------------------------------------


class Broker(Mosquitto):
    """Mosquitto with a config we write (the helper's is anonymous and plain); '@PORT@' is the port."""

    def __init__(self, folder: Path, conf: Sequence[str]) -> None:
        super().__init__(folder)
        self.conf = list(conf)

    def write_conf(self) -> Path:
        path = self.folder / "mosquitto.conf"
        lines = [line.replace("@PORT@", str(self.port)) for line in self.conf]
        path.write_text("\n".join([*lines, *TEST_TAIL]) + "\n")
        self.logs_subscriptions = True  # log_type all: Sub.wait_subscribed finds each subscription in the log
        return path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass
class Users:
    file: Path
    passwords: dict[str, str]


def make_users(folder: Path, names: Sequence[str]) -> Users:
    """A Mosquitto password file with a fresh random password for each name."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "passwd"
    passwords = {name: secrets.token_hex(10) for name in names}
    for i, (name, password) in enumerate(passwords.items()):
        args = [need("mosquitto_passwd"), "-b", *(["-c"] if i == 0 else []), str(file), name, password]
        subprocess.run(args, check=True, capture_output=True)
    return Users(file, passwords)


def plain_conf(users: Users, acl: Path | None = None) -> list[str]:
    lines = ["listener @PORT@ 127.0.0.1", "allow_anonymous false", f"password_file {users.file}"]
    if acl is not None:
        lines.append(f"acl_file {acl}")
    return lines


def shipped_tls_conf(
    folder: Path, pki: Pki, users: Users, server: str = "server", require_certificate: bool = False
) -> list[str]:
    """config/mosquitto/mosquitto-tls.conf with its files in `folder` and the test's port."""
    for name, source in (
        ("passwd", users.file),
        ("acl", SHIPPED / "acl"),
        ("ca.crt", pki.ca.cert),
        ("server.crt", pki.ca.folder / f"{server}.crt"),
        ("server.key", pki.ca.folder / f"{server}.key"),
    ):
        if source != folder / name:
            shutil.copyfile(source, folder / name)
    text = (SHIPPED / "mosquitto-tls.conf").read_text(encoding="utf-8")
    for old, new in (("listener 8883", "listener @PORT@ 127.0.0.1"), ("/etc/mosquitto/dialdaq/", f"{folder}/")):
        assert old in text, f"config/mosquitto/mosquitto-tls.conf no longer has {old!r}: update this test"
        text = text.replace(old, new)
    if require_certificate:
        assert "#require_certificate true" in text
        text = text.replace("#require_certificate true", "require_certificate true")
    return text.splitlines()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", client_name="lab-a")


class Stoppable(Protocol):
    def stop(self) -> None: ...


@pytest.fixture
def procs() -> Iterator[list[Stoppable]]:
    """Every broker and subscriber a test starts, stopped (by pid) when it ends, pass or fail."""
    started: list[Stoppable] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.stop()


def start(procs: list[Stoppable], folder: Path, conf: Sequence[str]) -> Broker:
    broker = Broker(folder, conf)
    procs.append(broker)
    return broker.start()


def subscribe(procs: list[Stoppable], sub: Sub) -> Sub:
    procs.append(sub)
    sub.wait_subscribed()  # the subscription in place before the first message
    return sub


# -- the daemon -----------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_daq(args: Sequence[str], cwd: Path, timeout: float = 20, **env: str) -> Run:
    """`python -m daq ARGS` to its end; subprocess.run kills it (by pid) should it overrun `timeout`."""
    began = time.monotonic()
    done = subprocess.run(
        daq_cmd(*args), cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - began)


def write_station_config(path: Path, url: str, station: str = "lab-a", **tls: Any) -> Path:
    lines = [
        "[station]",
        f'id = "{station}"',
        "[broker]",
        f'url = "{url}"',
        f'username = "{station}"',
        f'password_file = "{path.parent / "station-password"}"',
    ]
    if tls:
        lines.append("[broker.tls]")
        for key, value in tls.items():
            lines.append(f"{key} = {str(value).lower()}" if isinstance(value, bool) else f'{key} = "{value}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def samples_of(messages: list[dict[str, Any]], station: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg["topic"].startswith(f"daq/{station}/dials/") and msg["topic"].endswith("/samples"):
            body = msg["payload"]
            out.extend(body if isinstance(body, list) else [body])
    return out


def tls_sub(broker: Broker, out: Path, ca: Ca, password: str, *extra: str) -> Sub:
    return Sub(broker.port, ["daq/#"], out, extra=["--cafile", str(ca.cert), "-u", "recorder", "-P", password, *extra])


def expect_samples(sub: Sub, station: str, run: Run, at_least: int = 20) -> None:
    assert run.code == 0, run.output
    wait_for(
        lambda: len(samples_of(sub.messages(), station)) >= at_least,
        timeout=5,
        what=f"{at_least} samples from {station}",
    )


# -- 1. passwords -----------------------------------------------------------------------------

SIMULATE = ["--simulate", "1", "--rate", "50"]


def test_password_login_publishes_and_never_shows_the_password(tmp_path: Path, procs: list[Stoppable]) -> None:
    users = make_users(tmp_path / "broker", ["lab-s", "recorder"])
    broker = start(procs, tmp_path / "broker", plain_conf(users))
    sub = subscribe(
        procs,
        Sub(
            broker.port, ["daq/#"], tmp_path / "sub.jsonl", extra=["-u", "recorder", "-P", users.passwords["recorder"]]
        ),
    )
    password = users.passwords["lab-s"]
    args = ["-vv", "run", "--broker", broker.url, "--station", "lab-s", *SIMULATE, "--duration", "2"]
    run = run_daq(args, tmp_path, DAQ_BROKER_USERNAME="lab-s", DAQ_BROKER_PASSWORD=password)
    expect_samples(sub, "lab-s", run)
    assert "Sending CONNECT" in run.output, "-vv must show paho's debug lines, or this test checks too little"
    assert password not in run.output


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_wrong_password_exits_2_at_once_with_what_to_check(
    protocol: str, tmp_path: Path, procs: list[Stoppable]
) -> None:
    users = make_users(tmp_path / "broker", ["lab-s"])
    broker = start(procs, tmp_path / "broker", plain_conf(users))
    wrong = secrets.token_hex(10)
    args = ["-vv", "run", "--broker", broker.url, "--mqtt-protocol", protocol, "--station", "lab-s", *SIMULATE]
    run = run_daq([*args, "--duration", "30"], tmp_path, DAQ_BROKER_USERNAME="lab-s", DAQ_BROKER_PASSWORD=wrong)
    assert run.code == 2, run.output
    assert run.seconds < 15, f"a refused login must stop the daemon at once, not after --duration ({run.seconds:.1f} s)"
    assert "refused the connection" in run.stderr
    assert "user name or password" in run.stderr
    assert "broker.username" in run.stderr and "DAQ_BROKER_PASSWORD" in run.stderr
    for secret in (wrong, users.passwords["lab-s"]):
        assert secret not in run.output
    attempts = broker.log().count("not authorised")
    assert 1 <= attempts <= 2, f"no retry storm: the broker saw {attempts} refused logins"


# -- 2. TLS -----------------------------------------------------------------------------------


def tls_broker(
    tmp_path: Path, procs: list[Stoppable], pki: Pki, server: str = "server", require_certificate: bool = False
) -> tuple[Broker, Users]:
    folder = tmp_path / "broker"
    users = make_users(folder, ["lab-a", "recorder"])
    (tmp_path / "station-password").write_text(users.passwords["lab-a"] + "\n")
    conf = shipped_tls_conf(folder, pki, users, server=server, require_certificate=require_certificate)
    return start(procs, folder, conf), users


def station_run(tmp_path: Path, cfg: Path, duration: str = "2") -> Run:
    return run_daq(["run", "--config", str(cfg), "--simulate", "1", "--rate", "50", "--duration", duration], tmp_path)


def test_tls_with_ca_file_publishes(tmp_path: Path, procs: list[Stoppable], pki: Pki) -> None:
    broker, users = tls_broker(tmp_path, procs, pki)
    sub = subscribe(procs, tls_sub(broker, tmp_path / "sub.jsonl", pki.ca, users.passwords["recorder"]))
    cfg = write_station_config(tmp_path / "cfg.toml", f"mqtts://127.0.0.1:{broker.port}", ca_file=pki.ca.cert)
    run = station_run(tmp_path, cfg)
    expect_samples(sub, "lab-a", run)


def test_tls_name_mismatch_is_a_clear_fatal_error(tmp_path: Path, procs: list[Stoppable], pki: Pki) -> None:
    pki.ca.issue("otherhost", sans=("otherhost",))
    broker, _ = tls_broker(tmp_path, procs, pki, server="otherhost")
    cfg = write_station_config(tmp_path / "cfg.toml", f"mqtts://127.0.0.1:{broker.port}", ca_file=pki.ca.cert)
    run = station_run(tmp_path, cfg, duration="30")
    assert run.code == 2, f"a certificate that does not verify is a config problem: exit 2, not retry\n{run.output}"
    assert run.seconds < 15, f"must stop at once, not retry until --duration ({run.seconds:.1f} s)"
    assert "certificate does not verify" in run.stderr and "mismatch" in run.stderr, run.stderr
    assert PASSWORD_HINT not in run.stderr, f"{PUBLISHER_FIX}\n{run.stderr}"
    assert "broker.tls.ca_file" in run.stderr and "check_hostname" in run.stderr, run.stderr


def test_tls_without_hostname_check_accepts_the_same_certificate(
    tmp_path: Path, procs: list[Stoppable], pki: Pki
) -> None:
    pki.ca.issue("otherhost", sans=("otherhost",))
    broker, users = tls_broker(tmp_path, procs, pki, server="otherhost")
    sub = subscribe(procs, tls_sub(broker, tmp_path / "sub.jsonl", pki.ca, users.passwords["recorder"], "--insecure"))
    cfg = write_station_config(
        tmp_path / "cfg.toml", f"mqtts://127.0.0.1:{broker.port}", ca_file=pki.ca.cert, check_hostname=False
    )
    run = station_run(tmp_path, cfg)
    expect_samples(sub, "lab-a", run)


def test_tls_chain_is_still_verified_without_hostname_check(tmp_path: Path, procs: list[Stoppable], pki: Pki) -> None:
    broker, _ = tls_broker(tmp_path, procs, pki)
    stranger = make_pki(tmp_path / "other-pki")  # a CA that did not sign the broker's certificate
    cfg = write_station_config(
        tmp_path / "cfg.toml", f"mqtts://127.0.0.1:{broker.port}", ca_file=stranger.ca.cert, check_hostname=False
    )
    run = station_run(tmp_path, cfg, duration="30")
    assert run.code == 2, run.output
    assert "certificate does not verify" in run.stderr, run.stderr


def test_client_certificate_required(tmp_path: Path, procs: list[Stoppable], pki: Pki) -> None:
    broker, users = tls_broker(tmp_path, procs, pki, require_certificate=True)
    url = f"mqtts://127.0.0.1:{broker.port}"

    without = station_run(
        tmp_path, write_station_config(tmp_path / "no-cert.toml", url, ca_file=pki.ca.cert), duration="30"
    )
    assert without.code == 2, f"no client certificate for a broker that requires one: exit 2\n{without.output}"
    assert without.seconds < 15, f"must stop at once, not after timeouts and retries ({without.seconds:.1f} s)"
    assert "requires a client certificate" in without.stderr, without.stderr
    assert PASSWORD_HINT not in without.stderr, f"{PUBLISHER_FIX}\n{without.stderr}"
    assert "broker.tls.cert_file" in without.stderr, without.stderr

    recorder = pki.ca.issue("recorder", client=True)
    cert_args = ["--cert", str(recorder.cert), "--key", str(recorder.key)]
    sub = subscribe(procs, tls_sub(broker, tmp_path / "sub.jsonl", pki.ca, users.passwords["recorder"], *cert_args))
    cfg = write_station_config(
        tmp_path / "cert.toml", url, ca_file=pki.ca.cert, cert_file=pki.client.cert, key_file=pki.client.key
    )
    run = station_run(tmp_path, cfg)
    expect_samples(sub, "lab-a", run)


# -- 3. the ACL -------------------------------------------------------------------------------


def pub(port: int, user: str, password: str, topic: str, payload: str) -> None:
    subprocess.run(
        [
            need("mosquitto_pub"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-u",
            user,
            "-P",
            password,
            "-t",
            topic,
            "-m",
            payload,
        ],
        capture_output=True,
        timeout=10,
        check=False,
    )


def probes(sub: Sub) -> dict[str, str]:
    return {
        m["payload"]["probe"]: m["topic"]
        for m in sub.messages()
        if isinstance(m["payload"], dict) and "probe" in m["payload"]
    }


def test_acl_keeps_every_client_in_its_place(tmp_path: Path, procs: list[Stoppable]) -> None:
    folder = tmp_path / "broker"
    users = make_users(folder, ["lab-a", "lab-b", "recorder", "intruder"])
    shutil.copyfile(SHIPPED / "acl", folder / "acl")
    broker = start(procs, folder, plain_conf(users, folder / "acl"))
    pw = users.passwords

    def sub(name: str, user: str, topic: str) -> Sub:
        return subscribe(
            procs, Sub(broker.port, [topic], tmp_path / f"{name}.jsonl", extra=["-u", user, "-P", pw[user]])
        )

    recorder = sub("recorder", "recorder", "daq/#")
    intruder = sub("intruder", "intruder", "daq/#")
    lab_a_cmd = sub("lab-a-cmd", "lab-a", "daq/lab-a/cmd/#")
    lab_b = sub("lab-b", "lab-b", "daq/#")
    args = ["run", "--broker", broker.url, "--station", "lab-a", *SIMULATE, "--duration", "1.5"]
    run = run_daq(args, tmp_path, DAQ_BROKER_USERNAME="lab-a", DAQ_BROKER_PASSWORD=pw["lab-a"])
    expect_samples(recorder, "lab-a", run)

    # Denied first, then an allowed sentinel on the same path: once a sentinel is in, a denied
    # message published before it would be in too.
    pub(broker.port, "lab-a", pw["lab-a"], "daq/lab-b/dials/x/samples", '{"probe": "a-into-b"}')
    pub(broker.port, "recorder", pw["recorder"], "daq/lab-a/cmd/mark", '{"probe": "recorder-cmd"}')
    pub(broker.port, "recorder", pw["recorder"], "daq/recorder/status", '{"probe": "recorder-as-station"}')
    pub(broker.port, "intruder", pw["intruder"], "daq/lab-a/status", '{"probe": "intruder"}')
    pub(broker.port, "lab-a", pw["lab-a"], "daq/lab-a/dials/x/samples", '{"probe": "sentinel-samples"}')
    pub(broker.port, "lab-a", pw["lab-a"], "daq/lab-a/cmd/mark", '{"probe": "sentinel-cmd"}')
    wait_for(lambda: "sentinel-samples" in probes(recorder), timeout=5, what="the recorder's sentinel")
    wait_for(lambda: "sentinel-cmd" in probes(lab_a_cmd), timeout=5, what="lab-a's command sentinel")
    time.sleep(0.2)

    assert set(probes(recorder)) == {"sentinel-samples", "sentinel-cmd"}, "recorder reads daq/#, nothing denied"
    assert set(probes(lab_a_cmd)) == {"sentinel-cmd"}, "nobody but lab-a may write lab-a's commands"
    assert intruder.messages() == [], "a user that is neither the station nor the recorder reads nothing"
    assert lab_b.messages() == [], "a station reads nothing of another station"
    log = broker.log()
    denied = [line for line in log.splitlines() if "Denied PUBLISH" in line]
    for topic in ("daq/lab-b/dials/x/samples", "daq/lab-a/cmd/mark", "daq/recorder/status", "daq/lab-a/status"):
        assert any(f"'{topic}'" in line for line in denied), f"the broker should have denied {topic}: {denied}"
    daemon_denied = [line for line in log.splitlines() if "Denied" in line and "daq-lab-a" in line]
    assert daemon_denied == [], f"the station itself stays within the ACL: {daemon_denied}"


def acl_lines(access: str) -> list[str]:
    """The ACL's pattern topics that grant `access` ('read' or 'write') to a station."""
    out = []
    for line in (SHIPPED / "acl").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "pattern" and parts[1] in (access, "readwrite"):
            out.append(parts[2])
    return out


def covered(topic_filter: str, acl_topic: str) -> bool:
    """Every topic that `topic_filter` matches is matched by `acl_topic`."""
    wanted, allowed = topic_filter.split("/"), acl_topic.split("/")
    for i, level in enumerate(allowed):
        if level == "#":
            return True
        if i >= len(wanted) or wanted[i] == "#":
            return False
        if level != "+" and wanted[i] != level:
            return False
    return len(wanted) == len(allowed)


def test_acl_covers_everything_a_station_reads_and_writes() -> None:
    config = build_config({"station": {"id": "lab-a"}, "dials": [{"id": "p01", "simulate": {}}]})
    station = Station(config)
    reads = [t.replace("%u", "lab-a") for t in acl_lines("read")]
    writes = [t.replace("%u", "lab-a") for t in acl_lines("write")]
    for topic in station.publisher.subscriptions:
        assert any(covered(topic, acl) for acl in reads), f"the station subscribes to {topic}: add it to the acl"
    t = station.topics
    for topic in (t.status, t.session, t.health, t.events, t.meta("p01"), t.samples("p01"), t.cmd_reply("mark")):
        assert any(covered(topic, acl) for acl in writes), f"the station publishes {topic}: add it to the acl"
    assert not any(covered("daq/lab-b/status", acl) for acl in reads + writes)


# -- 4. config: nothing outside the station's subtree ------------------------------------------

BAD_IDS = ["lab/a", "lab+", "lab#", "+", "#", "lab a", " lab", "", "$SYS"]
BAD_ROOTS = ["daq/+", "daq/#", "#", "da q", "/daq", "daq/", "daq//x", "$SYS"]
DIAL = {"id": "p01", "simulate": {}}


@pytest.mark.parametrize("value", BAD_IDS)
def test_station_id_outside_the_rules_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="not a valid id") as info:
        build_config({"station": {"id": value}, "dials": [DIAL]})
    assert info.value.key == "station.id"
    with pytest.raises(ConfigError, match="not a valid id"):
        build_config(apply_env({"dials": [DIAL]}, {"DAQ_STATION": value or " "}))


@pytest.mark.parametrize("value", BAD_IDS)
def test_dial_id_outside_the_rules_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="not a valid id") as info:
        build_config({"station": {"id": "lab-a"}, "dials": [{**DIAL, "id": value}]})
    assert info.value.key == "dials[0].id"


@pytest.mark.parametrize("value", BAD_ROOTS)
def test_topic_root_outside_the_rules_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="not a valid topic root") as info:
        build_config({"station": {"id": "lab-a", "root": value}, "dials": [DIAL]})
    assert info.value.key == "station.root"


def test_good_ids_and_nested_root_are_accepted() -> None:
    config = build_config({"station": {"id": "Lab_A.2-x", "root": "org/daq"}, "dials": [{**DIAL, "id": "p.07_b-1"}]})
    assert Station(config).topics.samples("p.07_b-1") == "org/daq/Lab_A.2-x/dials/p.07_b-1/samples"


@pytest.mark.parametrize(
    ("option", "value", "key"), [("--station", "lab-a/#", "station.id"), ("--root", "daq/+", "station.root")]
)
def test_daemon_refuses_a_wildcard_before_connecting(option: str, value: str, key: str, tmp_path: Path) -> None:
    # A socket listens where the broker would be: the daemon must stop on the config before it
    # connects there (a timed bound would fail on a loaded machine, this cannot).
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        run = run_daq(
            [
                "run",
                "--broker",
                f"mqtt://127.0.0.1:{port}",
                "--station",
                "lab-a",
                option,
                value,
                "--simulate",
                "1",
                "--duration",
                "5",
            ],
            tmp_path,
        )
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert run.code == 2, run.output
    assert key in run.stderr and value in run.stderr, run.stderr


@pytest.mark.parametrize(
    "broker",
    [
        {"url": "mqtp://lab-a:S3cr3t-pw@broker"},
        {"url": "mqtt://lab-a:S3cr3t-pw@broker:99999"},
        {"url": "mqtt://lab-a:S3cr3t-pw@broker/path"},
        {"password": 31415926535},
    ],
)
def test_config_errors_never_echo_a_secret(broker: dict[str, Any]) -> None:
    secret = "31415926535" if "password" in broker else "S3cr3t-pw"
    with pytest.raises(ConfigError) as info:
        build_config({"broker": broker, "dials": [DIAL]})
    assert secret not in str(info.value), (
        "a config error must not print the password (DAQ_BROKER_URL may carry one): daq/config.py "
        "parse_broker_url must not put the url in its message, and daq/validation.py _explain must not "
        f"show the input of broker.url / broker.password: {info.value}"
    )


# -- secrets in logs ------------------------------------------------------------------------------


def test_redact_filter_masks_a_registered_secret(caplog: pytest.LogCaptureFixture) -> None:
    secret = secrets.token_hex(8)
    redact.register(secret)
    handler = caplog.handler
    handler.addFilter(redact.RedactFilter())
    log = logging.getLogger("daq.test_security")
    try:
        log.warning("connecting with %s", secret)
        try:
            raise ValueError(f"bad {secret}")
        except ValueError:
            log.exception("failed")
    finally:
        handler.filters.clear()
        redact.forget_all()
    assert secret not in caplog.text
    assert caplog.text.count(redact.MASK) >= 2
    assert redact.scrub(f"x{secret}y") == f"x{secret}y", "forget_all drops the secrets"
