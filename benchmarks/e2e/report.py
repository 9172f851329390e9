"""What the end-to-end benchmark reports: the machine, the table printed, the JSON written."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.e2e.options import Options


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    for mod in ("aiomqtt", "paho-mqtt", "pylsl", "orjson", "pyserial", "uvloop"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod)
        except Exception:
            versions[mod] = "not installed"
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False).stdout.splitlines()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": mosq[0] if mosq else "?",
        "versions": versions,
    }


COLUMNS = [
    # header, key, format
    ("dials", "dials", "{:>5}"),
    ("Hz", "rate_hz", "{:>6g}"),
    ("lat p50", "latency_p50_ms", "{:>9.2f}"),
    ("p99", "latency_p99_ms", "{:>9.2f}"),
    ("max", "latency_max_ms", "{:>8.1f}"),
    ("ts p50", "ts_error_p50_ms", "{:>7.3f}"),
    ("p99", "ts_error_p99_ms", "{:>7.2f}"),
    ("max", "ts_error_max_ms", "{:>6.1f}"),
    ("lost", "lost", "{:>5}"),
    ("1st", "first_ms", "{:>6.1f}"),
    ("CPU%", "cpu_pct", "{:>6.1f}"),
    ("RSS MB", "rss_mb", "{:>7.1f}"),
    ("idle%", "idle_cpu_pct", "{:>6.2f}"),
    ("floor p50", "floor_latency_p50_ms", "{:>10.2f}"),
    ("p99", "floor_latency_p99_ms", "{:>8.2f}"),
    ("LSL p50", "lsl_latency_p50_ms", "{:>8.2f}"),
    ("p99", "lsl_latency_p99_ms", "{:>7.2f}"),
    ("1st", "lsl_first_ms", "{:>6.1f}"),
    ("x floor", "latency_p99_vs_floor", "{:>8.2f}"),
    ("x LSL", "latency_p99_vs_lsl", "{:>6.1f}"),
    ("busy%", "machine_busy_pct", "{:>6.0f}"),
    ("load", "load_start", "{:>5.1f}"),
]


def table(results: list[dict[str, Any]]) -> str:
    widths = [len(fmt.format(0 if "g" not in fmt else 0.0)) for _, _, fmt in COLUMNS]
    lines = ["".join(h.rjust(w) for (h, _, _), w in zip(COLUMNS, widths, strict=True))]
    for r in results:
        cells = []
        for (_, key, fmt), w in zip(COLUMNS, widths, strict=True):
            value = r.get(key)
            cells.append("-".rjust(w) if value is None else fmt.format(value))
        lines.append("".join(cells))
    return "\n".join(lines)


def banner(info: dict[str, Any], opts: Options, uvloop: bool, batch_max: int | None, linger_ms: float | None) -> str:
    """The two lines printed before the first run: the machine and the daemon's settings."""
    if uvloop:
        loop = "uvloop (--uvloop)"
    elif opts.event_loop is not None:
        loop = f"{opts.event_loop} loop (--event-loop)"
    else:  # the daemon picks (DAQ_EVENT_LOOP unset): not known here, so not named as if it were
        loop = "its default event loop (uvloop where installed)"
    return (
        f"dialdaq benchmark: {info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, Python {info['python']}, "
        f"{info['mosquitto']}; load {os.getloadavg()[0]:.2f}\n"
        f"daemon: {loop}, publish batch_max={batch_max or 'default'} "
        f"linger_ms={linger_ms if linger_ms is not None else 'default'}"
        f"{', source ' + str(opts.daq_src) if opts.daq_src else ''}; {opts.seconds:g} s per run, "
        f"idle {opts.idle_seconds:g} s, lead-in {opts.lead_in_s:g} s"
    )


def summary(results: list[dict[str, Any]], max_rates: list[dict[str, Any]], notes: list[str]) -> str:
    """What is printed at the end: the whole table, the highest sustained rates, the notes."""
    lines = ["\n" + table(results)] if results else []
    for m in max_rates:
        lines.append(
            f"{m['dials']} dials: highest sustained rate {m['max_sustained_hz']:g} Hz per dial ({m['criterion']})"
        )
    lines.extend(f"note: {note}" for note in notes)
    return "\n".join(lines)


def document(
    info: dict[str, Any],
    started: float,
    options: dict[str, Any],
    results: list[dict[str, Any]],
    max_rates: list[dict[str, Any]],
    notes: list[str],
) -> dict[str, Any]:
    """The JSON written by --json."""
    return {
        "machine": info,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "options": options,
        "results": results,
        "max_rate": max_rates,
        "notes": notes,
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
