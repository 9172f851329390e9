"""The interview's codebook: category tags for helpful and for hindering segments.

Default: the categories of the helpful and hindering aspects of therapy sessions in Swift, Tompkins &
Parkin (J Clin Psychol 2017). A TOML file replaces them:

    name = "my lab's codebook"            # optional
    helpful = ["concrete strategy", "making connections", ...]
    hindering = ["off-topic", "feeling judged", ...]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from daq.exceptions import FatalError

DEFAULT_HELPFUL = (
    "concrete strategy",
    "making connections",
    "processing emotion",
    "listening",
    "empathy",
    "support or praise",
    "process of therapy",
)
DEFAULT_HINDERING = (
    "off-topic",
    "feeling judged",
    "too soon",
    "unwelcome perspective",
    "therapist's body language",
)


class CodebookError(FatalError):
    """A codebook file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Codebook:
    name: str = "Swift, Tompkins & Parkin 2017"
    helpful: tuple[str, ...] = DEFAULT_HELPFUL
    hindering: tuple[str, ...] = DEFAULT_HINDERING
    source: str = "built in"
    extra: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "helpful": list(self.helpful),
            "hindering": list(self.hindering),
            "source": self.source,
        }


def _tags(path: Path, data: dict[str, object], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        raise CodebookError(f"{path}: no '{key}' list; give {key} = [\"tag\", ...]")
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise CodebookError(f"{path}: '{key}' must be a list of non-empty strings")
    tags = tuple(v.strip() for v in value)
    if len(set(tags)) != len(tags):
        raise CodebookError(f"{path}: '{key}' lists a tag twice")
    return tags


def load_codebook(path: Path | None) -> Codebook:
    """The default codebook, or the one in a TOML file."""
    if path is None:
        return Codebook()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CodebookError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CodebookError(f"{path}: not TOML: {exc}") from exc
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise CodebookError(f"{path}: 'name' must be a string")
    unknown = sorted(set(data) - {"name", "helpful", "hindering"})
    if unknown:
        raise CodebookError(f"{path}: unknown key(s) {', '.join(unknown)}; a codebook has name, helpful, hindering")
    return Codebook(name, _tags(path, data, "helpful"), _tags(path, data, "hindering"), str(path))
