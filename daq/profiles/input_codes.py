"""Linux input event codes by name (linux/input-event-codes.h), for evdev profiles.

Kept here, not taken from python-evdev's `ecodes`, so that a profile validates and decodes
(`daq profiles check`, `daq profiles decode`, the decode tests) where the evdev extra is not
installed. Only the codes a dial, a knob box or a joystick sends are named; any other code is
written as TYPE:NUMBER, e.g. "KEY:0x2c0" or "ABS:40".
"""

from __future__ import annotations

import re

EV_SYN = 0x00
EV_KEY = 0x01
EV_REL = 0x02
EV_ABS = 0x03

TYPES: dict[str, int] = {"SYN": EV_SYN, "KEY": EV_KEY, "BTN": EV_KEY, "REL": EV_REL, "ABS": EV_ABS}
TYPE_NAMES: dict[int, str] = {EV_SYN: "EV_SYN", EV_KEY: "EV_KEY", EV_REL: "EV_REL", EV_ABS: "EV_ABS"}

_REL = ["X", "Y", "Z", "RX", "RY", "RZ", "HWHEEL", "DIAL", "WHEEL", "MISC"]
_ABS = ["X", "Y", "Z", "RX", "RY", "RZ", "THROTTLE", "RUDDER", "WHEEL", "GAS", "BRAKE"]
_ABS_HATS = ["HAT0X", "HAT0Y", "HAT1X", "HAT1Y", "HAT2X", "HAT2Y", "HAT3X", "HAT3Y"]
_BTN_JOYSTICK = [
    "TRIGGER",
    "THUMB",
    "THUMB2",
    "TOP",
    "TOP2",
    "PINKIE",
    "BASE",
    "BASE2",
    "BASE3",
    "BASE4",
    "BASE5",
    "BASE6",
]
_BTN_GAMEPAD = [
    "SOUTH",
    "EAST",
    "C",
    "NORTH",
    "WEST",
    "Z",
    "TL",
    "TR",
    "TL2",
    "TR2",
    "SELECT",
    "START",
    "MODE",
    "THUMBL",
    "THUMBR",
]

CODES: dict[str, tuple[int, int]] = {}
CODES.update({f"REL_{name}": (EV_REL, i) for i, name in enumerate(_REL)})
CODES.update({"REL_WHEEL_HI_RES": (EV_REL, 0x0B), "REL_HWHEEL_HI_RES": (EV_REL, 0x0C)})
CODES.update({f"ABS_{name}": (EV_ABS, i) for i, name in enumerate(_ABS)})
CODES.update({f"ABS_{name}": (EV_ABS, 0x10 + i) for i, name in enumerate(_ABS_HATS)})
CODES.update({"ABS_PRESSURE": (EV_ABS, 0x18), "ABS_MISC": (EV_ABS, 0x28)})
CODES.update({f"BTN_{i}": (EV_KEY, 0x100 + i) for i in range(10)})
CODES.update(
    {
        f"BTN_{name}": (EV_KEY, 0x110 + i)
        for i, name in enumerate(["LEFT", "RIGHT", "MIDDLE", "SIDE", "EXTRA", "FORWARD", "BACK", "TASK"])
    }
)
CODES.update({f"BTN_{name}": (EV_KEY, 0x120 + i) for i, name in enumerate(_BTN_JOYSTICK)})
CODES.update({f"BTN_{name}": (EV_KEY, 0x130 + i) for i, name in enumerate(_BTN_GAMEPAD)})
CODES.update({f"BTN_TRIGGER_HAPPY{i}": (EV_KEY, 0x2C0 + i - 1) for i in range(1, 41)})
CODES.update({"KEY_ENTER": (EV_KEY, 28), "KEY_SPACE": (EV_KEY, 57), "SYN_REPORT": (EV_SYN, 0)})
ALIASES = {
    "BTN_MISC": "BTN_0",
    "BTN_MOUSE": "BTN_LEFT",
    "BTN_JOYSTICK": "BTN_TRIGGER",
    "BTN_GAMEPAD": "BTN_SOUTH",
    "BTN_A": "BTN_SOUTH",
    "BTN_B": "BTN_EAST",
    "BTN_X": "BTN_NORTH",
    "BTN_Y": "BTN_WEST",
}

_NAMES: dict[tuple[int, int], str] = {code: name for name, code in CODES.items()}
CODES.update({alias: CODES[name] for alias, name in ALIASES.items()})

_NUMERIC = re.compile(r"^(SYN|KEY|BTN|REL|ABS):(0[xX][0-9a-fA-F]{1,4}|[0-9]{1,5})$")


def parse_event(text: str) -> tuple[int, int]:
    """'REL_DIAL' -> (EV_REL, 7); 'ABS:40' / 'KEY:0x2c0' -> (type, code). Raises ValueError."""
    name = text.strip().upper()
    if name in CODES:
        return CODES[name]
    match = _NUMERIC.match(text.strip())
    if match is not None:
        code = int(match.group(2), 0)
        if code <= 0x2FF:
            return TYPES[match.group(1).upper()], code
    raise ValueError(
        f"unknown input event {text!r}: give a name such as REL_DIAL, REL_WHEEL, ABS_X, BTN_0, "
        "or TYPE:NUMBER for any other code (e.g. 'KEY:0x2c0', 'ABS:40'; see `evtest` for what your device sends)"
    )


def event_name(ev_type: int, code: int) -> str:
    """(EV_REL, 7) -> 'REL_DIAL'; unnamed codes as TYPE:0xNNN."""
    name = _NAMES.get((ev_type, code))
    if name is not None:
        return name
    kind = TYPE_NAMES.get(ev_type, f"EV_{ev_type}").removeprefix("EV_")
    return f"{kind}:0x{code:03x}"
