"""Follow a media position that any app publishes over MQTT.

Topic: `<root>/<station>/media/position` (QoS 0 or 1; retained allowed: the daemon then picks up
the player's last word when it starts). Payload, JSON:

    {"position_s": 12.48, "state": "playing", "speed": 1.0, "t_ns": 1795451400123456789}

- `position_s`: the media position in seconds (required unless `state` is "stopped");
- `state`: "playing", "paused" or "stopped";
- `speed`: playback speed, default 1.0;
- `t_ns`: optional wall clock (Unix epoch ns) at which `position_s` was true. Without it the
  message is stamped when it arrives, so broker latency counts against the position.

Bounds (daq.mediaclock.base): `position_s` within +-1e7 s, `speed` above 0 and at most 100, and
`t_ns` within 5 s of the station's clock; a message outside them is refused (the station says so on
`events`) and changes nothing, so a later good message applies as if it had never come. A `t_ns`
ahead of the arrival is kept up to MAX_LEAD_NS (a page reports a frame with the time it will be
presented, a frame or two ahead: samples read before that keep the frame still shown); further
ahead, up to 5 s, it counts as the arrival time plus that lead, so a position is never placed far
in the future (one dated far ahead would make every real report before that time look old).
For a paused or stopped player the time does not move the position, so a `t_ns` outside the
bounds is replaced by the arrival time instead (a retained "paused" message from long ago is
still the player's last word).

A message older than the clock's current segment is ignored (a late or replayed one never
rewrites what samples were already placed by). Between messages the position is modelled from the
speed; a message only re-anchors it when it changes the state or speed or lands more than half a
frame from the model. A player that may vanish should set its MQTT Last Will to
`{"state": "stopped"}` on this topic, so the station stops placing samples on a dead clock.

The clock names its topic (`subscriptions`) and takes its messages (`on_message`): the station
subscribes to it and routes what arrives there (see `daq.mediaclock.base.MessageFedClock`).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from daq.mediaclock.base import ClockChange, ClockInputError, ClockState, check_media_s, check_speed, check_t_ns
from daq.mediaclock.follow import FollowedClock, seconds_to_ns

MAX_LEAD_NS = 250_000_000
"""How far ahead of its arrival a position's `t_ns` is honoured: a presentation time a few frames out."""

STATES: dict[str, ClockState] = {"playing": "running", "paused": "paused", "stopped": "stopped"}


def position_topic(base: str) -> str:
    """`<root>/<station>/media/position`, given `<root>/<station>`."""
    return f"{base}/media/position"


class PositionError(ClockInputError):
    """A position message that cannot be used; the message says what is wrong."""


def _checked(body: dict[str, object], key: str, check: Callable[[object, str], float]) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        return check(value, key)
    except ClockInputError as exc:
        raise PositionError(str(exc)) from None


class MqttFollowClock(FollowedClock):
    kind = "mqtt"
    source = "the MQTT position"

    @staticmethod
    def subscriptions(base_topic: str) -> tuple[str, ...]:
        """The position topic; static, so the station can subscribe before this clock is chosen."""
        return (position_topic(base_topic),)

    def on_message(self, topic: str, payload: bytes, arrival_mono_ns: int, wall_offset_ns: int) -> list[ClockChange]:
        """A message on the position topic (the only one this clock follows): see `feed`."""
        return self.feed(payload, arrival_mono_ns, wall_offset_ns)

    def feed(self, payload: bytes, arrival_mono_ns: int, wall_offset_ns: int) -> list[ClockChange]:
        """Apply one position message; `wall_offset_ns` (wall - monotonic) converts its `t_ns`.

        Raises PositionError for a message that is not a position.
        """
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise PositionError(f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise PositionError("the payload must be a JSON object")
        raw_state = body.get("state")
        state = STATES.get(raw_state) if isinstance(raw_state, str) else None
        if state is None:
            raise PositionError(f"state must be one of {', '.join(STATES)}, not {raw_state!r}")
        position = _checked(body, "position_s", check_media_s)
        speed = _checked(body, "speed", check_speed)
        t_ns = body.get("t_ns")
        if t_ns is not None and (isinstance(t_ns, bool) or not isinstance(t_ns, int)):
            raise PositionError(f"t_ns must be an integer (Unix epoch ns), not {t_ns!r}")
        if position is None and state != "stopped":
            raise PositionError(f"position_s is required when the state is {raw_state}")
        mono_ns = arrival_mono_ns
        if t_ns is not None:
            try:
                check_t_ns(t_ns, arrival_mono_ns + wall_offset_ns)
                mono_ns = min(t_ns - wall_offset_ns, arrival_mono_ns + MAX_LEAD_NS)  # never far in the future
            except ClockInputError as exc:
                if state == "running":  # the position would be extrapolated from a time we cannot trust
                    raise PositionError(str(exc)) from None
        if mono_ns < self.current().mono_ns:
            return []  # older than what the clock already knows
        change = self.follow(mono_ns, state, seconds_to_ns(position) if position is not None else 0, speed or 1.0)
        return [change] if change is not None else []
