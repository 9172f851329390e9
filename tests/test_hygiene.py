"""What every test runs under: the leak check (tests/support/leaks.py), what it reports and that it
stays quiet about what was cleaned up (each case cleans up its own leak afterwards, for the real
check); and the tier table of tests/conftest.py, which every test file must be in."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests import conftest
from tests.support.leaks import CleanupWatch


def test_nothing_reported_for_what_was_cleaned_up() -> None:
    watch = CleanupWatch(grace_s=0.2)
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()

    async def main() -> None:
        task = asyncio.create_task(asyncio.sleep(10))
        handle = asyncio.get_running_loop().call_later(10, print)
        await asyncio.sleep(0)
        task.cancel()
        handle.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(lambda: None)

    asyncio.run(main())
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert watch.leftovers() == []


def test_a_thread_and_a_timer_left_running_are_reported() -> None:
    watch = CleanupWatch(grace_s=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="forgotten")
    thread.start()
    timer = threading.Timer(30, print)
    timer.start()
    try:
        left = watch.leftovers()
    finally:
        stop.set()
        timer.cancel()
        thread.join()
        timer.join()
    assert len(left) == 2
    assert any(line.startswith("thread still running: 'forgotten'") for line in left)
    assert any(line.startswith("threading.Timer still running") for line in left)


def test_tasks_and_timers_pending_when_asyncio_run_returns_are_reported() -> None:
    watch = CleanupWatch(grace_s=0.1)

    async def forgotten() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        asyncio.get_running_loop().create_task(forgotten())
        asyncio.get_running_loop().call_later(10, print)
        await asyncio.sleep(0)

    asyncio.run(main())  # cancels what main() left, in silence: the watch saw it first
    left = watch.leftovers()
    assert any("asyncio task still pending" in line and "forgotten" in line for line in left)
    assert any("asyncio timer neither run nor cancelled" in line and "print" in line for line in left)


def test_a_child_process_left_running_is_reported_and_killed() -> None:
    watch = CleanupWatch(grace_s=0.1)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    left = watch.leftovers()
    assert len(left) == 1 and left[0].startswith(f"child process {child.pid} still running:")
    assert child.wait(5) is not None  # the watch killed it


def test_a_child_never_waited_for_is_reported() -> None:
    watch = CleanupWatch(grace_s=0.1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = 50
    while deadline and Path(f"/proc/{child.pid}/stat").read_text().split()[2] != "Z":
        deadline -= 1
        threading.Event().wait(0.05)
    left = watch.leftovers()
    child.wait()
    assert len(left) == 1 and "never waited for (zombie)" in left[0]


HARDWARE_OFF = cast(Any, SimpleNamespace(getoption=lambda _: False))  # a config without --hardware


def test_a_test_module_without_a_tier_fails_collection() -> None:
    item = cast(Any, SimpleNamespace(path=Path("tests/test_not_in_the_table.py"), get_closest_marker=lambda _: None))
    with pytest.raises(pytest.UsageError, match=r"test_not_in_the_table\.py"):
        conftest.pytest_collection_modifyitems(HARDWARE_OFF, [item])


def test_a_tier_for_a_test_file_that_is_gone_fails_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(conftest.TIER_OF_MODULE, "test_renamed_away", "unit")
    with pytest.raises(pytest.UsageError, match="gone: test_renamed_away"):
        conftest.pytest_collection_modifyitems(HARDWARE_OFF, [])
