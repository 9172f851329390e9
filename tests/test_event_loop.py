"""The event loop a command runs on (daq.event_loop): uvloop where installed, asyncio on request or
where it is missing, DAQ_EVENT_LOOP over the config, a clear refusal for an unknown or missing loop."""

from __future__ import annotations

import asyncio
import builtins
import sys
from typing import Any

import pytest

from daq.commands.common import run_until_signal
from daq.config import build_config
from daq.event_loop import chosen, loop_factory
from daq.exceptions import FatalError

uvloop = pytest.importorskip("uvloop") if sys.platform != "win32" else None


def loop_module_of(event_loop: str | None) -> str:
    async def main(stop: asyncio.Event) -> int:
        return 0 if "uvloop" in type(asyncio.get_running_loop()).__module__ else 1

    return "uvloop" if run_until_signal(main, event_loop) == 0 else "asyncio"


def test_uvloop_by_default_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAQ_EVENT_LOOP", raising=False)
    assert loop_module_of(None) == "uvloop"
    assert loop_module_of("auto") == "uvloop"
    assert loop_module_of("asyncio") == "asyncio"
    monkeypatch.setenv("DAQ_EVENT_LOOP", "asyncio")  # the environment wins over the config
    assert loop_module_of("uvloop") == "asyncio"


def test_the_choice_env_over_config_and_refusals() -> None:
    assert chosen(None, {}) == "auto"
    assert chosen("asyncio", {}) == "asyncio"
    assert chosen("asyncio", {"DAQ_EVENT_LOOP": "UVLoop"}) == "uvloop"
    with pytest.raises(FatalError, match="DAQ_EVENT_LOOP='trio': the event loop is one of auto, asyncio, uvloop"):
        chosen(None, {"DAQ_EVENT_LOOP": "trio"})


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert loop_factory("auto") == (None, "asyncio")
    with pytest.raises(FatalError, match="uvloop is not installed"):
        loop_factory("uvloop")


def test_config_key_and_env_override() -> None:
    assert build_config({}).station.event_loop == "auto"
    assert build_config({"station": {"event_loop": "asyncio"}}).station.event_loop == "asyncio"
    with pytest.raises(FatalError, match="event_loop"):
        build_config({"station": {"event_loop": "trio"}})
