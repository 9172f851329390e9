"""What the disk outbox found at start-up, said as a log line and an event each.

- `outbox.replay`: samples an earlier run left, not acknowledged, to be sent now: how many,
  per run (boot, dials, first and last read time), and the folder (a WARNING line, so that it
  shows in `daq run`'s default output).
- `outbox.corrupt`: per segment with damaged records: how many records could not be read
  (their intact neighbours are kept) and how many bytes were skipped.
- `outbox.segment_missing`: per segment whose file is gone: how many of its records were never
  delivered (null when it cannot be known), and how many had been.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from daq.outbox.events import Events
from daq.outbox.segments import LoadReport, Segment

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LeftRun:
    """The samples one earlier run (one boot) left in the outbox."""

    boot: str
    records: int = 0
    dials: set[str] = field(default_factory=set)
    t_ns_first: int | None = None
    t_ns_last: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "boot": self.boot,
            "records": self.records,
            "dials": sorted(self.dials),
            "t_ns_first": self.t_ns_first,
            "t_ns_last": self.t_ns_last,
        }


def sample_fields(payload: bytes | None) -> tuple[str, int | None]:
    """(boot, t_ns) of a stored sample (or of the first of a batch); ("?", None) if it says neither."""
    if payload is None:
        return "?", None
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "?", None
    if isinstance(body, list):
        body = body[0] if body else {}
    if not isinstance(body, dict):
        return "?", None
    t_ns = body.get("t_ns")
    return str(body.get("boot", "?")), t_ns if isinstance(t_ns, int) else None


def left_runs(segments: list[Segment]) -> list[LeftRun]:
    """Per boot, what `segments` hold not acked (a segment holds one run's samples)."""
    runs: dict[str, LeftRun] = {}
    for seg in segments:
        res = seg.scan
        if res is None:
            continue
        boot, t_first = sample_fields(res.first_payload)
        _, t_last = sample_fields(res.last_payload)
        run = runs.setdefault(boot, LeftRun(boot))
        run.records += seg.count - seg.n_done
        run.dials.update(name.decode(errors="replace") for name in res.dials)
        if t_first is not None and (run.t_ns_first is None or t_first < run.t_ns_first):
            run.t_ns_first = t_first
        if t_last is not None and (run.t_ns_last is None or t_last > run.t_ns_last):
            run.t_ns_last = t_last
    return list(runs.values())


def when(t_ns: int | None) -> str:
    return "?" if t_ns is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t_ns / 1e9))


def describe_run(run: LeftRun) -> str:
    dials = ", ".join(sorted(run.dials))
    return f"{run.records} of boot {run.boot} (dials {dials}; read {when(run.t_ns_first)} to {when(run.t_ns_last)})"


def announce(path: Path, report: LoadReport, events: Events) -> None:
    """Say what start-up found: one log line and one event per finding."""
    for bad in report.damaged:
        count = "an unknown number of" if bad.records is None else str(bad.records)
        message = (
            f"outbox {path}: {count} samples in {bad.segment} could not be read ({bad.bytes} damaged bytes "
            "skipped): lost; the intact samples around them are kept"
        )
        log.error("%s", message)
        data: dict[str, object] = {"path": str(path), "segment": bad.segment, "records": bad.records}
        data.update({"bytes": bad.bytes, "format": bad.version})
        events.emit("outbox.corrupt", message, data)
    for gone in report.missing:
        count = "an unknown number of" if gone.records is None else str(gone.records)
        message = (
            f"outbox {path}: segment {gone.segment} is missing (deleted by someone else or lost): "
            f"{count} samples in it were never delivered ({gone.delivered} had been)"
        )
        log.error("%s", message)
        data = {"path": str(path), "segment": gone.segment, "first_id": gone.first, "records": gone.records}
        data["delivered"] = gone.delivered
        events.emit("outbox.segment_missing", message, data)
    runs = left_runs(report.left)
    total = sum(run.records for run in runs)
    if total:
        message = (
            f"outbox {path} holds {total} samples of earlier runs, not yet delivered: replaying them now: "
            + "; ".join(describe_run(run) for run in runs)
            + f" (loaded in {report.ms:.0f} ms; `daq outbox show` lists them, `daq outbox discard` deletes them)"
        )
        log.warning("%s", message)
        runs_data: list[object] = [run.as_dict() for run in runs]
        events.emit("outbox.replay", message, {"path": str(path), "records": total, "runs": runs_data})
