"""The disk outbox (issue 6, "Nothing lost"): order, acks, restarts, kill -9, the size bound, a bad disk."""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import daq.outbox.segments as segments_module
from daq.exceptions import FatalError
from daq.outbox.base import Entry
from daq.outbox.disk import DiskOutbox
from daq.outbox.events import EventSink

REPO = Path(__file__).resolve().parents[1]

Event = tuple[str, str, dict[str, object]]


def body(boot: str, dial: str, seq: int) -> bytes:
    return json.dumps({"boot": boot, "dial": dial, "seq": seq, "pad": "x" * 40}).encode()


def key(entry: Entry) -> tuple[str, str, int]:
    sample = json.loads(entry.payload)
    return sample["boot"], sample["dial"], sample["seq"]


def put_many(box: DiskOutbox, n: int, boot: str = "A", dials: int = 3, start: int = 0) -> None:
    for i in range(start, start + n):
        dial = f"d{i % dials}"
        box.put(dial, f"daq/st/dials/{dial}/samples", body(boot, dial, i // dials))


def drain(box: DiskOutbox, n: int = 64) -> list[Entry]:
    out: list[Entry] = []
    while box.pending:
        got = box.take(n)
        box.ack(got)
        out += got
    return out


def disk_full(fd: int, data: bytes) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def events_sink() -> tuple[list[Event], EventSink]:
    events: list[Event] = []
    return events, lambda kind, message, data: events.append((kind, message, data))


# -- order and acks ----------------------------------------------------------------------


def test_take_is_in_id_order_and_ack_removes(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "ob")
    put_many(box, 30)
    assert (box.pending, box.inflight, box.depth) == (30, 0, 30)
    first = box.take(10)
    assert [e.id for e in first] == list(range(1, 11))
    assert not any(e.replay for e in first)
    assert (box.pending, box.inflight, box.depth) == (20, 10, 30)
    box.ack(first[:4])
    box.ack(first[:4])  # twice: harmless
    assert box.depth == 26
    rest = box.take(100)
    assert [e.id for e in rest] == list(range(11, 31))
    box.ack(first[4:] + rest)
    assert box.depth == 0 and box.take(10) == []
    box.close()
    assert sorted(os.listdir(tmp_path / "ob")) == ["LOCK"]  # all acked: nothing left


def test_requeue_puts_inflight_back_in_order_marked_replay(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "ob")
    put_many(box, 10)
    a = box.take(3)
    b = box.take(3)
    box.ack([b[1]])
    put_many(box, 2, start=10)
    assert box.requeue() == 5
    assert box.requeue() == 0
    again = box.take(100)
    assert [e.id for e in again] == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    assert [e.replay for e in again] == [True] * 5 + [False] * 6
    assert [key(e) for e in again[:3]] == [key(e) for e in a]
    box.close()


def test_wait_returns_for_new_and_for_recovered_entries(tmp_path: Path) -> None:
    async def go() -> None:
        box = DiskOutbox(tmp_path / "ob")
        waiter = asyncio.create_task(box.wait())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        put_many(box, 1)
        await asyncio.wait_for(waiter, 1)
        box.close()
        again = DiskOutbox(tmp_path / "ob")
        await asyncio.wait_for(again.wait(), 1)  # the entry of the earlier run
        again.close()

    asyncio.run(go())


def test_entries_beyond_memory_bytes_are_read_back_from_disk_in_order(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "ob", memory_bytes=2_000, segment_bytes=4_096)
    put_many(box, 200)
    got = box.take(7)
    put_many(box, 100, start=200)  # while part of the queue is only on disk
    got += box.take(150)
    box.requeue()
    got = box.take(1000)
    assert [e.id for e in got] == list(range(1, 301))
    assert [key(e)[2] for e in got if key(e)[1] == "d0"] == list(range(100))
    box.ack(got)
    box.close()
    assert sorted(os.listdir(tmp_path / "ob")) == ["LOCK"]


def test_a_second_process_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "ob")
    with pytest.raises(FatalError, match="in use by another process"):
        DiskOutbox(tmp_path / "ob")
    box.close()
    DiskOutbox(tmp_path / "ob").close()


# -- restarts ------------------------------------------------------------------------------


@pytest.mark.parametrize("crash", [False, True], ids=["close", "crash"])
def test_restart_replays_unacked_entries_and_never_acked_ones(tmp_path: Path, crash: bool) -> None:
    box = DiskOutbox(tmp_path / "ob", segment_bytes=2_000)
    put_many(box, 60, boot="A")
    taken = box.take(25)
    box.ack(taken[:10] + taken[15:20])
    before = {e.id: e.payload for e in taken}
    if crash:
        box._close_files()  # what kill -9 leaves: no seal, no final ack flush
    else:
        box.close()

    again = DiskOutbox(tmp_path / "ob")
    assert again.recovered == 45 and again.pending == 45
    put_many(again, 6, boot="B")
    got = drain(again, n=1000)
    old = [e for e in got if key(e)[0] == "A"]
    assert [e.id for e in old] == [*range(11, 16), *range(21, 61)]
    assert all(e.replay for e in old)
    assert all(before[e.id] == e.payload for e in old if e.id in before)  # own payload: own boot and seq
    new = [e for e in got if key(e)[0] == "B"]
    assert len(new) == 6 and all(e.id > 60 and not e.replay for e in new)
    again.close()
    third = DiskOutbox(tmp_path / "ob")
    assert third.pending == 0  # acked ones never come back
    third.close()


def test_torn_tail_is_cut_and_the_rest_recovered(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "ob")
    put_many(box, 20)
    box._close_files()
    (segment,) = (tmp_path / "ob").glob("seg-*.open")
    with segment.open("ab") as f:
        f.write(b"\x07\x00\x00\x00garbage of a half-written record")
    again = DiskOutbox(tmp_path / "ob")
    assert [e.id for e in drain(again)] == list(range(1, 21))
    again.close()


CHILD = r"""
import sys, time
from pathlib import Path
from daq.outbox.disk import DiskOutbox
from daq.outbox.events import EventSink

box = DiskOutbox(Path(sys.argv[1]), segment_bytes=64 * 1024)
n = int(sys.argv[2])
for i in range(n):
    box.put(f"d{i % 4}", f"daq/st/dials/d{i % 4}/samples", b'{"seq":%d,"boot":"K"}' % i)
    if i == 999:
        box.ack(box.take(300))  # the first 300 reach the broker
        box.take(200)  # 200 more in flight when killed
print("done", flush=True)
time.sleep(60)
"""


def test_kill_9_loses_nothing_put_returned_for(tmp_path: Path) -> None:
    n = 20_000
    folder = tmp_path / "ob"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), str(n)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "done"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    box = DiskOutbox(folder)
    assert box.recovered == n - 300
    got = drain(box, n=500)
    assert [json.loads(e.payload)["seq"] for e in got] == list(range(300, n))
    assert all(e.replay for e in got)
    box.close()


# -- interleaving --------------------------------------------------------------------------


def test_backlog_of_an_earlier_run_drains_beside_live_samples(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "ob", backlog_share=0.25)
    put_many(box, 1000, boot="A")
    box.close()
    box = DiskOutbox(tmp_path / "ob", backlog_share=0.25)
    put_many(box, 300, boot="B")
    first = box.take(40)
    boots = [key(e)[0] for e in first]
    assert boots.count("A") == 10 and boots.count("B") == 30  # live first, the backlog its share
    assert [e.id for e in first] == sorted(e.id for e in first)
    box.ack(first)
    small = [box.take(1) for _ in range(8)]  # n=1: the share carries over, every 4th take
    assert [key(t[0])[0] for t in small] == ["B", "B", "B", "A"] * 2
    for t in small:
        box.ack(t)
    rest = drain(box, n=40)
    by_stream: dict[tuple[str, str], list[int]] = {}
    for e in first + [t[0] for t in small] + rest:
        boot, dial, seq = key(e)
        by_stream.setdefault((boot, dial), []).append(seq)
    for stream, seqs in by_stream.items():
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), stream
    assert sum(len(s) for s in by_stream.values()) == 1300
    box.close()


# -- the size bound ------------------------------------------------------------------------


def test_drop_oldest_deletes_oldest_unsent_counts_them_and_says_so_once(tmp_path: Path) -> None:
    events, sink = events_sink()
    box = DiskOutbox(tmp_path / "ob", max_bytes=40_000, on_event=sink)  # segments of 4 KiB
    put_many(box, 1000)
    assert box.bytes_on_disk <= 40_000
    assert box.dropped > 0 and box.depth + box.dropped == 1000
    assert [k for k, _, _ in events] == ["outbox.full"]
    _kind, message, data = events[0]
    assert str(tmp_path / "ob") in message and data["policy"] == "drop-oldest"
    got = drain(box)
    assert [e.id for e in got] == list(range(1001 - len(got), 1001))  # the newest survive
    assert [k for k, _, _ in events] == ["outbox.full", "outbox.ok"]
    put_many(box, 1000, start=1000)
    assert [k for k, _, _ in events] == ["outbox.full", "outbox.ok", "outbox.full"]
    box.close()


def test_refuse_new_drops_new_samples_and_counts_them(tmp_path: Path) -> None:
    events, sink = events_sink()
    box = DiskOutbox(tmp_path / "ob", max_bytes=40_000, policy="refuse-new", on_event=sink)
    put_many(box, 1000)
    kept = box.pending
    assert box.dropped == 1000 - kept and box.bytes_on_disk <= 40_000
    assert [k for k, _, _ in events] == ["outbox.full"]
    got = drain(box)
    assert [e.id for e in got] == list(range(1, kept + 1))  # the oldest are kept
    assert [k for k, _, _ in events] == ["outbox.full", "outbox.ok"]
    box.close()


def test_drop_oldest_while_backlog_and_requeued_entries_wait(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "ob", max_bytes=40_000, memory_bytes=1_000)
    put_many(box, 80, boot="A")
    box.close()
    box = DiskOutbox(tmp_path / "ob", max_bytes=40_000, memory_bytes=1_000)
    put_many(box, 30, boot="B")
    box.take(20)
    box.requeue()
    put_many(box, 1000, boot="B", start=30)
    got = drain(box)
    assert len(got) + box.dropped == 1110
    assert not any(key(e)[0] == "A" for e in got)  # the oldest went first
    seqs = [key(e)[2] for e in got if key(e)[1] == "d0"]
    assert seqs == sorted(seqs)
    box.close()


def test_inflight_entries_of_a_dropped_segment_are_still_delivered(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "ob", max_bytes=40_000)
    put_many(box, 30)
    early = box.take(10)  # in flight from the oldest segment
    put_many(box, 1000, start=30)  # the oldest segment goes
    assert box.dropped > 0 and box.depth + box.dropped == 1030
    box.ack(early[:5])
    assert box.requeue() == 5
    again = box.take(5)
    assert [e.id for e in again] == [6, 7, 8, 9, 10] and all(e.replay for e in again)
    box.ack(again)
    assert box.depth + box.dropped == 1020
    drain(box)
    assert box._volatile_held() == 0 and box._usage() == box.bytes_on_disk
    box.close()


# -- a bad disk ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["file-as-folder", "proc"])
def test_unusable_folder_degrades_to_memory_and_never_raises(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    if where == "file-as-folder":
        (tmp_path / "file").write_text("not a folder")
        path = tmp_path / "file" / "outbox"
    else:
        path = Path("/proc/self/dialdaq-outbox")
    events, sink = events_sink()
    with caplog.at_level(logging.ERROR, logger="daq.outbox"):
        box = DiskOutbox(path, on_event=sink)
        assert box.degraded and events == []  # delivered at the first put, not from the constructor
        put_many(box, 50)
        got = drain(box, n=7)
    assert [e.id for e in got] == list(range(1, 51))
    assert [k for k, _, _ in events] == ["outbox.degraded"]
    _kind, message, data = events[0]
    assert str(path) in message and data["path"] == str(path) and data["error"]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert box.bytes_on_disk == 0
    box.close()


def test_enospc_falls_back_to_memory_then_back_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events, sink = events_sink()
    box = DiskOutbox(tmp_path / "ob", on_event=sink, retry_s=0.5)
    put_many(box, 10)
    monkeypatch.setattr(segments_module, "_write", disk_full)
    put_many(box, 10, start=10)  # never raises
    assert box.degraded and box.depth == 20
    assert [k for k, _, _ in events] == ["outbox.degraded"]
    assert "ENOSPC" in events[0][1] and str(tmp_path / "ob") in events[0][1]
    monkeypatch.setattr(segments_module, "_write", os.write)
    put_many(box, 5, start=20)  # the disk works again, but the retry time has not come
    assert box.degraded
    time.sleep(0.55)
    put_many(box, 5, start=25)
    assert not box.degraded
    assert [k for k, _, _ in events] == ["outbox.degraded", "outbox.ok"]
    got = box.take(100)
    assert [e.id for e in got] == list(range(1, 31))  # order kept across the episode
    box.ack(got[:12])
    box._close_files()  # crash: the samples put while degraded are gone, the rest is on disk
    again = DiskOutbox(tmp_path / "ob")
    assert [e.id for e in drain(again)] == list(range(26, 31))
    again.close()


def test_stats_say_what_health_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = DiskOutbox(tmp_path / "ob", retry_s=60)
    put_many(box, 10)
    box.ack(box.take(4)[:2])
    stats = box.stats()
    assert (stats.kind, stats.pending, stats.inflight, stats.depth, stats.durable) == ("disk", 6, 2, 8, True)
    assert stats.bytes_on_disk == box.bytes_on_disk > 0 and not stats.degraded and stats.dropped == 0
    monkeypatch.setattr(segments_module, "_write", disk_full)
    put_many(box, 1, start=10)
    assert box.stats().degraded and box.stats().pending == 7
    box._close_files()
    again = DiskOutbox(tmp_path / "ob")
    assert again.stats().recovered == 8
    assert list(again.stats().as_dict()) == [
        "kind", "pending", "inflight", "dropped", "degraded", "bytes_on_disk", "recovered"
    ]  # fmt: skip
    again.close()


def test_a_folder_unusable_at_start_up_is_used_once_it_works(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("a file where the folder should be")
    events, sink = events_sink()
    box = DiskOutbox(tmp_path / "x" / "ob", on_event=sink, retry_s=0)
    put_many(box, 3)
    (tmp_path / "x").unlink()
    other = DiskOutbox(tmp_path / "x" / "ob")  # meanwhile, someone else's samples land there
    put_many(other, 5, boot="other")
    other._close_files()
    put_many(box, 2, start=3)
    assert not box.degraded and [k for k, _, _ in events] == ["outbox.degraded", "outbox.ok"]
    got = drain(box)
    assert [key(e)[0] for e in got] == ["A"] * 5 and got[3].id > 5  # new ids beyond the others'
    box.close()
    again = DiskOutbox(tmp_path / "x" / "ob")  # the others' samples are left for the next start
    assert [key(e)[0] for e in drain(again)] == ["other"] * 5
    again.close()


def test_short_write_is_cut_and_degrades(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = DiskOutbox(tmp_path / "ob")
    put_many(box, 3)
    monkeypatch.setattr(segments_module, "_write", lambda fd, data: os.write(fd, data[:5]))
    put_many(box, 1, start=3)
    monkeypatch.setattr(segments_module, "_write", os.write)
    assert box.degraded
    box._close_files()
    again = DiskOutbox(tmp_path / "ob")
    assert [e.id for e in drain(again)] == [1, 2, 3]
    again.close()


# -- the ordering invariant under random operations -------------------------------------


class OutboxMachine(RuleBasedStateMachine):
    """Random puts, takes, acks, requeues, restarts (clean or crash) and a full disk, on a small bound.

    For every (boot, dial): the entries taken for the first time come in seq order. An acked
    entry never comes back (unless its ack could not be written: the disk was full). At the
    end, everything put has been acked, except what the outboxes counted as dropped and what
    was held only in memory (put while the disk was full) when the outbox restarted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="outbox-"))
        self.runs = 0
        self.dropped = 0
        self.lost_in_memory = 0  # put while the disk was full, or in flight when their segment was dropped
        self.put_keys: set[tuple[str, str, int]] = set()
        self.acked: set[tuple[str, str, int]] = set()
        self.acked_unsaved: set[tuple[str, str, int]] = set()
        self.full = False
        self.first_taken: dict[tuple[str, str], list[int]] = {}
        self.seen: set[tuple[str, str, int]] = set()
        self.seq: dict[str, int] = {}
        self.inflight: list[Entry] = []
        self.box = self.open()

    def open(self) -> DiskOutbox:
        self.runs += 1
        self.boot = f"b{self.runs}"
        self.seq = {}
        return DiskOutbox(
            self.dir / "ob", max_bytes=24_000, memory_bytes=1_500, segment_bytes=2_048, backlog_share=0.3, retry_s=0
        )

    @rule(full=st.booleans())
    def disk(self, full: bool) -> None:
        """The disk fills up (every write fails with ENOSPC) or works again (the next put finds out)."""
        self.full = full
        segments_module._write = disk_full if full else os.write

    @rule(dial=st.sampled_from(["d0", "d1", "d2"]), n=st.integers(1, 40))
    def put(self, dial: str, n: int) -> None:
        for _ in range(n):
            seq = self.seq.get(dial, 0)
            self.seq[dial] = seq + 1
            self.box.put(dial, f"t/{dial}", body(self.boot, dial, seq))
            self.put_keys.add((self.boot, dial, seq))
        assert self.box.bytes_on_disk <= 24_000  # the bound holds at every put

    @rule(n=st.integers(1, 50))
    def take(self, n: int) -> None:
        got = self.box.take(n)
        assert [e.id for e in got] == sorted(e.id for e in got)
        for entry in got:
            k = key(entry)
            assert k not in self.acked - self.acked_unsaved, f"{k} came back after its ack"
            if k not in self.seen:
                self.seen.add(k)
                self.first_taken.setdefault(k[:2], []).append(k[2])
        self.inflight += got

    @precondition(lambda self: self.inflight)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(self.inflight), unique_by=lambda e: e.id, max_size=30))
        if self.full or self.box.degraded:  # the ack cannot be written: the entry may come back
            self.acked_unsaved |= {key(e) for e in chosen}
        self.box.ack(chosen)
        ids = {e.id for e in chosen}
        self.inflight = [e for e in self.inflight if e.id not in ids]
        self.acked |= {key(e) for e in chosen}

    @rule()
    def requeue(self) -> None:
        assert self.box.requeue() == len(self.inflight)
        self.inflight = []

    @rule(crash=st.booleans())
    def restart(self, crash: bool) -> None:
        self.dropped += self.box.dropped
        self.lost_in_memory += self.box._volatile_held()
        if crash:
            self.box._close_files()
        else:
            self.box.close()
        self.inflight = []
        self.box = self.open()

    @invariant()
    def first_takes_in_seq_order(self) -> None:
        for stream, seqs in self.first_taken.items():
            assert all(a < b for a, b in itertools.pairwise(seqs)), (stream, seqs)
        assert self.box.depth >= 0

    def teardown(self) -> None:
        try:
            self.box.requeue()
            while self.box.pending:
                got = self.box.take(50)
                self.take_check(got)
                self.box.ack(got)
                self.acked |= {key(e) for e in got}
            self.first_takes_in_seq_order()
            dropped = self.dropped + self.box.dropped
            missing = len(self.put_keys - self.acked)
            # Nothing is lost uncounted; and the counts are exact, except that an entry whose
            # ack could not be written may be dropped later (and counted) all the same.
            assert dropped + self.lost_in_memory - len(self.acked_unsaved) <= missing
            assert missing <= dropped + self.lost_in_memory
        finally:
            segments_module._write = os.write
            self.box.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def take_check(self, got: list[Entry]) -> None:
        for entry in got:
            k = key(entry)
            if k not in self.seen:
                self.seen.add(k)
                self.first_taken.setdefault(k[:2], []).append(k[2])


OutboxMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_random_operations_keep_order_and_lose_nothing_uncounted = OutboxMachine.TestCase
