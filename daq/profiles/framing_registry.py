"""The framing kinds, listed in one place: each kind's model (its [framing] table) and its decoder.

A profile's `framing.kind` picks an entry; `Framing` is the union pydantic tells apart by `kind`;
daq.profiles.decode builds a kind's decoder from `decoder`, a 'module:Class' string (daq.seams),
so this list imports no decoder and the decoders may import the models freely.

Adding a framing: its model class (daq.profiles.model_framings: `kind: Literal[...]` and
`field_names()`, the fields it names itself, or none when the profile's [fields] names them),
its decoder class (taking `(profile, *, synced: bool)` and following daq.profiles.decode.Decoder),
one `FramingKind` line in FRAMINGS and its class in the `Framing` union below (the two are checked
to agree on import); then name it in the `framings` of the transport kinds that carry it
(daq.transports.registry). The union is written out, not built from FRAMINGS, so that mypy
knows the profile's framing types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, get_args

from pydantic import Field

from daq.profiles.model_framings import BinaryFraming, EvdevFraming, LineFraming, MidiFraming, ReportFraming
from daq.seams import Ref
from daq.validation import StrictModel


@dataclass(frozen=True)
class FramingKind:
    """One framing kind (a profile's `framing.kind`)."""

    name: str
    model: type[StrictModel]
    decoder: Ref  # (profile, *, synced: bool) -> Decoder
    fields_in: str | None = None  # where the framing itself names its fields; None: the [fields] table


FRAMINGS: tuple[FramingKind, ...] = (
    FramingKind("line", LineFraming, "daq.profiles.framing:LineDecoder", fields_in="framing"),
    FramingKind("binary", BinaryFraming, "daq.profiles.framing:BinaryDecoder"),
    FramingKind("report", ReportFraming, "daq.profiles.framing:ReportDecoder"),
    FramingKind("evdev", EvdevFraming, "daq.profiles.framing_input:EvdevDecoder", fields_in="framing.events"),
    FramingKind("midi", MidiFraming, "daq.profiles.framing_input:MidiDecoder", fields_in="framing.controls"),
)

BY_KIND: dict[str, FramingKind] = {kind.name: kind for kind in FRAMINGS}

# The framings, told apart by `kind`: the models of FRAMINGS, in its order.
Framing = Annotated[
    LineFraming | BinaryFraming | ReportFraming | EvdevFraming | MidiFraming, Field(discriminator="kind")
]

if get_args(get_args(Framing)[0]) != tuple(kind.model for kind in FRAMINGS):  # pragma: no cover - caught on import
    raise TypeError("the Framing union must list the models of FRAMINGS, in its order")
