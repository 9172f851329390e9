"""How to open a serial dial: part of a firmware profile (what the device needs),
not of the station config (where it is attached)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from daq.validation import StrictModel


class SerialSettings(StrictModel):
    baud: int = Field(9600, gt=0, le=20_000_000, description="bits per second, e.g. 9600 or 115200")
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["none", "even", "odd", "mark", "space"] = "none"
    stopbits: float = Field(1, description="1, 1.5 or 2")
    dtr: bool | None = Field(
        None,
        description="DTR level after open; None leaves the driver's default (asserted). "
        "Most Arduino boards reset when DTR rises.",
    )
    rts: bool | None = Field(None, description="RTS level after open; None leaves the driver's default")
    settle_s: float = Field(
        0.0,
        ge=0,
        le=30,
        description="wait this long after open before reading (an Arduino reboots on open and prints a banner)",
    )
    init: str = Field(
        "",
        description="text written once after settle, e.g. a start command; "
        "backslash escapes (\\n, \\r, \\xNN) are honoured",
    )

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("stopbits is 1, 1.5 or 2")
        return value

    read_timeout_s: float = Field(0.5, ge=0.001, le=10, description="how long one blocking read waits")
