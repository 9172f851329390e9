"""The recording format (`daq.recording`): the recorder writes it, `daq record merge` and `daq export` read it
by the same rules, torn rows included, and `daq export` reads a shared group's session from its merged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daq.config import BrokerConfig
from daq.export import ExportError, read_session
from daq.export.reader import read_dial_file
from daq.recording import (
    COLUMNS,
    MARKER,
    file_name,
    header_text,
    part_of,
    read_recording,
    render_row,
    sample_cells,
)
from daq.subscribers.record_merge import merge_session
from daq.subscribers.recorder import Recorder

STATION = "lab-r"
T0 = 1_795_451_400_000_000_000
HEADER = f"# {MARKER}\n# station: {STATION}\n# dial: d1\n# session: s-1\n"
COLUMN_LINE = ",".join(COLUMNS) + "\n"


def sample(seq: int, boot: str = "b1", session: str = "s-1", **extra: object) -> dict[str, object]:
    return {
        "v": 1,
        "station": STATION,
        "dial": "d1",
        "session": session,
        "boot": boot,
        "seq": seq,
        "t_ns": T0 + seq,
        "media_s": None,
        "timecode": None,
        "frame": None,
        "value": 1.5,
        "raw": 3,
        **extra,
    }


def record(
    tmp_path: Path, samples: list[dict[str, object]], share: str | None = None, client_id: str | None = None
) -> Recorder:
    recorder = Recorder(BrokerConfig(url="mqtt://127.0.0.1:1"), tmp_path, client_id=client_id, share=share)
    recorder.handle(f"daq/{STATION}/dials/d1/meta", json.dumps({"profile": "sim", "rate_hz": 20.0}).encode())
    recorder.handle(f"daq/{STATION}/dials/d1/samples", json.dumps(samples).encode())
    recorder.close()
    return recorder


def test_names_header_and_rows() -> None:
    assert file_name("d1") == "d1.csv" and file_name("d1", "rA") == "d1@rA.csv"
    escaped = file_name("a/..")  # not an id: escaped, with a hash that tells it from every other name
    assert escaped.startswith("a~") and "/" not in escaped and escaped != file_name("a/.") != file_name("a")
    assert part_of(Path("x/d.1@rA.csv")) == ("d.1", "rA") and part_of(Path("d.1.csv")) == ("d.1", None)
    assert header_text({"station": "s", "profile": ""}) == f"# {MARKER}\n# station: s\n# profile: \n"
    assert sample_cells({"boot": "b", "seq": 3, "media_s": None, "replay": True}) == [
        "b",
        3,
        "",
        "",
        "",
        "",
        "",
        "",
        True,
    ]
    assert render_row(["a", "b,c", 'd"e']) == 'a,"b,c","d""e"\n' and render_row(["a", "b"]) == "a,b\n"


def test_the_recorder_writes_what_the_readers_read(tmp_path: Path) -> None:
    record(tmp_path, [sample(0), sample(1, replay=True), sample(2, media_s=1.25, timecode="00:00:01:06", frame=31)])
    path = tmp_path / STATION / "s-1" / "d1.csv"
    data = path.read_bytes()
    assert b"\r" not in data, "one line end for the whole file, header and table alike"
    recording = read_recording(path)
    assert recording.marked and recording.header["profile"] == "sim" and MARKER not in recording.header
    assert recording.columns == list(COLUMNS) and recording.column_line == 11 and recording.lines == [12, 13, 14]
    assert [r[:2] for r in recording.rows] == [["b1", "0"], ["b1", "1"], ["b1", "2"]] and recording.torn == 0
    typed = read_dial_file(path)
    assert [(r.seq, r.replay, r.media_s, r.frame) for r in typed.rows] == [
        (0, False, None, None),
        (1, True, None, None),
        (2, False, 1.25, 31),
    ]
    assert typed.header == recording.header and typed.dial == "d1"


def test_a_torn_row_is_skipped_and_counted_by_merge_and_export_alike(tmp_path: Path) -> None:
    """A recorder stopped mid-row and continued later leaves a short row in the middle of the file.

    `daq record merge` always skipped it; `daq export` crashed on it (AttributeError on the short
    row's missing cells). One reader now: both skip it and count it."""
    folder = tmp_path / STATION / "s-1"
    folder.mkdir(parents=True)
    path = folder / "d1.csv"
    path.write_text(
        HEADER + COLUMN_LINE + "b1,0,10,,,,1.0,1,False\n" + "b1,1,20,,,,1.\n" + "b1,2,30,,,,1.0,1,False\n",
        encoding="utf-8",
    )
    exported = read_dial_file(path)
    assert [r.seq for r in exported.rows] == [0, 2] and exported.torn == 1
    merged = merge_session(folder)
    assert merged.dials[0].rows == 2 and merged.dials[0].bad_rows == 1
    assert [r.seq for r in read_dial_file(path).rows] == [0, 2]


def test_a_recorder_continuing_a_torn_file_ends_the_torn_line_and_keeps_every_row(tmp_path: Path) -> None:
    folder = tmp_path / STATION / "s-1"
    folder.mkdir(parents=True)
    path = folder / "d1.csv"
    path.write_text(HEADER + COLUMN_LINE + "b1,0,10,,,,1.0,1,False\nb1,1,2", encoding="utf-8")
    recorder = record(tmp_path, [sample(0), sample(1), sample(2)])
    assert recorder.stats.duplicates == 1  # seq 0 was in the file; seq 1 was torn, so it is written now
    recording = read_recording(path)
    assert [int(r[1]) for r in recording.rows] == [0, 1, 2] and recording.torn == 1
    assert [r.seq for r in read_dial_file(path).rows] == [0, 1, 2]


def test_only_the_leading_hash_lines_are_the_header(tmp_path: Path) -> None:
    path = tmp_path / "d1.csv"
    path.write_text(HEADER + "# a comment without a colon\n" + COLUMN_LINE + "b1,0,10,,,,1.0,1,\n# station: other\n")
    recording = read_recording(path)
    assert recording.header["station"] == STATION and "a comment without a colon" not in recording.header
    assert len(recording.rows) == 1 and recording.torn == 1
    plain = tmp_path / "notes.csv"
    plain.write_text("a,b\n1,2\n")
    assert not read_recording(plain).marked


def test_export_reads_a_shared_group_session_from_its_merged_files(tmp_path: Path) -> None:
    """Parts are a share each: export asks for the merge first, then reads the merged file only.

    Before, the parts and the merged file all said `dial: d1`, so `daq export` refused a merged
    session ("dial 'd1' is also in ...")."""
    record(tmp_path, [sample(0), sample(2)], share="g1", client_id="rA")
    record(tmp_path, [sample(1), sample(3)], share="g1", client_id="rB")
    folder = tmp_path / STATION / "s-1"
    assert sorted(p.name for p in folder.glob("*.csv")) == ["d1@rA.csv", "d1@rB.csv"]
    with pytest.raises(ExportError, match=r"d1 are in parts of a shared recorder group .*`daq record merge"):
        read_session(folder)
    merged = merge_session(folder)
    assert merged.dials[0].rows == 4 and not merged.dials[0].gaps
    session = read_session(folder)
    assert [d.path.name for d in session.dials] == ["d1.csv"]
    assert [r.seq for r in session.dials[0].rows] == [0, 1, 2, 3]
    assert session.recorder_summary is not None and session.recorder_summary["merged_from"] == [
        "d1@rA.csv",
        "d1@rB.csv",
    ]
