"""The micro-process study: a rating sitting on a video (`daq rate`) and the recall interview (`daq review`).

- `codebook`: the interview's category tags (Swift, Tompkins & Parkin 2017 by default; a TOML file replaces them);
- `picks`: the segments to ask about, from `daq.export.segments`, with a minimum gap and a reaction-lag shift;
- `interview`: the answers, saved atomically to `<session>/interview.json` and `interview.csv`;
- `sitting`: the video's identity (file, size, sha256) and the sitting's `sitting.json` in the session folder;
- `sitting_recorder`: the recorder of a sitting (only the session's samples);
- `review`: the interview page's web server; `rate`: the sitting page's web server and station glue;
  both pages' files are in `static/` (STATIC).
"""

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
