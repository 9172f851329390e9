"""Profile regexes (a line framing's `pattern` and `ignore`), run on Google's RE2.

RE2 matches in time linear in the line's length whatever the pattern: a pattern such as
`S=(?P<pos>([0-9]+)+)`, which makes Python's `re` backtrack for seconds on a 31-byte line
that does not match, costs RE2 microseconds. That is why profile patterns do not use `re`:
decoding runs on the station's event loop, and one slow line would stall every dial.
The price is RE2's syntax, which has no look-around ((?=, (?!, (?<=, (?<!) and no
back-references (\\1, (?P=name)); `compile_linear` refuses those with a message that says so.
Perl classes (\\d, \\w, \\s, \\b) are ASCII, as `re.ASCII` made them before.

The line itself is bounded too (`framing.max_length`, at most 65536 bytes), so the time
one line can cost the loop is bounded: pattern size (RE2 caps a compiled program at
`max_mem`) times line length.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import re2

__all__ = ["LinePattern", "PatternRefused", "compile_linear"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print its own error line on stderr; ours names the key and the fix
_BOTH = re2._re2.RE2.Anchor.ANCHOR_BOTH
_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED

_UNSUPPORTED_HINT = (
    "profile patterns run on RE2, which matches any line in linear time: it has no look-ahead or "
    "look-behind ((?=, (?!, (?<=, (?<!) and no back-references (\\1, (?P=name)); rewrite the pattern "
    "without them (a negative look-ahead such as ^(?!t,)[a-z] becomes ^(?:[a-su-z]|t(?:[^,]|$)))"
)


class PatternRefused(ValueError):
    """The pattern is not valid, or uses syntax RE2 does not run."""


class LinePattern:
    """A compiled profile pattern. Matching goes straight to RE2's matcher on the line's UTF-8
    bytes (the binding's `re`-like Match objects cost ten times the match itself)."""

    __slots__ = ("_match", "groupindex", "pattern")

    def __init__(self, pattern: str) -> None:
        try:
            re.compile(pattern)  # only to tell a typo from syntax RE2 lacks; compiling is quick, matching was not
        except re.error as exc:
            raise PatternRefused(f"not a valid regular expression: {exc} (got {pattern!r})") from None
        try:
            compiled = re2.compile(pattern, options=_OPTIONS)
        except re2.error as exc:
            why = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            problem = f"not a pattern dialdaq can run: {why} (got {pattern!r}); {_UNSUPPORTED_HINT}"
            raise PatternRefused(problem) from None
        self.pattern = pattern
        self.groupindex: dict[str, int] = dict(compiled.groupindex)
        self._match: Callable[[Any, bytes, int, int], list[tuple[int, int]]] = compiled._regexp.Match

    def groups(self, text: str, indices: Sequence[int]) -> list[str | None] | None:
        """Match the whole of `text`: the texts of the groups at `indices` (None for a group that
        took no part), or None when the text does not match."""
        data = text.encode("utf-8")
        spans = self._match(_BOTH, data, 0, len(data))
        if spans[0][0] < 0:
            return None
        out: list[str | None] = []
        for i in indices:
            start, end = spans[i]
            out.append(data[start:end].decode("utf-8") if start >= 0 else None)
        return out

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in `text`."""
        data = text.encode("utf-8")
        return self._match(_UNANCHORED, data, 0, len(data))[0][0] >= 0


@lru_cache(maxsize=256)
def compile_linear(pattern: str) -> LinePattern:
    """`pattern` compiled by RE2; PatternRefused says what is wrong and how to fix it."""
    return LinePattern(pattern)
