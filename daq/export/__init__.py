"""Analysis-ready exports of `daq record` sessions: tidy tables, resampling, summary, segments, agreement.

`daq export SESSION_DIR [...]` and `daq report SESSION_DIR [...]` are the commands; these modules
are usable from Python too:

- `reader`: read the recorder's CSV files and headers;
- `sittings`: several session folders of one video as raters (labels, video identity);
- `resample`: the held signal on the media timeline, fixed-rate grids and bins (rules in its docstring);
- `lag`: reaction lag per rater (`--lag auto`);
- `agreement`: ICC(2,1/k), ICC(3,1/k), Lin's CCC, Krippendorff's alpha, Cronbach's alpha, mean r;
- `accuracy`: empathic accuracy against a target rater, per epoch through Fisher's z;
- `summary`: coverage, gaps, statistics per dial, and the agreement block;
- `segments`: the most helpful / most hindering windows (micro-process interviews);
- `analysis`: one run of all of the above, shared by `daq export` and `daq report`;
- `report`, `report_data`, `report_style`: the self-contained HTML report;
- `writers`, `writers_sittings`: CSV and Parquet (the optional extra `parquet`).
"""

from __future__ import annotations

from daq.export.analysis import Analysis, AnalysisOptions, analyse
from daq.export.reader import DialRecording, ExportError, Row, SessionRecording, read_dial_file, read_session
from daq.export.resample import HeldSignal, Resampled, resample
from daq.export.segments import Window, find_segments
from daq.export.summary import format_summary, icc, session_summary

__all__ = [
    "Analysis",
    "AnalysisOptions",
    "DialRecording",
    "ExportError",
    "HeldSignal",
    "Resampled",
    "Row",
    "SessionRecording",
    "Window",
    "analyse",
    "find_segments",
    "format_summary",
    "icc",
    "read_dial_file",
    "read_session",
    "resample",
    "session_summary",
]
