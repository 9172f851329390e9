"""dialdaq: read rating dials, place every reading on the video's timecode, publish it over MQTT."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dialdaq")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
