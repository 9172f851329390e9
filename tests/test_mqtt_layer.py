"""The MQTT layer against a real Mosquitto: receive, manual acks, refused subscriptions, reconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from daq import mqtt
from daq.config import BrokerConfig, build_config
from daq.exceptions import ConfigError
from daq.mqtt.refusal import refused_subscriptions, subscription_failure
from tests.support.procs import Mosquitto


def broker_config(port: int, protocol: str = "5") -> BrokerConfig:
    return build_config({"broker": {"url": f"mqtt://127.0.0.1:{port}", "protocol": protocol}}).broker


async def publish(broker: BrokerConfig, topic: str, count: int) -> None:
    async with mqtt.connect(broker) as connection:
        for i in range(count):
            await connection.publish(topic, str(i).encode())


def test_receive_is_safe_to_cancel(mosquitto: Mosquitto) -> None:
    """A wait for the next message cut short (a timeout, a stop) loses nothing: the next call gets it."""
    broker = broker_config(mosquitto.port)

    async def main() -> list[bytes]:
        got: list[bytes] = []
        async with mqtt.connect(broker) as connection:
            await connection.subscribe(["t/#"])
            sender = asyncio.create_task(publish(broker, "t/a", 300))
            while len(got) < 300:
                try:
                    message = await asyncio.wait_for(connection.receive(), 0.0005)
                except TimeoutError:
                    continue
                got.append(message.payload)
            await sender
        return got

    assert asyncio.run(main()) == [str(i).encode() for i in range(300)]


def test_consume_waits_without_a_task_per_message_and_ends_on_stop_tick_or_loss(mosquitto: Mosquitto) -> None:
    """`consume` takes every message in order, makes no task per wait (one for the whole run: the
    stop's), ticks while idle, ends a wait with no tick on stop, and raises MqttError when the broker goes."""
    broker = broker_config(mosquitto.port)

    async def main() -> tuple[list[bytes], int, int, str]:
        loop = asyncio.get_running_loop()
        made = 0
        default = loop.get_task_factory()

        def counting(loop_: asyncio.AbstractEventLoop, coro: object, **kwargs: object) -> asyncio.Future[object]:
            nonlocal made
            made += 1
            if default is not None:
                return default(loop_, coro, **kwargs)  # type: ignore[arg-type]
            return asyncio.Task(coro, loop=loop_, **kwargs)  # type: ignore[arg-type]

        got: list[bytes] = []
        all_in = asyncio.Event()
        ticks = 0
        stop = asyncio.Event()

        def take(message: mqtt.Message) -> None:
            got.append(message.payload)
            if len(got) == 200:
                all_in.set()

        def tick() -> None:
            nonlocal ticks
            ticks += 1

        async with mqtt.connect(broker) as sender, mqtt.connect(broker) as connection:
            await connection.subscribe(["c/#"])
            consumer = asyncio.create_task(mqtt.consume(connection, stop, take, tick=tick, tick_s=0.05))
            await asyncio.sleep(0.05)
            loop.set_task_factory(counting)  # type: ignore[arg-type]
            for i in range(200):  # one at a time: the consumer waits before each (no task to send)
                sender.publish_nowait("c/x", str(i).encode(), lambda failure: None)
                await asyncio.sleep(0.001)
            loop.set_task_factory(default)
            await asyncio.wait_for(all_in.wait(), 10)
            ticks = 0
            await asyncio.sleep(0.5)  # idle: ticks every 0.05 s
            idle_ticks = ticks
            stop.set()
            await asyncio.wait_for(consumer, 5)

            untimed_stop = asyncio.Event()  # no tick: only the stop can end its wait
            untimed = asyncio.create_task(mqtt.consume(connection, untimed_stop, lambda m: None))
            await asyncio.sleep(0.1)
            untimed_stop.set()
            await asyncio.wait_for(untimed, 5)  # TimeoutError if the stop did not wake the wait

            lost = asyncio.create_task(mqtt.consume(connection, asyncio.Event(), lambda m: None))
            await asyncio.sleep(0.1)
            mosquitto.stop()
            try:
                await asyncio.wait_for(lost, 10)
                outcome = "returned"
            except mqtt.MqttError as exc:
                outcome = f"MqttError: {exc}"
        return got, made, idle_ticks, outcome

    got, made, idle_ticks, outcome = asyncio.run(main())
    assert got == [str(i).encode() for i in range(200)]
    assert made < 20, f"{made} tasks made while 200 messages came one by one"
    assert 3 <= idle_ticks <= 12, idle_ticks
    assert outcome.startswith("MqttError"), outcome


def test_manual_acks_unacknowledged_messages_come_again(mosquitto: Mosquitto) -> None:
    """With manual_ack a message is acknowledged by `ack` (consume: after commit), else the broker
    sends it again on the next connection of the same persistent session."""
    broker = broker_config(mosquitto.port)
    options = mqtt.ConnectOptions("layer-acks", clean=False, manual_ack=True, session_expiry_s=60)

    async def main() -> tuple[list[mqtt.Message], list[bytes], int]:
        async with mqtt.connect(broker, options) as connection:
            await connection.subscribe(["acks/#"])
            await publish(broker, "acks/x", 5)
            first = [await connection.receive() for _ in range(5)]  # taken, never acknowledged
        stop = asyncio.Event()
        again: list[bytes] = []
        commits: list[int] = []

        def handle(message: mqtt.Message) -> None:
            again.append(message.payload)
            if len(again) == 5:
                stop.set()

        async with mqtt.connect(broker, options) as connection:
            await asyncio.wait_for(
                mqtt.consume(connection, stop, handle, commit=lambda: commits.append(len(again))), 10
            )
        # Mosquitto 2.0 reads a client's packets one per turn of its loop: a session taken over at
        # once by a new connection with the same id can drop PUBACKs still unread on the old one.
        await asyncio.sleep(0.5)
        leftover = 0
        async with mqtt.connect(broker, options) as connection:
            try:
                while True:
                    await asyncio.wait_for(connection.receive(), 1.0)
                    leftover += 1
            except TimeoutError:
                pass
        assert commits, "consume must commit before it acknowledges"
        return first, again, leftover

    first, again, leftover = asyncio.run(main())
    assert [m.payload for m in first] == [str(i).encode() for i in range(5)]
    assert all(m.qos == 1 and m.mid > 0 and m.topic == "acks/x" for m in first)
    assert again == [str(i).encode() for i in range(5)], "unacknowledged messages must come again"
    assert leftover == 0, "what consume acknowledged must not come a third time"


def test_a_refused_subscription_names_the_filter() -> None:
    """SUBACK codes from 0x80 (both protocols) are refusals; the message names the broker and the filter.

    (Mosquitto 2.0 grants every subscription and filters on delivery, so this is checked on the codes.)"""
    broker = broker_config(1883)
    granted = [ReasonCode(PacketTypes.SUBACK, identifier=1), ReasonCode(PacketTypes.SUBACK, "Not authorized")]
    refused = refused_subscriptions(["open/#", "closed/#"], [*granted])
    assert refused == [("closed/#", "Not authorized")]
    assert refused_subscriptions(["a", "b"], [1, 0x80]) == [("b", "128")]
    text = subscription_failure(broker, *refused[0])
    assert "broker mqtt://127.0.0.1:1883 refused the subscription to closed/#: Not authorized" in text


def test_session_keeps_retrying_after_it_has_once_connected(tmp_path: Path) -> None:
    """The broker goes away after the first connect: the session backs off and connects again."""
    proc = Mosquitto(tmp_path / "broker").start()
    port = proc.port
    broker = broker_config(port, protocol="3.1.1")
    session = mqtt.Session(broker, name="test", subscriptions=["s/#"], backoff=mqtt.Backoff(0.05, 0.2))
    seen: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def on_connected(connection: mqtt.Connection) -> None:
            seen.append(session.stats.connects)
            if len(seen) == 1:
                await asyncio.get_running_loop().run_in_executor(None, proc.stop)  # connection lost
                await asyncio.sleep(0.5)
                await asyncio.get_running_loop().run_in_executor(None, proc.start)
            else:
                stop.set()
            await mqtt.consume(connection, stop, lambda message: None)

        await asyncio.wait_for(session.run(stop, on_connected), 30)

    try:
        asyncio.run(main())
    finally:
        proc.stop()
    assert seen == [1, 2]
    assert session.stats.disconnects == 2 and session.stats.last_error
    assert not session.connected.is_set()


def test_a_password_file_that_goes_away_after_the_first_connect_is_retried(tmp_path: Path) -> None:
    """Unreadable at start: ConfigError (exit 2). Unreadable later (being rotated): retried until it is back."""
    proc = Mosquitto(tmp_path / "broker").start()  # anonymous: takes any password
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    data = {"url": f"mqtt://127.0.0.1:{proc.port}", "username": "u", "password_file": str(secret)}
    broker = build_config({"broker": data}).broker
    session = mqtt.Session(broker, name="test", backoff=mqtt.Backoff(0.05, 0.2))
    reasons: list[str | None] = []
    session.on_disconnected = reasons.append
    seen: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def on_connected(connection: mqtt.Connection) -> None:
            seen.append(session.stats.connects)
            if len(seen) == 1:
                secret.unlink()
                await loop.run_in_executor(None, proc.stop)
                await loop.run_in_executor(None, proc.start)
                loop.call_later(1.0, secret.write_text, "s3cret\n")
                raise mqtt.MqttError("connection lost")
            stop.set()

        await asyncio.wait_for(session.run(stop, on_connected), 30)

    try:
        asyncio.run(main())
    finally:
        proc.stop()
    assert seen == [1, 2]
    assert any(r and "password_file" in r for r in reasons), reasons

    secret.unlink()
    with pytest.raises(ConfigError, match="password_file"):  # the same at start: fatal
        asyncio.run(mqtt.Session(broker).run(asyncio.Event(), lambda connection: asyncio.sleep(0)))
