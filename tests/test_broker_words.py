"""Broker addresses without a scheme, and why a broker cannot be reached, in words; the retry summary."""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path

import aiomqtt
import pytest

from daq.commands.run import start_line
from daq.config import BrokerConfig, DaqConfig, build_config
from daq.exceptions import ConfigError
from daq.mqtt import unreachable
from daq.mqtt.unreachable import RetryReport, explain


def wrapped(error: OSError) -> aiomqtt.MqttError:
    """As aiomqtt raises it: an MqttError with the text only, the OSError as its context."""
    try:
        try:
            raise error
        except OSError as exc:
            raise aiomqtt.MqttError(str(exc)) from None
    except aiomqtt.MqttError as outer:
        outer.__context__ = error
        return outer


@pytest.mark.parametrize(
    ("given", "url", "address"),
    [
        ("localhost:1883", "mqtt://localhost:1883", "mqtt://localhost:1883"),
        ("127.0.0.1:1884", "mqtt://127.0.0.1:1884", "mqtt://127.0.0.1:1884"),
        ("broker.lab", "mqtt://broker.lab", "mqtt://broker.lab:1883"),
        ("mqtts://broker.lab", "mqtts://broker.lab", "mqtts://broker.lab:8883"),
    ],
)
def test_a_broker_without_a_scheme_is_mqtt(given: str, url: str, address: str) -> None:
    broker = BrokerConfig(url=given)
    assert broker.url == url
    assert broker.address.display() == address


def test_a_broker_without_a_scheme_through_the_command_line_config() -> None:
    config = build_config({"broker": {"url": "localhost:1883"}}, None)
    assert config.broker.address.display() == "mqtt://localhost:1883"
    with pytest.raises(ConfigError, match=r"must start with mqtt:// or mqtts://.*got http://\.\.\."):
        build_config({"broker": {"url": "http://localhost:1883"}}, None)


def test_unreachable_in_words() -> None:
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert explain(wrapped(gai), "nosuch.invalid", 1883) == "cannot resolve host 'nosuch.invalid'"
    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert explain(wrapped(again), "broker.lab", 1883) == "cannot resolve host 'broker.lab'"
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert explain(wrapped(refused), "127.0.0.1", 1883) == "nothing listens on 127.0.0.1:1883 (connection refused)"
    # The text alone (no context) says the same
    assert explain("[Errno 111] Connection refused", "h", 1) == "nothing listens on h:1 (connection refused)"
    assert explain("[Errno -2] Name or service not known", "h", 1) == "cannot resolve host 'h'"
    unreachable_net = OSError(errno.ENETUNREACH, "Network is unreachable")
    assert explain(wrapped(unreachable_net), "10.0.0.9", 1883) == "no route to 10.0.0.9:1883 (network is unreachable)"
    assert explain(aiomqtt.MqttError("Operation timed out"), "h", 1) == "no answer from h:1 (timed out)"
    assert explain(aiomqtt.MqttError("[code:4] The client is not currently connected."), "h", 1) == "connection lost"
    assert explain(aiomqtt.MqttError("something else"), "h", 1) == "something else"


def test_retries_are_summarised(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = logging.getLogger("test.retry")
    report = RetryReport(log, "station", "mqtt://h:1", summary_s=30, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="test.retry")
    for _ in range(20):  # 20 attempts in 19 s: one line
        report.failed("cannot resolve host 'h'")
        now[0] += 1
    assert [r.getMessage() for r in caplog.records] == [
        "station: cannot reach the broker at mqtt://h:1: cannot resolve host 'h'; retrying (a summary every 30 s)"
    ]
    now[0] += 11  # 31 s after the first
    report.failed("cannot resolve host 'h'")
    assert caplog.records[-1].getMessage() == (
        "station: still no broker at mqtt://h:1 after 31 s: 21 attempts, last error: cannot resolve host 'h'"
    )
    report.failed("nothing listens on h:1 (connection refused)")  # a new reason is said at once
    assert caplog.records[-1].getMessage().endswith("now: nothing listens on h:1 (connection refused)")
    now[0] += 4
    report.connected(", as daq-x")
    assert (
        caplog.records[-1].getMessage()
        == "station: connected to mqtt://h:1 after 35 s without it (22 failed attempts), as daq-x"
    )
    report.lost("connection lost")
    assert caplog.records[-1].getMessage() == "station: lost the broker at mqtt://h:1 (connection lost); reconnecting"
    report.failed("nothing listens on h:1 (connection refused)")  # the loss was said: no second line
    now[0] += 31
    report.failed("nothing listens on h:1 (connection refused)")
    assert caplog.records[-1].getMessage() == (
        "station: still no broker at mqtt://h:1 after 31 s: 2 attempts, last error: nothing listens on h:1 "
        "(connection refused)"
    )
    assert len(caplog.records) == 6


def test_summary_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAQ_RETRY_SUMMARY_S", "2.5")
    assert unreachable.summary_interval() == 2.5
    for bad in ("", "x", "-1", "0"):
        monkeypatch.setenv("DAQ_RETRY_SUMMARY_S", bad)
        assert unreachable.summary_interval() == 30.0


def test_the_start_line_names_dials_broker_outbox_and_clock(tmp_path: Path) -> None:
    config = DaqConfig.model_validate(
        {
            "station": {"id": "lab-a"},
            "broker": {"url": "broker.lab:1884"},
            "outbox": {"path": str(tmp_path / "ob")},
            "media": {"clock": "session", "rate": "29.97df", "autostart": False},
            "dials": [
                {"id": "k1", "profile": "arduino-uno-pot", "port": "/dev/ttyACM0"},
                {"id": "k2", "profile": "arduino-uno-pot"},
                {"id": "s1", "simulate": {"rate_hz": 12.5}},
            ],
        }
    )
    assert start_line(config) == (
        "station lab-a: 3 dials: k1 (arduino-uno-pot on port=/dev/ttyACM0), k2 (arduino-uno-pot on any port that "
        f"fits), s1 (simulated, 12.5 Hz); broker mqtt://broker.lab:1884; outbox {tmp_path / 'ob'}; media clock "
        "session at 29.97df fps (session waits for a start command)"
    )
