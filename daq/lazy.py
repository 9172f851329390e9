"""Lazy references ('package.module:attribute' strings resolved on first use) and `Extra`, the
optional library a registered kind needs.

The seam registries (daq.transports.registry, daq.mediaclock.registry, daq.profiles.framing_registry)
name their code by such strings, as bleak's backend table does, so listing a kind imports
nothing: an optional library is imported only when its kind is used, and a registry never
imports the modules that read it (no import cycle).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
