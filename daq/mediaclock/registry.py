"""The media clock kinds: one entry per kind, what dialdaq needs to know about it.

The station config's `[media] clock` names an entry here (daq.config validates it against
`names()`); `make_clock` (daq.mediaclock.factory) builds the entry's clock. An entry names its
code by 'module:attribute' strings (daq.lazy), so this module imports no clock and no optional
library: a clock's module, and its library, is imported when the clock is made.

Adding a clock is its module (with a `build(media) -> MediaClock` function) plus one `ClockKind`
line in BUILTIN; a lab's or a test's clock can be added at run time with `register`.

Hook signatures (the referenced callables):
    build(media: MediaConfig) -> MediaClock | None     (None: no clock, readings carry no position)
    check(media: MediaConfig) -> None                  (config validation; raise ValueError saying what is missing)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from daq.lazy import Extra, Ref

__all__ = ["BUILTIN", "ClockKind", "Extra", "get", "kinds", "names", "register", "registered", "unregister"]


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

_KINDS: dict[str, ClockKind] = {kind.name: kind for kind in BUILTIN}


def names() -> tuple[str, ...]:
    """The clock kinds, in the order they were registered (built-in ones first)."""
    return tuple(_KINDS)


def kinds() -> tuple[ClockKind, ...]:
    return tuple(_KINDS.values())


def get(name: str) -> ClockKind | None:
    return _KINDS.get(name)


def register(kind: ClockKind) -> None:
    """Add a clock kind; a name that is taken is refused (unregister it first)."""
    if kind.name in _KINDS:
        raise ValueError(f"the media clock kind {kind.name!r} is registered already")
    _KINDS[kind.name] = kind


def unregister(name: str) -> None:
    """Remove a kind added with `register` (the built-in ones stay)."""
    if any(kind.name == name for kind in BUILTIN):
        raise ValueError(f"{name!r} is a built-in media clock kind")
    _KINDS.pop(name, None)


@contextmanager
def registered(kind: ClockKind) -> Iterator[ClockKind]:
    """`register(kind)` for the duration of a with-block (a test's toy clock)."""
    register(kind)
    try:
        yield kind
    finally:
        unregister(kind.name)
