"""daq.mqtt.wire against a real Mosquitto: merged writes, buffered reads and the PUBACK fast path
lose, reorder or double nothing, also when the kernel's socket buffer fills."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import subprocess

import pytest

from daq import mqtt
from daq.config import BrokerConfig, build_config
from daq.mqtt import wire
from tests.support.procs import Mosquitto, need


def broker_config(port: int, protocol: str) -> BrokerConfig:
    return build_config({"broker": {"url": f"mqtt://127.0.0.1:{port}", "protocol": protocol}}).broker


async def burst(broker: BrokerConfig, count: int, size: int, subscriber: bool) -> tuple[list[str | None], list[int]]:
    """Publish `count` messages of `size` bytes in one loop turn with publish_nowait; return the ack
    results in ack order and the numbers a subscriber received, in order."""
    received: list[int] = []
    acks: list[str | None] = []
    done = asyncio.Event()
    options = mqtt.ConnectOptions("wire-pub", max_inflight=0)
    async with mqtt.connect(broker, mqtt.ConnectOptions("wire-sub")) as sub, mqtt.connect(broker, options) as pub:
        if subscriber:
            await sub.subscribe(["wire/#"])
        order: list[int] = []

        def on_ack(i: int, failure: str | None) -> None:
            order.append(i)
            acks.append(failure)
            if len(acks) == count:
                done.set()

        pad = b"x" * size
        for i in range(count):  # all queued before the loop runs again: one flush
            pub.publish_nowait(f"wire/{i % 7}", b"%d " % i + pad, functools.partial(on_ack, i))
        await asyncio.wait_for(done.wait(), 60)
        assert order == list(range(count))  # PUBACKs come, and are handed on, in publish order
        while subscriber and len(received) < count:
            message = await asyncio.wait_for(sub.receive(), 30)
            received.append(int(message.payload.split(b" ", 1)[0]))
    return acks, received


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_burst_larger_than_the_socket_buffer_arrives_whole_and_in_order(mosquitto: Mosquitto, protocol: str) -> None:
    """3,000 messages of 4 KiB (12 MB) queued in one turn: the merged send meets a full kernel
    buffer, waits for the socket to be writable, and goes on; every one is acked once, in order."""
    count = 3000
    acks, received = asyncio.run(burst(broker_config(mosquitto.port, protocol), count, 4096, subscriber=True))
    assert acks == [None] * count
    # Per topic, the subscriber sees them in publish order (the broker keeps order per topic).
    for topic in range(7):
        mine = [i for i in received if i % 7 == topic]
        assert mine == sorted(mine)
    assert sorted(received) == list(range(count))


def test_a_puback_saying_no_subscribers_is_a_success(mosquitto: Mosquitto) -> None:
    """MQTT 5: with nobody subscribed Mosquitto answers "no matching subscribers" (0x10), a success:
    the fast path takes it as delivered to the broker."""
    acks, _ = asyncio.run(burst(broker_config(mosquitto.port, "5"), 500, 10, subscriber=False))
    assert acks == [None] * 500


def test_many_small_messages_and_their_pubacks_in_few_reads(mosquitto: Mosquitto) -> None:
    """Many PUBACKs arrive in one read: each is handled, none waits for a readiness event that
    will not come (they sit in our buffer, not the kernel's)."""
    acks, received = asyncio.run(burst(broker_config(mosquitto.port, "5"), 5000, 0, subscriber=True))
    assert acks == [None] * 5000
    assert sorted(received) == list(range(5000))


def test_retained_wildcards_and_no_connection(mosquitto: Mosquitto) -> None:
    """The flag of a retained message reaches a later subscriber; a topic MQTT cannot publish to
    is refused with ValueError, as paho's publish does; after the connection, MqttError."""
    broker = broker_config(mosquitto.port, "5")

    async def main() -> tuple[bytes, bool]:
        done = asyncio.Event()
        async with mqtt.connect(broker, mqtt.ConnectOptions("wire-retain", max_inflight=0)) as pub:
            pub.publish_nowait("wire-retained/a", b"kept", lambda failure: done.set(), retain=True)
            await asyncio.wait_for(done.wait(), 10)
            for topic in ("wire/+", "wire/#", ""):
                with pytest.raises(ValueError):
                    pub.publish_nowait(topic, b"x", lambda failure: None)
            closed = pub
        with pytest.raises(mqtt.MqttError):
            closed.publish_nowait("wire/after", b"x", lambda failure: None)
        async with mqtt.connect(broker, mqtt.ConnectOptions("wire-late")) as late:
            await late.subscribe(["wire-retained/#"])
            message = await asyncio.wait_for(late.receive(), 10)
        return message.payload, message.retain

    assert asyncio.run(main()) == (b"kept", True)


async def acked_ms(pub: mqtt.Connection, count: int) -> float:
    """Publish `count` sample-sized messages in one loop turn; the ms until the last PUBACK."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    left = [count]

    def on_ack(failure: str | None) -> None:
        assert failure is None
        left[0] -= 1
        if not left[0]:
            done.set()

    start = loop.time()
    for i in range(count):
        pub.publish_nowait(f"acks/{i}", b"%d " % i + b"x" * 240, on_ack)
    await asyncio.wait_for(done.wait(), 10)
    return (loop.time() - start) * 1000


@pytest.mark.skipif(wire._QUICKACK is None, reason="TCP_QUICKACK is Linux's")
def test_the_pubacks_of_a_burst_come_together_not_after_the_delayed_ack(mosquitto: Mosquitto) -> None:
    """A tick as the demo's dials make it: one sample, then (its PUBACK just read) three more. That
    send right after a read puts the station's TCP into delayed-ACK ("pingpong") mode; Mosquitto
    (Nagle on) sends the three's first PUBACK and holds the others until that one's TCP ACK, which
    the station's kernel then delays 40 ms (TCP_DELACK_MIN). Without TCP_QUICKACK the last PUBACK
    came 40.6-44.7 ms after the publish, every tick (measured 2026-12-02); with it, 0.1-0.3 ms."""

    async def main() -> list[float]:
        spans = []
        async with mqtt.connect(broker_config(mosquitto.port, "5"), mqtt.ConnectOptions("acks", max_inflight=0)) as pub:
            for _ in range(7):
                await asyncio.sleep(0.05)  # the idle moment between two ticks at 20 Hz
                await acked_ms(pub, 1)
                spans.append(await acked_ms(pub, 3))
        return spans

    spans = asyncio.run(main())
    assert sorted(spans)[len(spans) // 2] < 20, spans


# -- receiving: plain PUBLISHes become Messages here, the rest takes paho's path, in order ---------


def mosquitto_pub(broker: Mosquitto, topic: str, payload: bytes, *extra: str) -> None:
    subprocess.run(
        [need("mosquitto_pub"), "-p", str(broker.port), "-V", "mqttv5", "-t", topic, "-s", *extra],
        input=payload,
        check=True,
        timeout=30,
    )


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_received_messages_keep_order_flags_and_properties_whichever_path_takes_them(
    mosquitto: Mosquitto, protocol: str
) -> None:
    """Plain QoS 1 and QoS 0 messages, a retained one, one with a response topic and correlation
    data (both taken here under MQTT 5), one with a user property and one with a QoS 2 (paho's
    path) and one larger than a read (not all here at once): all arrive whole, once, in order,
    with their flags; the QoS 1 ones are acknowledged (none comes again on a new connection)."""
    broker = broker_config(mosquitto.port, protocol)
    big = b"B" * (3 * wire.READ_CHUNK + 17)
    sent = [
        ("in/a", b"one", ["-q", "1"]),
        ("in/b", b"two", ["-q", "0"]),
        ("in/c", b"kept", ["-q", "1", "-r"]),
        (
            "in/d",
            b"ask",
            ["-q", "1", "-D", "publish", "response-topic", "re/x", "-D", "publish", "correlation-data", "c1"],
        ),
        ("in/e", b"user", ["-q", "1", "-D", "publish", "user-property", "k", "v"]),
        ("in/f", b"exactly", ["-q", "2"]),
        ("in/g", big, ["-q", "1"]),
        ("in/h", b"last", ["-q", "1"]),
    ]

    async def main() -> tuple[list[mqtt.Message], int, int]:
        got: list[mqtt.Message] = []
        options = mqtt.ConnectOptions("wire-in", clean=False, session_expiry_s=60)
        async with mqtt.connect(broker, options) as sub:
            await sub.subscribe(["in/#"], qos=2)
            for topic, payload, extra in sent:
                await asyncio.to_thread(mosquitto_pub, mosquitto, topic, payload, *extra)
            while len(got) < len(sent):
                got.append(await asyncio.wait_for(sub.receive(), 30))
            taken = sub._client._wire.taken
        again = 0
        async with mqtt.connect(broker, options) as sub:  # the same session: what was not acked comes again
            with contextlib.suppress(TimeoutError):
                while True:
                    await asyncio.wait_for(sub.receive(), 1.0)
                    again += 1
        return got, again, taken

    got, again, taken = asyncio.run(main())
    # Taken here: a, b, c, d, h (and e under 3.1.1, which carries no user property); paho took the
    # rest: e's user property (MQTT 5), f (QoS 2), g (not all in one read).
    assert taken == (5 if protocol == "5" else 6)
    assert [(m.topic, m.payload) for m in got] == [(t, p) for t, p, _ in sent]
    assert [m.qos for m in got] == [1, 0, 1, 1, 1, 2, 1, 1]
    assert [m.retain for m in got] == [False, False, False, False, False, False, False, False]  # live, not retained
    asked = got[3]
    if protocol == "5":
        assert (asked.response_topic, asked.correlation_data) == ("re/x", b"c1")
    else:
        assert (asked.response_topic, asked.correlation_data) == (None, None)
    assert again == 0, "every QoS 1 and 2 message was acknowledged"
