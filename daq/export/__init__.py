"""Analysis-ready exports of `daq record` sessions: tidy tables, resampling, summary, segments.

`daq export SESSION_DIR` is the command; these modules are usable from Python too:

- `reader`: read the recorder's CSV files and headers;
- `resample`: the held signal on the media timeline, fixed-rate grids and bins (rules in its docstring);
- `summary`: coverage, gaps, statistics, and ICC agreement across dials;
- `segments`: the most helpful / most hindering windows (micro-process interviews);
- `writers`: CSV and Parquet (the optional extra `parquet`).
"""

from __future__ import annotations

from daq.export.reader import DialRecording, ExportError, Row, SessionRecording, read_dial_file, read_session
from daq.export.resample import HeldSignal, Resampled, resample
from daq.export.segments import Window, find_segments
from daq.export.summary import format_summary, icc, session_summary

__all__ = [
    "DialRecording",
    "ExportError",
    "HeldSignal",
    "Resampled",
    "Row",
    "SessionRecording",
    "Window",
    "find_segments",
    "format_summary",
    "icc",
    "read_dial_file",
    "read_session",
    "resample",
    "session_summary",
]
