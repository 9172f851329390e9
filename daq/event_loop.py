"""Which asyncio event loop a command runs on: uvloop where it is installed, plain asyncio otherwise.

uvloop (libuv) is a dependency on Linux and macOS (`uvloop>=0.19; sys_platform != 'win32'`); on
Windows, or wherever it did not install, the standard loop runs. The choice is `auto` (uvloop if
importable), `asyncio` or `uvloop` (which fails clearly when uvloop is missing); it comes from
`[station] event_loop` for `daq run`, and the environment's `DAQ_EVENT_LOOP` overrides it for every
command. Measured with `scripts/bench --quick --event-loop asyncio|uvloop` (benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Literal

from daq.exceptions import FatalError

EventLoopChoice = Literal["auto", "asyncio", "uvloop"]
CHOICES: tuple[EventLoopChoice, ...] = ("auto", "asyncio", "uvloop")
ENV = "DAQ_EVENT_LOOP"

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def chosen(configured: str | None = None, env: dict[str, str] | None = None) -> EventLoopChoice:
    """The choice in effect: DAQ_EVENT_LOOP if set, else `configured`, else auto."""
    value = (env if env is not None else os.environ).get(ENV) or configured or "auto"
    for choice in CHOICES:
        if value.strip().lower() == choice:
            return choice
    raise FatalError(f"{ENV}={value!r}: the event loop is one of {', '.join(CHOICES)}")


def loop_factory(choice: EventLoopChoice) -> tuple[LoopFactory | None, str]:
    """The loop factory for asyncio.Runner (None: asyncio's own) and the name of the loop it makes."""
    if choice == "asyncio":
        return None, "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise FatalError(
                "event_loop = 'uvloop' but uvloop is not installed (pip install uvloop; not available on "
                "Windows): set event_loop = 'auto' or 'asyncio'"
            ) from None
        return None, "asyncio"
    factory: LoopFactory = uvloop.new_event_loop
    return factory, "uvloop"
