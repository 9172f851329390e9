"""Media clocks: where in the video each reading falls.

- `SessionClock`: free-running, started, paused, resumed and sought by command;
- `MpvClock`: follows mpv over its JSON IPC socket;
- `MqttFollowClock`: follows a position any app publishes on `<root>/<station>/media/position`;
- `MtcClock` (`daq.mediaclock.mtc`, needs the `midi` extra): follows MIDI Time Code.

Clocks that follow something outside have `async run(on_change)` (except the MQTT one, which the
station's control feeds); `make_clock` builds the one the config asks for.
"""

from daq.mediaclock.base import MediaClock, MediaPosition, Segment
from daq.mediaclock.follow import ClockChange, FollowedClock, OnChange
from daq.mediaclock.mpv import MpvClock
from daq.mediaclock.mqtt_follow import MqttFollowClock
from daq.mediaclock.session import SessionClock

__all__ = [
    "ClockChange",
    "FollowedClock",
    "MediaClock",
    "MediaPosition",
    "MpvClock",
    "MqttFollowClock",
    "OnChange",
    "Segment",
    "SessionClock",
]
