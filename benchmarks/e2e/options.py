"""How one benchmark run is set up: its options, the daemon's command line, config and environment."""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.e2e.common import PROFILE, REPO, dial_id


@dataclass
class Options:
    """What every run of one benchmark invocation shares (from the command line), and its notes."""

    seconds: float
    idle_seconds: float
    drain_s: float
    batch_max: int | None
    linger_ms: float | None
    max_inflight: int | None
    uvloop: bool
    daq_src: Path | None
    alternatives: tuple[str, ...]
    profile_dir: Path | None
    profile_format: str
    profile_gil: bool
    work: Path
    broker_port: int
    broker_pid: int
    wait_quiet: float | None = None
    wait_quiet_timeout: float = 600.0
    lsl_cfg: Path | None = None
    event_loop: str | None = None  # the daemon's DAQ_EVENT_LOOP (auto, asyncio, uvloop); None: its default
    lead_in_s: float = 0.0  # ticks played before the measured window: lost counts them, latency and CPU do not
    subscriber: str = "mosquitto_sub"  # what receives the samples (benchmarks/e2e/roles.py: role_sub)
    notes: list[str] = field(default_factory=list)


def lead_ticks(rate: float, opts: Options) -> int:
    """How many ticks the lead-in is at `rate`."""
    return int(opts.lead_in_s * rate)


def daemon_cmd(cfg: Path, opts: Options) -> list[str]:
    if opts.uvloop:
        code = "import sys, uvloop; uvloop.install(); from daq.cli import main; sys.exit(main(sys.argv[1:]))"
        return [sys.executable, "-c", code, "run", "--config", str(cfg)]
    return [sys.executable, "-m", "daq", "run", "--config", str(cfg)]


def child_env(opts: Options, daq_src: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAQ_")}
    env["PYTHONUNBUFFERED"] = "1"
    paths = [str(opts.daq_src)] if daq_src and opts.daq_src else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO)])
    if daq_src and opts.event_loop is not None:
        env["DAQ_EVENT_LOOP"] = opts.event_loop
    if opts.lsl_cfg is not None:
        env["LSLAPICFG"] = str(opts.lsl_cfg)
    return env


def write_config(path: Path, station: str, port: int, dials: list[str], opts: Options) -> None:
    publish = []
    if opts.batch_max is not None:
        publish.append(f"batch_max = {opts.batch_max}")
    if opts.linger_ms is not None:
        publish.append(f"batch_linger_ms = {opts.linger_ms}")
    if opts.max_inflight is not None:
        publish.append(f"max_inflight = {opts.max_inflight}")
    text = f'[station]\nid = "{station}"\n[broker]\nurl = "mqtt://127.0.0.1:{port}"\n'
    # The outbox on disk, as shipped; in this configuration's own folder, so no run replays another's.
    text += f'[outbox]\npath = "{path.parent / "outbox"}"\n'
    if publish:
        text += "[publish]\n" + "\n".join(publish) + "\n"
    for i, dial_path in enumerate(dials):
        text += textwrap.dedent(f"""
            [[dials]]
            id = "{dial_id(i)}"
            profile = "{PROFILE}"
            port = "{dial_path}"
            """)
    path.write_text(text)
