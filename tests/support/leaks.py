"""What a test must not leave behind, and the watch that finds it (tests/conftest.py's `verify_cleanup`).

Left behind, after the test and its function-scoped fixtures ended:
- asyncio tasks still pending, and timers (call_later/call_at handles) neither run nor cancelled, when
  an event loop's main coroutine returned: `asyncio.run()` would cancel them in silence. Every loop the
  test makes through asyncio's policy (asyncio.run, asyncio.new_event_loop) is watched, in any thread;
- threads that did not exist before the test (threading.Timer among them), given GRACE_S to end;
- child processes of this process (and theirs) that did not exist before: running, or exited and
  never waited for (zombies), given GRACE_S. Those still running are killed once reported, by pid,
  so the tests after this one start clean.

Modelled on zigpy's / Home Assistant's `verify_cleanup`. What wider-scoped fixtures (module, session)
start is theirs: it exists before the test and is not counted.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from contextvars import Context
from dataclasses import dataclass, field
from typing import Any, TypeVar, TypeVarTuple

import psutil

GRACE_S = 2.0
"""How long a thread or a child may take to end after the test (a join with a timeout, a reaper)."""

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

if sys.platform == "win32":  # the default event loop there
    _BaseLoop = asyncio.ProactorEventLoop
else:
    _BaseLoop = asyncio.SelectorEventLoop


@dataclass
class LoopLeftovers:
    """What the loops made during one test still held when their main coroutine returned."""

    found: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, lines: list[str]) -> None:
        with self.lock:
            self.found.extend(lines)


class _WatchedLoop(_BaseLoop):
    """The default event loop, noting what is left when the first run_until_complete (asyncio.run's main) returns."""

    def __init__(self, leftovers: LoopLeftovers) -> None:
        super().__init__()
        self._leftovers = leftovers
        self._timers: weakref.WeakSet[asyncio.TimerHandle] = weakref.WeakSet()
        self._main_done = False

    def call_at(
        self, when: float, callback: Callable[[*Ts], object], *args: *Ts, context: Context | None = None
    ) -> asyncio.TimerHandle:
        handle: asyncio.TimerHandle = super().call_at(when, callback, *args, context=context)
        self._timers.add(handle)
        return handle

    def run_until_complete(self, future: Generator[Any, None, T] | Awaitable[T]) -> T:
        first, self._main_done = not self._main_done, True
        try:
            result: T = super().run_until_complete(future)
        finally:
            if first:
                self._note_leftovers(future)
        return result

    def _note_leftovers(self, main: object) -> None:
        lines = [f"asyncio task still pending: {task!r}" for task in asyncio.all_tasks(self) if task is not main]
        now = self.time()
        lines += [
            f"asyncio timer neither run nor cancelled: {handle!r}"
            for handle in list(self._timers)
            if not handle.cancelled() and handle.when() > now
        ]
        if lines:
            self._leftovers.add(lines)


class _WatchingPolicy(asyncio.DefaultEventLoopPolicy):
    def __init__(self, leftovers: LoopLeftovers) -> None:
        super().__init__()
        self._leftovers = leftovers

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return _WatchedLoop(self._leftovers)


def _children() -> dict[int, psutil.Process]:
    try:
        return {p.pid: p for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return {}


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running())  # a zombie "runs" until it is waited for
    except psutil.Error:
        return False


def _describe(proc: psutil.Process) -> str:
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"child process {proc.pid} exited but was never waited for (zombie): {proc.name()}"
        cmd = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return f"child process {proc.pid} (gone while looking)"
    return f"child process {proc.pid} still running: {cmd[:200]}"


class CleanupWatch:
    """Snapshot before a test; `leftovers()` after it: one line per thing it left behind."""

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        self.loops = LoopLeftovers()
        self._policy = asyncio.get_event_loop_policy()
        self._threads = set(threading.enumerate())
        self._children = _children()
        asyncio.set_event_loop_policy(_WatchingPolicy(self.loops))

    def leftovers(self) -> list[str]:
        asyncio.set_event_loop_policy(self._policy)
        deadline = time.monotonic() + self.grace_s
        while True:
            threads = self._new_threads()
            children = self._new_children()
            if (not threads and not children) or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        lines = list(self.loops.found)
        lines += [
            f"{'threading.Timer' if isinstance(t, threading.Timer) else 'thread'} still running: {t.name!r} ({t!r})"
            for t in threads
        ]
        lines += [_describe(p) for p in children]
        _kill(children)
        return lines

    def _new_threads(self) -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t not in self._threads and t.is_alive() and not isinstance(t, threading._DummyThread)
        ]

    def _new_children(self) -> list[psutil.Process]:
        before = self._children
        return [p for pid, p in _children().items() if (pid not in before or before[pid] != p) and _alive(p)]


def _kill(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)
