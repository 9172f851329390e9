"""The current session: its id and its media clock."""

from __future__ import annotations

import secrets
import time

from daq.contract import CONTRACT_VERSION
from daq.mediaclock.base import MediaClock, MediaPosition


def new_session_id(wall_ns: int | None = None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime((wall_ns or time.time_ns()) / 1e9))
    return f"s-{stamp}-{secrets.token_hex(2)}"


class SessionState:
    def __init__(self, clock: MediaClock | None) -> None:
        self.clock = clock
        self.session_id: str | None = None

    def position_at(self, mono_ns: int) -> MediaPosition | None:
        clock = self.clock
        return clock.position_at(mono_ns) if clock is not None else None

    def payload(self, station: str, boot: str, wall_ns_of: int) -> dict[str, object]:
        """The retained `session` message. `wall_ns_of` is the read clock's offset (wall - mono)."""
        clock = self.clock
        now = time.monotonic_ns()
        if clock is None:
            info: dict[str, object] = {
                "kind": "none",
                "rate": "25",
                "state": "stopped",
                "position_s": None,
                "anchor_t_ns": None,
                "speed": 1.0,
                "start_timecode": None,
            }
        else:
            seg = clock.current()
            playing = seg.state in ("running", "paused")
            info = {
                "kind": clock.kind,
                "rate": clock.rate.label,
                "state": seg.state,
                "position_s": seg.media_ns / 1e9 if playing else None,
                "anchor_t_ns": seg.mono_ns + wall_ns_of if playing else None,
                "speed": seg.speed if seg.state == "running" else 0.0,
                "start_timecode": getattr(clock, "start_timecode", None),
            }
        return {
            "v": CONTRACT_VERSION,
            "station": station,
            "boot": boot,
            "session": self.session_id,
            "clock": info,
            "t_ns": now + wall_ns_of,
        }
