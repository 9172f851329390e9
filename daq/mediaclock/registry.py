"""The media clock kinds: one entry per kind, what dialdaq needs to know about it.

The station config's `[media] clock` names an entry here (daq.config validates it against
`CLOCKS.names()`); `make_clock` (daq.mediaclock.factory) builds the entry's clock. An entry names its
code by 'module:attribute' strings (daq.seams), so this module imports no clock and no optional
library: a clock's module, and its library, is imported when the clock is made.

Adding a clock is its module (with a `build(media) -> MediaClock` function) plus one `ClockKind`
line in BUILTIN. `CLOCKS` is the table everything reads (`CLOCKS.get(name)`, `.names()`); a lab's or a
test's clock is added at run time with `CLOCKS.register(kind)` (or `with CLOCKS.registered(kind):`).

Hook signatures (the referenced callables):
    build(media: MediaConfig) -> MediaClock | None     (None: no clock, readings carry no position)
    check(media: MediaConfig) -> None                  (config validation; raise ValueError saying what is missing)
"""

from __future__ import annotations

from dataclasses import dataclass

from daq.seams import Extra, Ref, Registry

__all__ = ["BUILTIN", "CLOCKS", "ClockKind", "Extra"]


@dataclass(frozen=True)
class ClockKind:
    """One media clock kind (the config's `[media] clock`)."""

    name: str
    build: Ref  # (media) -> MediaClock | None
    check: Ref | None = None  # (media) -> None, raises ValueError: what the config must also give
    extra: Extra | None = None  # the optional library `build` needs; None: it comes with dialdaq


BUILTIN: tuple[ClockKind, ...] = (
    ClockKind("session", build="daq.mediaclock.factory:build_session"),
    ClockKind("mpv", build="daq.mediaclock.factory:build_mpv", check="daq.mediaclock.factory:check_mpv"),
    ClockKind("mqtt", build="daq.mediaclock.factory:build_mqtt"),
    # python-rtmidi is needed too, but only to open the port: the clock checks it when it runs.
    ClockKind("mtc", build="daq.mediaclock.factory:build_mtc", extra=Extra("midi", ("mido",))),
    ClockKind("none", build="daq.mediaclock.factory:build_none"),
)

CLOCKS: Registry[ClockKind] = Registry("media clock kind", BUILTIN)
"""The media clock kinds: the built-in ones, then any registered at run time."""
