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
from tests.support.outboxes import until_pending

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


def kinds(events: list[Event]) -> list[str]:
    """The kinds of these events, without the rate-limited `outbox.dropped` counts."""
    return [kind for kind, _, _ in events if kind != "outbox.dropped"]


def drops(events: list[Event]) -> list[tuple[int, int]]:
    """(records, total) of each `outbox.dropped` event."""
    return [(int(str(d["records"])), int(str(d["total"]))) for k, _, d in events if k == "outbox.dropped"]


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


def test_a_notified_waiter_sees_new_and_recovered_entries(tmp_path: Path) -> None:
    async def go() -> None:
        box = DiskOutbox(tmp_path / "ob")
        waiter = asyncio.create_task(until_pending(box))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        put_many(box, 1)
        await asyncio.wait_for(waiter, 1)
        box.close()
        again = DiskOutbox(tmp_path / "ob")
        await asyncio.wait_for(until_pending(again), 1)  # the entry of the earlier run
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
    assert kinds(events) == ["outbox.full"]
    _kind, message, data = events[0]
    assert str(tmp_path / "ob") in message and data["policy"] == "drop-oldest"
    got = drain(box)
    assert [e.id for e in got] == list(range(1001 - len(got), 1001))  # the newest survive
    assert kinds(events) == ["outbox.full", "outbox.ok"]
    put_many(box, 1000, start=1000)
    assert kinds(events) == ["outbox.full", "outbox.ok", "outbox.full"]
    box.close()
    dropped = drops(events)
    assert dropped[0][0] == dropped[0][1] > 0  # the first drop is said at once
    assert sum(n for n, _ in dropped) == dropped[-1][1] == box.dropped  # and all are said


def test_refuse_new_drops_new_samples_and_counts_them(tmp_path: Path) -> None:
    events, sink = events_sink()
    box = DiskOutbox(tmp_path / "ob", max_bytes=40_000, policy="refuse-new", on_event=sink)
    put_many(box, 1000)
    kept = box.pending
    assert box.dropped == 1000 - kept and box.bytes_on_disk <= 40_000
    assert kinds(events) == ["outbox.full"]
    got = drain(box)
    assert [e.id for e in got] == list(range(1, kept + 1))  # the oldest are kept
    assert kinds(events) == ["outbox.full", "outbox.ok"]
    box.close()
    assert sum(n for n, _ in drops(events)) == box.dropped
    assert next(d["policy"] for k, _, d in events if k == "outbox.dropped") == "refuse-new"


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


# -- damage: flipped bytes, deleted segments, old formats (issue 13.5) ---------------------


def sealed_segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("seg-*-*.log"))


def segment_ids(path: Path) -> range:
    first, count = (int(x) for x in path.name[4:-4].split("-"))
    return range(first, first + count)


def flip(path: Path, offset: int, n: int = 3) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def keys_of(entries: list[Entry]) -> set[tuple[str, str, int]]:
    return {key(e) for e in entries}


def all_keys(n: int, boot: str = "A", dials: int = 3) -> list[tuple[str, str, int]]:
    return [(boot, f"d{i % dials}", i // dials) for i in range(n)]


def test_flipped_bytes_and_a_deleted_segment_cost_only_what_they_hit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The case of issue 13.5: every intact record after the damage is delivered, the rest is
    reported with counts, as events and log lines."""
    folder = tmp_path / "ob"
    box = DiskOutbox(folder, segment_bytes=4_000)
    put_many(box, 300)
    box.close()
    segs = sealed_segments(folder)
    assert len(segs) >= 5
    damaged, deleted = segs[1], segs[3]
    flip(damaged, damaged.stat().st_size // 2)
    deleted.unlink()

    events, sink = events_sink()
    with caplog.at_level(logging.WARNING):
        again = DiskOutbox(folder, on_event=sink)
    got = drain(again)
    by_kind = {kind: data for kind, _, data in events}
    corrupt, missing = by_kind["outbox.corrupt"], by_kind["outbox.segment_missing"]
    assert corrupt["segment"] == damaged.name and 1 <= int(str(corrupt["records"])) <= 2
    assert missing["records"] == len(segment_ids(deleted)) and missing["delivered"] == 0
    lost = int(str(corrupt["records"])) + len(segment_ids(deleted))
    assert len(got) == 300 - lost and again.dropped == lost
    ids = {e.id for e in got}
    assert ids.isdisjoint(segment_ids(deleted))
    hit = set(segment_ids(damaged)) - ids
    assert len(hit) == corrupt["records"]
    assert max(segment_ids(damaged)) in ids  # the records after the damaged one are kept
    assert keys_of(got) <= set(all_keys(300))
    text = caplog.text
    assert f"could not be read ({corrupt['bytes']} damaged bytes" in text and damaged.name in text
    assert "is missing" in text and f"{len(segment_ids(deleted))} samples in it were never delivered" in text
    again.close()
    third = DiskOutbox(folder, on_event=sink)  # said once: nothing is reported again
    assert third.pending == 0 and third.dropped == 0
    third.close()


@pytest.mark.parametrize("which", ["first", "last"])
def test_a_deleted_first_or_last_segment_is_reported(tmp_path: Path, which: str) -> None:
    folder = tmp_path / "ob"
    box = DiskOutbox(folder, segment_bytes=4_000)
    put_many(box, 200)
    box.ack(box.take(5))  # 5 of the first segment were delivered
    box.close()
    segs = sealed_segments(folder)
    gone = segs[0] if which == "first" else segs[-1]
    gone.unlink()  # its ack file (if any) stays: it says what had been delivered
    events, sink = events_sink()
    again = DiskOutbox(folder, on_event=sink)
    drain(again)
    (missing,) = [data for kind, _, data in events if kind == "outbox.segment_missing"]
    delivered = 5 if which == "first" else 0
    assert missing == {
        "path": str(folder),
        "segment": gone.name.split("-")[0] + "-" + gone.name.split("-")[1],
        "first_id": segment_ids(gone).start,
        "records": len(segment_ids(gone)) - delivered,
        "delivered": delivered,
    }
    assert not list(folder.glob("*.ack"))
    again.close()


def test_a_segment_deleted_on_purpose_is_not_reported(tmp_path: Path) -> None:
    """Segments are deleted when all acked, in any order: a gap alone is not a loss."""
    folder = tmp_path / "ob"
    box = DiskOutbox(folder, segment_bytes=4_000)
    put_many(box, 200)
    box.close()
    old = DiskOutbox(folder, segment_bytes=4_000)
    taken = old.take(1000)
    segs = sealed_segments(folder)
    middle = segment_ids(segs[2])
    old.ack([e for e in taken if e.id in middle])  # the middle segment is all acked: deleted
    old.close()
    assert len(sealed_segments(folder)) == len(segs) - 1
    events, sink = events_sink()
    again = DiskOutbox(folder, on_event=sink)
    assert again.pending == 200 - len(middle) and again.dropped == 0
    again.take(0)  # events of the constructor are delivered at first use
    assert kinds(events) == ["outbox.replay"]
    again.close()


def test_a_crashed_runs_segment_resyncs_past_damage_in_the_middle(tmp_path: Path) -> None:
    folder = tmp_path / "ob"
    box = DiskOutbox(folder)
    put_many(box, 100)
    box._close_files()  # kill -9: the segment is not sealed
    (segment,) = folder.glob("seg-*.open")
    flip(segment, segment.stat().st_size // 3, n=1)
    events, sink = events_sink()
    again = DiskOutbox(folder, on_event=sink)
    got = drain(again)
    (corrupt,) = [data for kind, _, data in events if kind == "outbox.corrupt"]
    assert corrupt["records"] == 1 and len(got) == 99 and got[-1].id == 100
    again.close()


def test_a_damaged_segment_header_still_resyncs(tmp_path: Path) -> None:
    folder = tmp_path / "ob"
    box = DiskOutbox(folder)
    put_many(box, 50)
    box.close()
    (segment,) = sealed_segments(folder)
    flip(segment, 0, n=8)
    again = DiskOutbox(folder)
    assert [e.id for e in drain(again)] == list(range(1, 51))
    again.close()


def v1_record(ident: int, dial: str, topic: str, payload: bytes) -> bytes:
    """A record as the outbox wrote them before format 2 (no segment header, no magic)."""
    import struct
    import zlib

    dial_b, topic_b = dial.encode(), topic.encode()
    body = dial_b + topic_b + payload
    head = struct.pack("<IQHH", len(body), ident, len(dial_b), len(topic_b))
    return struct.pack("<I", zlib.crc32(body, zlib.crc32(head))) + head + body


@pytest.mark.parametrize("damage", [False, True], ids=["intact", "damaged"])
def test_format_1_segments_are_still_read(tmp_path: Path, damage: bool) -> None:
    folder = tmp_path / "ob"
    folder.mkdir()
    records = [v1_record(i, "d0", "daq/st/dials/d0/samples", body("OLD", "d0", i - 1)) for i in range(1, 41)]
    data = bytearray(b"".join(records))
    if damage:
        at = sum(len(r) for r in records[:20]) + 30  # inside record 21
        data[at] ^= 0xFF
    (folder / f"seg-{1:020d}-40.log").write_bytes(bytes(data))
    events, sink = events_sink()
    box = DiskOutbox(folder, on_event=sink)
    got = drain(box)
    if damage:  # no magic to resync on: the rest of the segment is lost, and said
        assert [e.id for e in got] == list(range(1, 21))
        (corrupt,) = [d for k, _, d in events if k == "outbox.corrupt"]
        assert corrupt["records"] == 20 and corrupt["format"] == 1
    else:
        assert [e.id for e in got] == list(range(1, 41)) and "outbox.corrupt" not in kinds(events)
    put_many(box, 5, boot="NEW")  # new records go to a format-2 segment
    assert [key(e)[0] for e in drain(box)] == ["NEW"] * 5
    box.close()


def test_leftovers_are_announced_with_boot_dials_times_and_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "ob"
    box = DiskOutbox(folder)
    t0 = 1_795_451_400_000_000_000
    for i in range(30):
        payload = json.dumps({"boot": "b0a7", "dial": f"p{i % 2}", "seq": i // 2, "t_ns": t0 + i * 10**9}).encode()
        box.put(f"p{i % 2}", f"daq/st/dials/p{i % 2}/samples", payload)
    box.close()
    events, sink = events_sink()
    with caplog.at_level(logging.WARNING):
        again = DiskOutbox(folder, on_event=sink)
        again.take(1)  # events of the constructor are delivered at first use
    (replay,) = [(m, d) for k, m, d in events if k == "outbox.replay"]
    message, data = replay
    assert data == {
        "path": str(folder),
        "records": 30,
        "runs": [
            {"boot": "b0a7", "records": 30, "dials": ["p0", "p1"], "t_ns_first": t0, "t_ns_last": t0 + 29 * 10**9}
        ],
    }
    for text in (message, caplog.text):
        assert str(folder) in text and "30 samples of earlier runs" in text and "boot b0a7" in text
        assert "dials p0, p1" in text and "2026-11-23 16:30:00 UTC to 2026-11-23 16:30:29 UTC" in text
    again.close()


def test_drops_are_said_at_most_once_a_second_with_their_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    now = [1000.0]
    monkeypatch.setattr("daq.outbox.bound.time", SimpleNamespace(monotonic=lambda: now[0]))
    events, sink = events_sink()
    box = DiskOutbox(tmp_path / "ob", max_bytes=40_000, policy="refuse-new", on_event=sink)
    put_many(box, 400)  # full after ~330
    box.take(1)
    assert [n for n, _ in drops(events)] == [1]  # the first at once, the rest waits a second
    put_many(box, 50, start=400)
    now[0] += 1.0
    put_many(box, 1, start=450)
    dropped = drops(events)
    assert len(dropped) == 2 and dropped[1][1] == box.dropped == sum(n for n, _ in dropped)
    (last, *_) = [d for k, _, d in reversed(events) if k == "outbox.dropped"]
    assert last["policy"] == "refuse-new" and last["path"] == str(tmp_path / "ob")
    box.close()


@pytest.mark.parametrize("where", ["payload", "length"])
def test_a_record_damaged_while_running_costs_only_itself(tmp_path: Path, where: str) -> None:
    from daq.outbox.codec import records, scan

    folder = tmp_path / "ob"
    box = DiskOutbox(folder, segment_bytes=16 << 20)
    put_many(box, 6000)  # over 256 KiB: read from disk in several chunks
    box.close()
    events, sink = events_sink()
    again = DiskOutbox(folder, on_event=sink)  # intact at start-up
    first = again.take(10)
    (segment,) = sealed_segments(folder)
    buf = segment.read_bytes()
    at = 8
    for ident, _dial, _payload, size in records(buf, scan(buf, 1, 6000).fmt, scan(buf, 1, 6000).runs):
        if ident == 5000:
            break
        at += size
    at += size // 2 if where == "payload" else 8  # record 5000: its middle, or its length field
    with segment.open("r+b") as f:
        f.seek(at)
        f.write(b"\xff\xff\xff")
    got = first + drain(again)
    corrupt = [d for k, _, d in events if k == "outbox.corrupt"]
    assert len(corrupt) == 1 and corrupt[0]["records"] == 1 and again.dropped == 1
    assert [e.id for e in got] == [*range(1, 5000), *range(5001, 6001)]
    again.close()


def test_an_ack_file_without_its_segment_is_a_missing_segment_even_without_the_journal(tmp_path: Path) -> None:
    folder = tmp_path / "ob"
    box = DiskOutbox(folder, segment_bytes=4_000)
    put_many(box, 200)
    taken = box.take(1000)
    segs = sealed_segments(folder)
    second = segment_ids(segs[1])
    box.ack([e for e in taken if e.id == second.start])  # one of the second segment was delivered
    box.close()
    segs[1].unlink()
    (folder / "SEGMENTS").unlink()  # a folder of an older version: no journal
    events, sink = events_sink()
    again = DiskOutbox(folder, on_event=sink)
    again.take(0)
    (missing,) = [d for k, _, d in events if k == "outbox.segment_missing"]
    assert (missing["first_id"], missing["records"], missing["delivered"]) == (second.start, len(second) - 1, 1)
    assert again.pending == 200 - len(second) and again.dropped == len(second) - 1
    again.close()
