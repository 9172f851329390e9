"""Sample messages as a station publishes them (the contract's fields), for a Recorder fed without a broker."""

from __future__ import annotations

from typing import Any

T0 = 1_795_451_400_000_000_000  # the t_ns of seq 0


def station_sample(station: str, seq: int, dial: str, session: str | None, **extra: Any) -> dict[str, Any]:
    """Sample `seq` of `dial` (boot b1, one every 10 ms from T0, no media clock, value 1.5, raw 3),
    with `extra` fields added or replacing these."""
    return {
        "v": 1,
        "station": station,
        "dial": dial,
        "session": session,
        "boot": "b1",
        "seq": seq,
        "t_ns": T0 + seq * 10_000_000,
        "media_s": None,
        "timecode": None,
        "frame": None,
        "value": 1.5,
        "raw": 3,
        **extra,
    }
