"""Decoders: a profile turned into code that turns chunks into readings.

`make_decoder(profile)` builds the decoder for the profile's framing, the one its entry in
daq.profiles.framing_registry names (the decoder classes live in daq.profiles.framing and
daq.profiles.framing_input, the channel semantics in daq.profiles.fields). A decoder never raises
on input: what does not decode comes back as `Garbage`. Regexes and struct formats are
compiled here, once, so `feed` stays cheap (thousands of lines a second per dial).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from daq.profiles.fields import Value
from daq.profiles.framing_registry import BY_KIND
from daq.profiles.loader import LoadedProfile
from daq.profiles.model import Profile
from daq.reading import Chunk, Decoded, Garbage
from daq.seams import resolve

__all__ = ["Decoded", "Decoder", "GuardedDecoder", "make_decoder"]


class Decoder(Protocol):
    """Turns a device's chunks into readings, button events and garbage.

    Every item carries the `mono_ns` of the chunk that completed it. `ignored` counts input that
    is not a reading (banners, comments, empty lines, other HID reports), which is not garbage. A
    line that may have been a reading and is dropped on purpose (the first after opening) is a
    `Discarded` item instead, and a jump in the device's own report counter a `DeviceLoss`: both
    are counted and announced.

    `reset()` is called after a reconnect: it drops partial lines and frames (a cut line is not a
    sample) and returns what it dropped, for the device reader to count, and it re-baselines
    counter channels, but keeps the accumulated totals of relative and counter channels, so a
    dial's position survives an unplug. `reset(after_gap=True)`: the stream goes on after bytes may
    have gone missing (a reader process died with a round unsent). Each decoder decides what that
    means for its framing, so the rule lives in one place per framing: a line or frame cut by the
    gap is one counted loss and never a value the dial did not send, the baselines are kept, and
    decoders of whole reports and events (HID, input events, MIDI), which a gap cannot cut, read
    on as they are.
    """

    ignored: int

    def feed(self, chunk: Chunk) -> list[Decoded]: ...

    def reset(self, *, after_gap: bool = False) -> bytes: ...


DecoderFactory = Callable[..., Decoder]
"""`factory(profile, *, synced: bool) -> Decoder`: what a framing kind's `decoder` names."""


class GuardedDecoder:
    """Belt and braces: a decoder bug must not kill a device's reader. It becomes garbage
    (and the decoder starts clean), which tests treat as a failure."""

    def __init__(self, inner: Decoder) -> None:
        self._inner = inner
        # The common line's shortcut (LineDecoder.quick), when the decoder has one: state-free, so
        # not guarded here (a caller that finds it raising feeds the chunk, which is).
        self.quick_channel: str | None = getattr(inner, "quick_channel", None)
        self.quick: Callable[[bytes], Value | None] | None = getattr(inner, "quick", None)

    @property
    def ignored(self) -> int:
        return self._inner.ignored

    @ignored.setter
    def ignored(self, value: int) -> None:
        self._inner.ignored = value

    def feed(self, chunk: Chunk) -> list[Decoded]:
        try:
            return self._inner.feed(chunk)
        except Exception as exc:
            # What it held is said with the chunk (the chunk's bytes may be among it); the chunk may
            # have ended inside a line, so the next one is not read as whole: as after a gap.
            try:
                held = self._inner.reset()
                self._inner.reset(after_gap=True)
            except Exception:  # a reset that fails too: the decoder is as clean as it gets
                held = b""
            data = held if chunk.data in held else held + chunk.data
            return [Garbage(f"decoder error: {type(exc).__name__}: {exc}", data, chunk.mono_ns)]

    def reset(self, *, after_gap: bool = False) -> bytes:
        return self._inner.reset(after_gap=after_gap)


def make_decoder(profile: Profile | LoadedProfile, *, synced: bool = False) -> GuardedDecoder:
    """The decoder for `profile`'s framing.

    `synced=True` says the input starts at a line or frame boundary (a capture, a test,
    `daq profiles decode`): the first line is then not dropped as possibly cut.
    """
    if isinstance(profile, LoadedProfile):
        profile = profile.profile
    factory: DecoderFactory = resolve(BY_KIND[profile.framing.kind].decoder)
    return GuardedDecoder(factory(profile, synced=synced))
