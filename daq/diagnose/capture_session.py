"""`daq profiles capture`: record one configured dial into a capture file (daq.diagnose.capture).

For S seconds, or guided: the user is asked on the terminal to turn the dial to its low end, to
its high end and to press its button, each step marked in the file when Enter is pressed; the
capture is then replayed (daq.diagnose.replay) and its range, direction and button checked (PASS/FAIL).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from daq.config import DaqConfig, DialConfig
from daq.diagnose.capture import CaptureWriter, deadline_event, read_capture, read_until
from daq.diagnose.replay import Check, guided_checks, replay
from daq.exceptions import ConfigError, DeviceUnavailable, ProfileError
from daq.profiles.loader import LoadedProfile, ProfileRegistry
from daq.reading import Chunk
from daq.station.profiled_dials import resolve_profile
from daq.transports import make_transport, port_check

OPEN_TIMEOUT_S = 15.0


@dataclass
class Outcome:
    chunks: int
    bytes: int
    checks: list[Check]


def find_dial(config: DaqConfig, dial_id: str) -> tuple[DialConfig, LoadedProfile]:
    dial = next((d for d in config.dials if d.id == dial_id), None)
    if dial is None:
        known = ", ".join(d.id for d in config.dials) or "none"
        raise ConfigError(config.source_file, "dials", f"no dial {dial_id!r} in the config (its dials: {known})")
    if dial.profile is None:
        raise ConfigError(config.source_file, "dials", f"{dial_id} is a simulated dial: nothing to capture")
    try:
        loaded = resolve_profile(ProfileRegistry.load(config.profile_dirs), dial.profile)
    except ProfileError as exc:
        raise ConfigError(config.source_file, f"dials.{dial_id}.profile", exc.problem) from None
    return dial, loaded


async def capture(
    config: DaqConfig,
    dial_id: str,
    out: Path,
    seconds: float | None,
    guided: bool,
    ask: Callable[[str], str] | None = None,
    tell: TextIO = sys.stdout,
) -> Outcome:
    """Record the dial into `out`; `ask(prompt)` returns the user's answer (guided mode)."""
    dial, loaded = find_dial(config, dial_id)
    profile = loaded.profile
    channel = dial.channel or profile.default_channel
    transport = make_transport(profile, dial.attachment)

    def say(text: str) -> None:
        print(text, file=tell, flush=True)

    say(f"opening {transport.describe} (profile {profile.id}) ...")
    try:
        await asyncio.wait_for(transport.open(), OPEN_TIMEOUT_S)
    except (DeviceUnavailable, TimeoutError) as exc:
        await transport.close()
        why = str(exc) or "timed out"
        if "in use" in why and dial.port:
            why += f" ({port_check.in_use_text(dial.port)})"
        raise DeviceUnavailable(f"cannot open {transport.describe}: {why}") from None
    header = {
        "profile": profile.id,
        "transport": profile.transport,
        "framing": profile.framing.kind,
        "device": transport.describe,
        "guided": guided,
        "dial": {
            "id": dial.id,
            "channel": channel,
            "scale": dial.scale.model_dump(),
            "calibration": dial.calibration.model_dump(),
        },
    }
    with out.open("w", encoding="utf-8") as handle:
        writer = CaptureWriter(handle, header)
        done = deadline_event(seconds) if seconds is not None and not guided else asyncio.Event()

        def on_chunk(chunk: Chunk) -> None:
            writer.chunk(chunk)

        def on_gone(why: str) -> None:
            writer.note("gone", why)
            say(f"the device went away: {why}; waiting for it ...")

        def on_opened() -> None:
            writer.note("opened", transport.describe)
            say(f"opened {transport.describe} again")

        reading = asyncio.create_task(read_until(transport, done, on_chunk, on_gone, on_opened))
        if guided:
            assert ask is not None
            try:
                await _guide(dial, bool(profile.buttons), writer, ask, say)
            finally:
                done.set()
        else:
            say(f"recording {dial.id} for {seconds:g} s to {out} ...")
        await reading
        writer.end()
    checks = guided_checks(replay(read_capture(out), profile), bool(profile.buttons)) if guided else []
    return Outcome(writer.chunks, writer.bytes, checks)


async def _guide(
    dial: DialConfig,
    has_buttons: bool,
    writer: CaptureWriter,
    ask: Callable[[str], str],
    say: Callable[[str], None],
) -> None:
    scale = dial.scale
    steps = [
        ("low", f"turn {dial.id} to the end where the rating is LOWEST ({scale.min:g}), leave it there"),
        ("high", f"turn {dial.id} to the end where the rating is HIGHEST ({scale.max:g}), leave it there"),
    ]
    if has_buttons:
        steps.append(("button", f"press {dial.id}'s button and let it go"))
    for number, (mark, what) in enumerate(steps, 1):
        answer = await asyncio.to_thread(ask, f"step {number} of {len(steps)}: {what}, then press Enter: ")
        if answer == "\0":
            raise ConfigError(None, "--guided", "no answer on the terminal (input closed): capture stopped")
        writer.note("mark", mark)
    say("recorded; checking ...")


def terminal_ask(prompt: str) -> str:
    """Ask on the terminal; '\\0' when the input is closed."""
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    return line if line else "\0"
