"""Seams: what every seam registry shares, a table of named kinds, lazy references, optional extras.

A seam is where dialdaq takes new kinds of a thing: transports (daq.transports.registry),
media clocks (daq.mediaclock.registry), framings (daq.profiles.framing_registry, a fixed list:
its models are part of the profile format). An entry names its code by a 'module:attribute'
string (`Ref`), resolved on first use (`resolve`), as bleak's backend table does: listing the
kinds imports nothing, an optional library is imported only when its kind is used, and a
registry never imports the modules that read it, so there is no import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

Ref = str | Callable[..., Any]
"""A 'module:attribute' string, or (for kinds registered at run time, e.g. by a test) the object itself."""


def resolve(ref: Ref) -> Any:
    """The object `ref` names; 'module:Class.method' walks attributes after the colon."""
    if not isinstance(ref, str):
        return ref
    module_name, sep, attribute = ref.partition(":")
    if not sep or not attribute:
        raise ValueError(f"a lazy reference is 'module:attribute', got {ref!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Extra:
    """An optional library: the pip extra that installs it and the modules it provides."""

    name: str  # pip install 'dialdaq[<name>]' (pyproject.toml [project.optional-dependencies])
    modules: tuple[str, ...]  # what `import` must find


def one_of(names: Sequence[str]) -> str:
    """ "'a', 'b' or 'c'": the names as a message lists them."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


class Named(Protocol):
    @property
    def name(self) -> str: ...


K = TypeVar("K", bound=Named)


class Registry(Generic[K]):
    """The kinds of one seam, by name, in the order they were registered (built-in ones first).
    Kinds added with `register` (a lab's, a test's) can be removed again; built-in ones stay."""

    def __init__(self, what: str, builtin: Iterable[K]) -> None:
        self.what = what  # "transport kind", for messages
        self.builtin: tuple[K, ...] = tuple(builtin)
        self._kinds: dict[str, K] = {kind.name: kind for kind in self.builtin}

    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def kinds(self) -> tuple[K, ...]:
        return tuple(self._kinds.values())

    def get(self, name: str) -> K | None:
        return self._kinds.get(name)

    def choices(self) -> str:
        """The names as a message lists them: "'a', 'b' or 'c'"."""
        return one_of(self.names())

    def register(self, kind: K) -> None:
        """Add a kind; a name that is taken is refused (unregister it first)."""
        if kind.name in self._kinds:
            raise ValueError(f"the {self.what} {kind.name!r} is registered already")
        self._kinds[kind.name] = kind

    def unregister(self, name: str) -> None:
        """Remove a kind added with `register`."""
        if any(kind.name == name for kind in self.builtin):
            raise ValueError(f"{name!r} is a built-in {self.what}")
        self._kinds.pop(name, None)

    @contextmanager
    def registered(self, kind: K) -> Iterator[K]:
        """`register(kind)` for the duration of a with-block (a test's toy kind)."""
        self.register(kind)
        try:
            yield kind
        finally:
            self.unregister(kind.name)
