"""`@pytest.mark.alone`: under pytest-xdist, a test that runs while no other test of the run does.

Some tests time the daemon against the wall clock (how many lines share one read, what mpv showed at a
sample's read time). With 4 workers on 2 cores the machine is busy most of the run, and a process may
wait 80 ms for a core: the measurement, not the daemon, then fails. Such a test takes the run's lock
exclusively; every other test takes it shared. A turnstile in front keeps the shared takers from
starving the exclusive one: a worker waiting to run an `alone` test holds the turnstile, so no new
test starts until it has run. Serially (no xdist) nothing is locked.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def run_slot(folder: Path, alone: bool) -> Iterator[None]:
    """Hold the run's lock in `folder` (shared by its workers) for one test: exclusively if `alone`."""
    turnstile, lock = folder / "alone.turnstile", folder / "alone.lock"
    if alone:
        with _flock(turnstile, fcntl.LOCK_EX), _flock(lock, fcntl.LOCK_EX):
            yield
    else:
        with _flock(turnstile, fcntl.LOCK_SH):
            pass  # past the turnstile: no `alone` test is waiting
        with _flock(lock, fcntl.LOCK_SH):
            yield
