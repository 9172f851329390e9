"""What the recorder writes: every sample checked against the contract first, every refusal counted.

A sample is written only when it is a valid `daq.contract.Sample` in strict mode (an integer `seq`
is an integer, not 5.7, 1e29 or "5"; `value` is a number, not "abc"), its integers fit in 64 bits,
its `station` and `dial` are the ones its topic names, and its text cells (`boot`, `session`) are
printable, one line each, so no quoted newline can start a line of the file. Anything else is
refused with a short reason ("invalid seq", "station disagrees with its topic", ...), counted by
reason, logged (the first few of each reason, then every 1000th), and reported in summary.json.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from daq.contract import Sample
from daq.recording import one_line

log = logging.getLogger(__name__)

INT64_MAX = (1 << 63) - 1
SESSION_MAX_LENGTH = 128
LOG_FIRST = 5  # refusals of one reason logged one by one; after that every LOG_EVERY-th
LOG_EVERY = 1000


class Refused(ValueError):
    """A message or sample the recorder does not write; `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "sample"
    kind = first.get("type", "")
    if kind == "missing":
        return f"missing {loc}"
    if kind == "extra_forbidden":
        return f"unknown field {one_line(loc)[:40]}"
    return f"invalid {loc}"


def check_sample(station: str, dial: str, sample: object) -> dict[str, Any]:
    """The sample, if the recorder may write it under topic station/dial; Refused otherwise."""
    if not isinstance(sample, dict):
        raise Refused("not a sample object")
    try:
        model = Sample.model_validate(sample, strict=True)
    except ValidationError as exc:
        raise Refused(_reason(exc)) from None
    if model.station != station:
        raise Refused("station disagrees with its topic")
    if model.dial != dial:
        raise Refused("dial disagrees with its topic")
    for name, number in (("seq", model.seq), ("t_ns", model.t_ns), ("frame", model.frame)):
        if number is not None and number > INT64_MAX:
            raise Refused(f"{name} out of range")
    if len(model.boot) > SESSION_MAX_LENGTH or not model.boot.isprintable():
        raise Refused("invalid boot")
    if model.session is not None and (len(model.session) > SESSION_MAX_LENGTH or not model.session.isprintable()):
        raise Refused("invalid session")
    return sample


@dataclass
class Refusals:
    """Refused messages and samples: counts by reason, for the whole run and per session folder."""

    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    by_session: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)

    def add(self, reason: str, topic: str, where: tuple[str, str] | None = None) -> None:
        """Count one refusal; `where` (station, session) when the refused sample names a usable one."""
        self.count += 1
        self.reasons[reason] += 1
        if where is not None:
            self.by_session.setdefault(where, Counter())[reason] += 1
        seen = self.reasons[reason]
        if seen <= LOG_FIRST or seen % LOG_EVERY == 0:
            log.warning("recorder: refused a message on %s: %s (%d so far)", one_line(topic)[:120], reason, seen)

    @staticmethod
    def report(reasons: Counter[str]) -> dict[str, Any]:
        """The form summary.json holds: `{"count": N, "reasons": {reason: n, ...}}`."""
        return {"count": sum(reasons.values()), "reasons": dict(sorted(reasons.items()))}
