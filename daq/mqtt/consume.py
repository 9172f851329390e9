"""Consume until stop: take each message, write it, then acknowledge it (manual acks), in batches.

`consume(connection, stop, handle, commit=...)` is a subscriber's whole `on_connected`: it hands
every message to `handle` (synchronous: decode, write), and on a connection opened with
`manual_ack=True` acknowledges QoS 1 messages only after `commit()` ran (flush what was written),
in the order they arrived, whenever the local queue runs empty or `ack_batch` are waiting. So a
subscriber killed mid-way loses nothing the broker still holds for it: what was not acknowledged
is sent again. `consume_until_quiet` takes what is still on its way (leaving a shared group).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from daq.mqtt.client import Connection, MqttError
from daq.mqtt.message import Message

ACK_BATCH = 100  # acknowledge at the latest after this many messages, even if more are waiting
YIELD_EVERY = 100  # messages taken from the local queue in a row before giving other tasks a turn

Handle = Callable[[Message], None]


class _Acks:
    """Messages taken and not yet acknowledged; `commit` then ack, in arrival order."""

    def __init__(self, connection: Connection, commit: Callable[[], None] | None, batch: int) -> None:
        self.connection = connection
        self.commit = commit
        self.batch = batch
        self.unacked: list[Message] = []
        self.uncommitted = 0  # messages taken since the last commit

    def took(self, message: Message) -> None:
        self.uncommitted += 1
        if self.connection.manual_ack and message.qos > 0:
            self.unacked.append(message)
        if self.connection.queued == 0 or self.uncommitted >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.commit is not None and self.uncommitted:
            self.commit()
        self.uncommitted = 0
        for message in self.unacked:
            self.connection.ack(message)
        self.unacked.clear()


async def consume(
    connection: Connection,
    stop: asyncio.Event,
    handle: Handle,
    *,
    commit: Callable[[], None] | None = None,
    ack_batch: int = ACK_BATCH,
    tick: Callable[[], None] | None = None,
    tick_s: float = 0.5,
) -> None:
    """Hand every message to `handle` until `stop` is set; MqttError when the connection is lost.

    commit: runs before each batch of acks (and once more on the way out, when the connection
    was lost: what was written is kept, what was not acknowledged the broker sends again).
    tick: periodic work, run after every message and at least every `tick_s`.
    """
    acks = _Acks(connection, commit, ack_batch)
    stopper = asyncio.create_task(stop.wait())  # one task for the whole run: a stop ends the wait
    stopper.add_done_callback(lambda _task: connection.wake())
    within_s = tick_s if tick is not None else None
    in_a_row = 0  # messages taken without waiting: let the loop's other tasks run now and then
    try:
        while not stop.is_set():
            message = connection.receive_nowait()
            if message is None:
                in_a_row = 0
                await connection.wait(within_s)  # a message, the stop, the tick, or MqttError
                message = connection.receive_nowait()
            else:
                in_a_row += 1
                if in_a_row >= YIELD_EVERY:
                    in_a_row = 0
                    await asyncio.sleep(0)
            if message is not None:
                handle(message)
                acks.took(message)
            if tick is not None:
                tick()
        acks.flush()
    finally:
        stopper.cancel()
        if acks.uncommitted and commit is not None:
            commit()


async def consume_until_quiet(
    connection: Connection,
    handle: Handle,
    *,
    commit: Callable[[], None] | None = None,
    idle_s: float = 0.5,
    max_s: float = 10.0,
    ack_batch: int = ACK_BATCH,
) -> int:
    """Take what still arrives until nothing came for `idle_s` (at most `max_s`); the count taken.

    For leaving a shared group after unsubscribing: what the broker already gave us is written and
    acknowledged before we disconnect. A lost connection ends it quietly."""
    acks = _Acks(connection, commit, ack_batch)
    deadline = time.monotonic() + max_s
    taken = 0
    try:
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(connection.receive(), idle_s)
            except (TimeoutError, MqttError):
                break
            handle(message)
            taken += 1
            acks.took(message)
    finally:
        with contextlib.suppress(MqttError):
            acks.flush()
    return taken
