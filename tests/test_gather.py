"""daq.station.gather: a fast dial's samples go together, a slow dial's never wait, nothing is lost,
reordered or doubled, and stopping sends what is held."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from daq.outbox.base import Entry
from daq.station.gather import Gathering

MS = 0.001


def entry(ident: int, topic: str) -> Entry:
    return Entry(ident, topic, topic, b"{}")


def run(gathering: Gathering, arrivals: list[tuple[float, list[Entry]]]) -> list[tuple[float, str, list[int]]]:
    """Route each arrival at its time, and release what is held at its deadline (as the pump does)."""
    sent: list[tuple[float, str, list[int]]] = []

    def route(entries: list[Entry], now: float) -> None:
        for topic, group in gathering.route(entries, now).items():
            sent.append((now, topic, [e.id for e in group]))

    for now, entries in arrivals:
        due = gathering.deadline()
        while due is not None and due <= now:
            route([], due)
            due = gathering.deadline()
        route(entries, now)
    route([], math.inf)  # the stop: everything held goes
    return sent


def test_a_100_hz_dial_never_waits_even_with_jitter() -> None:
    g = Gathering(5 * MS)
    times = [k * 10 * MS + (4 * MS if k % 7 == 3 else 0) for k in range(200)]  # now and then 4 ms late
    sent = run(g, [(t, [entry(k, "slow")]) for k, t in enumerate(times)])
    assert [ids for _, _, ids in sent] == [[k] for k in range(200)]
    assert [when for when, _, _ in sent[:-1]] == times[:-1]


def test_a_1_khz_dial_goes_about_five_samples_a_message_within_the_window() -> None:
    g = Gathering(5 * MS)
    arrivals = [(k * MS, [entry(k, "fast")]) for k in range(1000)]
    sent = run(g, arrivals)
    assert [i for _, _, ids in sent for i in ids] == list(range(1000))  # all, once, in order
    assert len(sent) < 1000 / 3  # a fraction of the messages
    for when, _, ids in sent[1:-1]:
        assert when - ids[0] * MS <= 5 * MS + 1e-9  # none held longer than the window


def test_a_fast_dial_does_not_hold_up_a_slow_one() -> None:
    g = Gathering(5 * MS)
    arrivals = []
    for k in range(300):
        group = [entry(2 * k, "fast")]
        if k % 10 == 0:
            group.append(entry(2 * k + 1, "slow"))
        arrivals.append((k * MS, group))
    sent = run(g, arrivals)
    slow = [(when, ids) for when, topic, ids in sent if topic == "slow"]
    assert slow == [(k * MS, [2 * k + 1]) for k in range(0, 300, 10)]


def test_zero_sends_every_sample_at_once() -> None:
    g = Gathering(0.0)
    sent = run(g, [(k * 0.1 * MS, [entry(k, "t")]) for k in range(100)])
    assert [ids for _, _, ids in sent] == [[k] for k in range(100)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 20 * MS), st.sampled_from("abc"), st.integers(1, 3)), max_size=60))
def test_nothing_is_lost_doubled_or_reordered(steps: list[tuple[float, str, int]]) -> None:
    g = Gathering(5 * MS)
    now, ident, arrivals = 0.0, 0, []
    for gap, topic, count in steps:
        now += gap
        group = []
        for _ in range(count):
            group.append(entry(ident, topic))
            ident += 1
        arrivals.append((now, group))
    sent = run(g, arrivals)
    for topic in "abc":
        got = [i for _, t, ids in sent if t == topic for i in ids]
        want = [e.id for _, group in arrivals for e in group if e.topic == topic]
        assert got == want
    assert g.deadline() is None  # nothing held
