"""daq.mqtt.wire's reading of received PUBLISHes, packet by packet, against paho's own: real paho
clients on socketpairs (no broker), one with WireIO installed and one without, fed the same bytes.
What WireIO takes must come out as paho would have delivered it; what it must not take (protocol
errors, properties it does not read, packets split across reads) must reach paho unchanged."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, _ConnectionState

from daq.mqtt.client import _message
from daq.mqtt.message import Message
from daq.mqtt.wire import NAME_CACHE_BYTES, WireIO, _varint


def publish(topic: bytes, payload: bytes, qos: int = 1, mid: int = 7, props: bytes = b"", v5: bool = True) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"")
    body += (_varint(len(props)) + props if v5 else b"") + payload
    return bytes([0x30 | qos << 1]) + _varint(len(body)) + body


class Side:
    """One paho client reading from a socketpair; `wired`: with WireIO installed, as DaqClient does."""

    def __init__(self, v5: bool, wired: bool, loop: asyncio.AbstractEventLoop) -> None:
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        self.ours, self.far = socket.socketpair()
        self.ours.setblocking(False)
        self.client._sock = self.ours
        self.client._state = _ConnectionState.MQTT_CS_CONNECTED
        self.client.on_socket_register_write = lambda *args: None
        self.got: list[Message] = []
        self.client.on_message = lambda client, userdata, raw: self.got.append(
            _message(aiomqtt.Message._from_paho_message(raw))
        )
        self.wire: WireIO | None = None
        self.acked: list[str | None] = []
        if wired:
            self.wire = WireIO(loop, self.client, lambda exc: None, {5: self.acked.append})
            self.wire.deliver = self.got.append

    def feed(self, *parts: bytes) -> tuple[list[Message], list[Any], list[bytes], bool]:
        """(messages delivered, loop_read outcomes, packets queued to send, whether paho closed)."""
        outcomes: list[Any] = []
        for part in parts:
            self.far.sendall(part)
            for _ in range(20):
                if self.client._sock is None:
                    break
                try:
                    rc = self.client.loop_read()
                except Exception as exc:  # paho's callbacks raise into loop_read (suppress_exceptions off)
                    outcomes.append(type(exc).__name__)
                    break
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    outcomes.append(int(rc))
                    break
        queued = [bytes(p["packet"]) for p in self.client._out_packet]
        return self.got, outcomes, queued, self.client._sock is None

    def close(self) -> None:
        self.far.close()
        if self.client._sock is not None:
            self.client._sock.close()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def both(loop: asyncio.AbstractEventLoop, v5: bool, *parts: bytes) -> tuple[Any, Any, WireIO]:
    wired, plain = Side(v5, True, loop), Side(v5, False, loop)
    try:
        ours, paho = wired.feed(*parts), plain.feed(*parts)
    finally:
        wired.close()
        plain.close()
    assert wired.wire is not None
    return ours, paho, wired.wire


LONG = b"daq/" + b"x" * 300

CASES = {
    # taken here
    "v5 QoS 1": (True, [publish(b"daq/a/dials/d1/samples", b'{"v":1}')], 1),
    "v5 QoS 0": (True, [publish(b"a", b"x", qos=0)], 1),
    "3.1.1 QoS 1": (False, [publish(b"a/b", b"x", v5=False)], 1),
    "response topic, correlation": (True, [publish(b"a", b"x", props=b"\x08\x00\x03r/x\x09\x00\x02c1")], 1),
    "a long topic, not kept": (True, [publish(LONG, b"1"), publish(LONG, b"2")], 2),
    "three in one read": (True, [publish(b"a", b"1") + publish(b"b", b"2", qos=0) + publish(b"c", b"3")], 3),
    # paho's, in turn
    "split across reads": (True, [publish(b"a", b"1")[:5], publish(b"a", b"1")[5:] + publish(b"b", b"2")], 1),
    "QoS 2": (True, [publish(b"a", b"x", qos=2)], 0),
    "a user property": (True, [publish(b"a", b"x", props=b"\x26\x00\x01k\x00\x01v")], 0),
    "response topic twice": (True, [publish(b"a", b"x", props=b"\x08\x00\x01r\x08\x00\x01s")], 0),
    "correlation data twice": (True, [publish(b"a", b"x", props=b"\x09\x00\x01r\x09\x00\x01s")], 0),
    "U+0000 in the response topic": (True, [publish(b"a", b"x", props=b"\x08\x00\x02r\x00")], 0),
    "a wildcard in the topic": (True, [publish(b"a/+", b"x")], 0),
    "U+0000 in the topic": (True, [publish(b"a\x00", b"x")], 0),
    "not UTF-8": (True, [publish(b"a\xff", b"x")], 0),
    "an empty topic (an alias)": (True, [publish(b"", b"x", props=b"\x23\x00\x01")], 0),
    "a five-byte remaining length": (True, [bytes([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]) + b"\0" * 10], 0),
}


@pytest.mark.parametrize(("v5", "parts", "taken"), CASES.values(), ids=CASES.keys())
def test_what_wire_takes_comes_out_as_paho_would_deliver_it(
    loop: asyncio.AbstractEventLoop, v5: bool, parts: list[bytes], taken: int
) -> None:
    ours, paho, wire = both(loop, v5, *parts)
    assert ours == paho  # messages, loop_read outcomes, PUBACKs queued, connection closed or not
    assert wire.taken == taken
    assert all(len(raw) <= NAME_CACHE_BYTES for raw in wire._names), "a long topic is decoded each time, not kept"


def test_an_unknown_refusal_code_neither_raises_nor_delivers_a_message_twice(loop: asyncio.AbstractEventLoop) -> None:
    """A PUBLISH, then the MQTT 5 PUBACK of one of our messages with a reason code paho cannot name."""
    side = Side(True, True, loop)
    try:
        got, outcomes, queued, closed = side.feed(publish(b"t", b"one", mid=9) + b"\x40\x03\x00\x05\x81", b"")
    finally:
        side.close()
    assert [m.payload for m in got] == [b"one"] and outcomes == [] and not closed
    assert queued == [b"\x40\x02\x00\x09"], "one PUBACK for the message, once"
    assert side.acked == ["reason code 0x81"]
