"""Media clocks: where in the video each reading falls.

- `SessionClock`: free-running, started, paused, resumed and sought by command;
- `MpvClock`: follows mpv over its JSON IPC socket;
- `MqttFollowClock`: follows a position any app publishes on `<root>/<station>/media/position`;
- `MtcClock` (`daq.mediaclock.mtc`, needs the `midi` extra): follows MIDI Time Code.

Clocks that follow something outside either have a background job, `async run(on_change)` (mpv,
MTC), or name the MQTT topics they follow and take their messages, `subscriptions(base_topic)` and
`on_message(...)` (the MQTT one); see `daq.mediaclock.base`. `make_clock` builds the one the config
asks for.
"""

from daq.mediaclock.base import ClockChange, MediaClock, MediaPosition, MessageFedClock, OnChange, RunningClock, Segment
from daq.mediaclock.follow import FollowedClock
from daq.mediaclock.mpv import MpvClock
from daq.mediaclock.mqtt_follow import MqttFollowClock
from daq.mediaclock.session_clock import SessionClock

__all__ = [
    "ClockChange",
    "FollowedClock",
    "MediaClock",
    "MediaPosition",
    "MessageFedClock",
    "MpvClock",
    "MqttFollowClock",
    "OnChange",
    "RunningClock",
    "Segment",
    "SessionClock",
]
