"""A fast dial's samples gather for up to `[publish] gather_ms` after its last message (5 ms by default).

A dial read at 1 kHz would put one sample in each message, and the broker and every subscriber pay
per message. A dial whose samples come faster than two per `gather_ms` (its mean interval, a
moving average, under `gather_ms / 2`: above 400 Hz at 5 ms) has the samples that come within
`gather_ms` of its last message wait until then and go together in one array (about 5 per message
at 1 kHz). Slower dials never wait: a 100 Hz dial's samples go out as they are read, also when
scheduling jitter brings two of them close. Other dials never wait for a fast one. Held entries
are in flight for the outbox (taken, not yet sent): a lost connection requeues them with the rest.
`gather_ms = 0` sends every sample as soon as it is read.

(Waiting for the last message's PUBACK instead was measured and not kept: a broker that leaves
Nagle on, as Mosquitto does, holds later PUBACKs until the station's delayed TCP ACK, up to 40 ms;
a window for every dial was not kept either: jitter made 100 Hz dials wait.)
"""

from __future__ import annotations

from daq.outbox.base import Entry

__all__ = ["Gathering", "by_topic"]


def by_topic(entries: list[Entry]) -> dict[str, list[Entry]]:
    """Entries grouped by topic, order kept within a topic."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.topic, []).append(entry)
    return groups


class Gathering:
    def __init__(self, gather_s: float) -> None:
        self.gather_s = gather_s
        self._sent: dict[str, float] = {}  # when a topic's last message went (loop time)
        self._held: dict[str, list[Entry]] = {}
        self._seen: dict[str, float] = {}  # when a topic's entries last came (loop time)
        self._interval: dict[str, float] = {}  # its seconds per sample, a moving average

    def _free_at(self, topic: str) -> float:
        return self._sent.get(topic, float("-inf")) + self.gather_s

    def ready(self, now: float) -> bool:
        """Some held samples may go now."""
        return any(now >= self._free_at(topic) for topic in self._held)

    def deadline(self) -> float | None:
        """When the next held samples may go (loop time), or None when none are held."""
        return min(self._free_at(topic) for topic in self._held) if self._held else None

    def route(self, entries: list[Entry], now: float) -> dict[str, list[Entry]]:
        """What goes out now, by topic (held samples first, then new ones); the rest is held."""
        out: dict[str, list[Entry]] = {}
        for topic in [t for t in self._held if now >= self._free_at(t)]:
            out[topic] = self._held.pop(topic)
        for topic, group in by_topic(entries).items():
            fast = self._observe(topic, len(group), now)
            if topic in out:
                out[topic] += group
            elif topic in self._held:
                self._held[topic] += group
            elif fast and now < self._free_at(topic):
                self._held[topic] = group
            else:
                out[topic] = group
        for topic in out:
            self._sent[topic] = now
        return out

    def _observe(self, topic: str, count: int, now: float) -> bool:
        """Count `count` new samples of `topic` at `now`: whether it is a fast dial (see the module doc)."""
        seen = self._seen.get(topic)
        self._seen[topic] = now
        if seen is None:
            return False
        per_sample = (now - seen) / count
        mean = self._interval.get(topic)
        mean = per_sample if mean is None else 0.8 * mean + 0.2 * per_sample
        self._interval[topic] = mean
        return mean < self.gather_s / 2

    def clear(self) -> None:
        """Forget what is held (the outbox is about to requeue everything in flight, these included)."""
        self._held.clear()
