"""Turn pydantic validation errors into messages that name the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from pydantic import BaseModel, ConfigDict, ValidationError

from daq.exceptions import ConfigError

# Config, profiles and wire payloads: immutable, an unknown key is an error, not ignored, and a
# number is finite (nan, inf and 1e999 are refused: JSON has none, and a scale of nan made every
# sample's value null).
STRICT = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class StrictModel(BaseModel):
    model_config = STRICT


def dotted(loc: tuple[int | str, ...]) -> str:
    """('dials', 0, 'scale', 'min') -> 'dials[0].scale.min' (TOML-ish, as a user reads it)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _explain(err: dict[str, object]) -> str:
    kind = err.get("type")
    msg = str(err.get("msg", "invalid"))
    if kind == "extra_forbidden":
        return "unknown key: remove it or check its spelling against the example config"
    if kind == "missing":
        return "required key is missing: add it"
    if kind in ("scale", "calibration"):
        return msg  # says the values itself
    if kind == "finite_number":
        return f"must be a finite number: nan and inf are none (got {err.get('input')!r})"
    value = err.get("input")
    loc = err.get("loc", ())
    if isinstance(loc, tuple) and any(isinstance(p, str) and ("password" in p or p == "url") for p in loc):
        return msg  # never echo what may be a secret (a url can carry user:password@)
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{msg} (got {shown})"


def raise_config_error(
    file: str | Path | None,
    exc: ValidationError,
    error_class: type[ConfigError] = ConfigError,
    prefix: str = "",
) -> NoReturn:
    """Raise `error_class` for the first problem in `exc`, with the others listed after it."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    key = dotted(tuple(first["loc"]))
    if prefix:
        key = f"{prefix}.{key}" if key else prefix
    problem = _explain(dict(first))
    if len(errors) > 1:
        rest = "; ".join(f"{dotted(tuple(e['loc'])) or '<top>'}: {_explain(dict(e))}" for e in errors[1:4])
        problem += f" (also: {rest})"
    raise error_class(file, key or None, problem) from None
