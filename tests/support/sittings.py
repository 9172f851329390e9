"""Session folders in the recorder's format, written by hand for the analysis tests.

The format is the one `daq record` writes today (see daq/recording.py): a dial file
`<out>/<station>/<session>/<dial>.csv` of `# key: value` header lines, the column line
`boot,seq,t_ns,media_s,timecode,frame,value,raw,replay` and one row per sample; and the session's
`summary.json`. The metadata keys the analysis reads (`video`, `rater`, `dimension`) go into
summary.json, as documented in daq/export/sittings.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daq.timecode import FrameRate, frame_to_timecode, ns_to_frame

COLUMNS = "boot,seq,t_ns,media_s,timecode,frame,value,raw,replay"
T0 = 1_795_451_400_000_000_000
RATE = FrameRate.parse("25")


def write_dial_file(
    folder: Path, station: str, session: str, dial: str, samples: Sequence[tuple[int, float | None, float]]
) -> Path:
    """samples: (t_ns, media_s or None, value) in read order."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "# dialdaq recording",
        f"# station: {station}",
        f"# dial: {dial}",
        f"# session: {session}",
        "# profile: simulated",
        "# device: sim",
        '# scale: {"labels": {}, "max": 10.0, "min": -10.0, "step": 0.0, "unit": ""}',
        "# rate_hz: 20.0",
        "# timecode_rate: 25",
        "# media_clock: session",
        COLUMNS,
    ]
    for seq, (t_ns, media, value) in enumerate(samples):
        if media is None:
            cells = ["", "", ""]
        else:
            frame = ns_to_frame(round(media * 1e9), RATE) if media >= 0 else None
            cells = [repr(media), frame_to_timecode(frame, RATE) if frame is not None else "", str(frame or "")]
        lines.append(",".join(["b1", str(seq), str(t_ns), *cells, repr(float(value)), repr(float(value)), ""]))
    path = folder / f"{dial}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_summary(folder: Path, station: str, session: str, dials: Sequence[str], **meta: Any) -> None:
    body: dict[str, Any] = {
        "station": station,
        "session": session,
        "dials": {d: {"rows": 0, "file": f"{d}.csv"} for d in dials},
        "gaps": [],
        "duplicates_dropped": 0,
        **meta,
    }
    (folder / "summary.json").write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def smooth_signal(seed: int, duration: float) -> Callable[[np.ndarray], np.ndarray]:
    """A slowly varying, non-periodic rating (sum of sinusoids of 6-60 s periods), about -5..5."""
    rng = np.random.default_rng(seed)
    periods = rng.uniform(6, 60, 12)
    phases = rng.uniform(0, 2 * math.pi, 12)
    amps = rng.uniform(0.5, 1.5, 12)

    def signal(t: np.ndarray) -> np.ndarray:
        total = np.zeros_like(t, dtype=float)
        for p, ph, a in zip(periods, phases, amps, strict=True):
            total += a * np.sin(2 * math.pi * t / p + ph)
        return np.asarray(total, dtype=float)

    return signal


def rater_samples(
    signal: Callable[[np.ndarray], np.ndarray],
    lag_s: float,
    noise_sd: float,
    seed: int,
    duration: float,
    start_media: float = 0.0,
    hz: float = 20.0,
    phase: float = 0.0,
    pure_noise: bool = False,
) -> list[tuple[int, float | None, float]]:
    """A dial that rates `signal` lag_s seconds late: at media t it shows signal(t - lag) + noise."""
    rng = np.random.default_rng(seed)
    media = start_media + phase + np.arange(int(duration * hz)) / hz
    if pure_noise:
        values = rng.normal(0, 2.5, len(media))
    else:
        values = signal(media - lag_s) + rng.normal(0, noise_sd, len(media))
    t_ns = T0 + np.round((media - start_media) * 1e9).astype(np.int64)
    return [(int(t), float(m), round(float(v), 6)) for t, m, v in zip(t_ns, media, values, strict=True)]
