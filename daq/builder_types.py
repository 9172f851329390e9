"""What building a station's devices yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daq.device import Decoder
from daq.pipeline import DialPipeline
from daq.transports.base import Transport


@dataclass
class DeviceSetup:
    """One device: its transport and decoder, and the dial pipelines its channels feed."""

    transport: Transport
    decoder: Decoder
    routes: dict[str, DialPipeline] = field(default_factory=dict)  # channel -> pipeline
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # dial -> static part of its meta

    @property
    def pipelines(self) -> list[DialPipeline]:
        return list(self.routes.values())
