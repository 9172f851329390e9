"""Media clocks: where in the video each reading falls."""

from daq.mediaclock.base import MediaClock, MediaPosition, Segment
from daq.mediaclock.session import SessionClock

__all__ = ["MediaClock", "MediaPosition", "Segment", "SessionClock"]
