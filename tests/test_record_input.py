"""What the recorder writes from hostile or broken input (issue 13.3), and which gaps it reports (issue 14).

Without a broker: `Recorder.handle` takes a topic and payload as the MQTT layer hands them over.
Refused samples are counted by reason and never written; names are injective and bounded; a
quoted newline cannot start a `#` line; a recorder that subscribed late reports what came before
it once (`before_subscribe` in recorder.json), not as a gap in every session; `daq export` of a
session agrees with the recorder's summary.json of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daq.config import BrokerConfig
from daq.export import read_session
from daq.export.summary import recorded_gaps, seq_gaps
from daq.recording import read_recording, safe_name
from daq.subscribers.record_check import Refused, check_sample
from daq.subscribers.recorder import Recorder
from tests.support.samples import T0, station_sample

STATION = "lab-h"


def sample(seq: int, dial: str = "d1", session: str | None = "s-1", **extra: Any) -> dict[str, Any]:
    return station_sample(STATION, seq, dial, session, **extra)


def recorder(out: Path) -> Recorder:
    return Recorder(BrokerConfig(url="mqtt://127.0.0.1:1"), out)


def publish(rec: Recorder, body: Any, dial: str = "d1", raw: bytes | None = None) -> None:
    rec.handle(f"daq/{STATION}/dials/{dial}/samples", raw if raw is not None else json.dumps(body).encode())


HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"value": "abc"}, "invalid value"),
    ({"t_ns": "yesterday"}, "invalid t_ns"),
    ({"seq": 5.7}, "invalid seq"),
    ({"seq": 1e29}, "invalid seq"),
    ({"seq": "5"}, "invalid seq"),
    ({"seq": 1 << 70}, "seq out of range"),
    ({"seq": -1}, "invalid seq"),
    ({"station": "lab-other"}, "station disagrees with its topic"),
    ({"dial": "d2"}, "dial disagrees with its topic"),
    ({"boot": 'b1"\n# injected'}, "invalid boot"),
    ({"session": "s\n# injected,1,2"}, "invalid session"),
    ({"timecode": "00:00:00:00\n# injected"}, "invalid timecode"),
    ({"value": None}, "invalid value"),
    ({"extra": 1}, "unknown field extra"),
]


@pytest.mark.parametrize(("change", "reason"), HOSTILE)
def test_a_sample_outside_the_contract_is_refused_with_its_reason(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(Refused) as refused:
        check_sample(STATION, "d1", {**sample(15), **change})
    assert refused.value.reason == reason
    without = dict(sample(15))
    del without["t_ns"]
    with pytest.raises(Refused, match="missing t_ns"):
        check_sample(STATION, "d1", without)
    assert check_sample(STATION, "d1", sample(15, replay=True))["seq"] == 15


def test_hostile_messages_cost_only_themselves_counted_and_the_valid_ones_are_written(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    publish(rec, [sample(0), sample(1)])
    for change, _ in HOSTILE:
        publish(rec, {**sample(15), **change})
    publish(rec, None, raw=b"\xff not json")
    publish(rec, None, raw=b"[1, 2]")
    publish(rec, sample(2, dial="p 1"), dial="p 1")  # an id that is not one: refused, not a file
    publish(rec, sample(2, dial="x" * 300), dial="x" * 300)  # used to be OSError: File name too long
    rec.handle(f"daq/{'y' * 300}/status", b'{"v": 1}')
    publish(rec, [sample(2), sample(3)])
    rec.close()
    folder = tmp_path / STATION / "s-1"
    assert sorted(p.name for p in tmp_path.rglob("*.csv")) == ["d1.csv"]
    rows = read_recording(folder / "d1.csv")
    assert [r[1] for r in rows.rows] == ["0", "1", "2", "3"] and rows.torn == 0
    assert "injected" not in (folder / "d1.csv").read_text()
    refused = rec.stats.refused
    assert refused.count == len(HOSTILE) + 6
    assert refused.reasons["not JSON"] == 1 and refused.reasons["not a sample object"] == 2
    assert refused.reasons["topic has an invalid station or dial id"] == 3
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["gaps"] == [] and summary["dials"]["d1"]["rows"] == 4
    # In this session's summary: the refused samples that named it (not the bad session, not the bad topics).
    assert summary["rejected"]["count"] == len(HOSTILE) - 1
    assert summary["rejected"]["reasons"]["invalid seq"] == 5  # 1 << 70 arrives as a float (orjson)
    own = json.loads((tmp_path / "recorder.json").read_text())
    assert own["rejected"]["count"] == refused.count and own["rejected"]["reasons"]["invalid value"] == 2


def test_a_handler_bug_costs_one_message_and_a_full_disk_stops_the_recorder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = recorder(tmp_path)

    def broken(*args: Any) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(rec, "_sample", broken)
    publish(rec, sample(0))
    assert rec.stats.refused.reasons["error: KeyError"] == 1

    def full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rec, "_sample", full)
    with pytest.raises(OSError):  # not acknowledged: the broker keeps it for a restart
        publish(rec, sample(1))
    rec.close()


def test_names_are_injective_and_bounded() -> None:
    names = ["p-1", "p 1", "p_1", "p/1", "..", ".", "_..", "a" * 64, "a" * 65, "a" * 300, "a" * 301, "s\n# x", ""]
    mapped = [safe_name(n) for n in names]
    assert len(set(mapped)) == len(names)
    assert safe_name("p-1") == "p-1" and safe_name("a" * 64) == "a" * 64 and safe_name("s-20261123T1630Z-3f2a")
    assert all(0 < len(m) <= 64 and "/" not in m and m not in (".", "..") and m.isprintable() for m in mapped)


def test_header_values_stay_on_one_line(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    meta = {"profile": "sim\n1,2,3,4", "device": "/dev/x\r\n# station: evil", "scale": {"min": 0, "max": 1}}
    rec.handle(f"daq/{STATION}/dials/d1/meta", json.dumps(meta).encode())
    publish(rec, sample(0))
    rec.close()
    path = tmp_path / STATION / "s-1" / "d1.csv"
    recording = read_recording(path)
    assert recording.header["station"] == STATION and recording.header["profile"] == "sim\\x0a1,2,3,4"
    assert len(recording.rows) == 1 and recording.torn == 0


def test_a_late_recorder_reports_what_came_before_it_once_and_gaps_where_they_happened(tmp_path: Path) -> None:
    """Issue 14: a recorder started 2 s after the station reported "missing seq 0..110" in every
    session's summary.json, including sessions whose rows start at seq 683; `daq export` said
    nothing was missing. Now: before_subscribe once, each gap once in its own session."""
    rec = recorder(tmp_path)
    publish(rec, [sample(s) for s in range(111, 400)])
    publish(rec, [sample(s) for s in range(400, 683) if not 500 <= s <= 509])  # a gap inside s-1
    publish(rec, [sample(s, session="s-2") for s in range(683, 900)])
    publish(rec, [sample(s, session="s-3") for s in range(905, 950)])  # a gap at the start of s-3
    publish(rec, [sample(s, dial="d2") for s in range(0, 100)])  # a dial heard from its first seq
    rec.close()
    out = tmp_path / STATION
    summaries = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/summary.json")}
    assert summaries["s-1"]["gaps"] == [{"dial": "d1", "boot": "b1", "missing": [[500, 509]]}]
    assert summaries["s-2"]["gaps"] == []
    assert summaries["s-3"]["gaps"] == [{"dial": "d1", "boot": "b1", "missing": [[900, 904]]}]
    own = json.loads((tmp_path / "recorder.json").read_text())
    assert own["before_subscribe"] == [
        {
            "station": STATION,
            "dial": "d1",
            "boot": "b1",
            "first_seq_seen": 111,
            "first_t_ns": T0 + 111 * 10_000_000,
            "session": "s-1",
            "not_received": 111,
        }
    ]
    assert own["gaps"] == 15
    # `daq export` of each session says what its summary.json says.
    for name, summary in summaries.items():
        session = read_session(out / name)
        exported = [
            {"dial": d.dial, "boot": g["boot"], "missing": [[g["first"], g["last"]]]}
            for d in session.dials
            for g in seq_gaps(d.rows, recorded_gaps(session.recorder_summary, d.dial))[0]
        ]
        assert exported == summary["gaps"], name


def test_late_samples_fill_the_span_before_the_first_and_the_gaps(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    publish(rec, [sample(5), sample(6), sample(9)])
    publish(rec, [sample(7), sample(2)])  # late: 7 fills the gap, 2 the span before 5
    publish(rec, [sample(7), sample(2)])  # now duplicates
    rec.close()
    tracker = rec.trackers[(STATION, "b1", "d1")]
    assert tracker.missing == [[8, 8]] and tracker.before_first == 4 and rec.stats.duplicates == 2
    assert rec.before_subscribe()[0]["not_received"] == 4


def test_a_continued_file_is_not_reported_as_before_subscribe_again(tmp_path: Path) -> None:
    rec = Recorder(BrokerConfig(url="mqtt://127.0.0.1:1"), tmp_path, client_id="rec-1", persistent=True)
    publish(rec, [sample(s) for s in range(50, 60)])
    rec.close()
    again = Recorder(BrokerConfig(url="mqtt://127.0.0.1:1"), tmp_path, client_id="rec-1", persistent=True)
    publish(again, [sample(s) for s in range(60, 70)])
    again.close()
    assert again.before_subscribe() == []
    own = json.loads((tmp_path / "recorder@rec-1.json").read_text())
    assert [(e["first_seq_seen"], e["not_received"]) for e in own["before_subscribe"]] == [(50, 50)]
    summary = json.loads((tmp_path / STATION / "s-1" / "summary.json").read_text())
    assert summary["gaps"] == [] and summary["dials"]["d1"]["rows"] == 20


def test_a_continued_session_keeps_the_gap_its_earlier_run_reported(tmp_path: Path) -> None:
    """A gap just before a session's first row is seen only by the run that saw both sides; a
    persistent recorder restarted into that session keeps reporting it there."""
    first = Recorder(BrokerConfig(url="mqtt://127.0.0.1:1"), tmp_path, client_id="rec-1", persistent=True)
    publish(first, [sample(s, session="s-2") for s in range(0, 10)])
    publish(first, [sample(s, session="s-3") for s in range(15, 20)])
    first.close()
    again = Recorder(BrokerConfig(url="mqtt://127.0.0.1:1"), tmp_path, client_id="rec-1", persistent=True)
    publish(again, [sample(s, session="s-3") for s in range(20, 25)])
    again.close()
    summary = json.loads((tmp_path / STATION / "s-3" / "summary.json").read_text())
    assert summary["gaps"] == [{"dial": "d1", "boot": "b1", "missing": [[10, 14]]}]
    assert summary["dials"]["d1"]["rows"] == 10 and again.before_subscribe() == []


def test_a_station_it_was_not_asked_to_record_is_refused_even_if_the_broker_sends_it(tmp_path: Path) -> None:
    """`daq record --station lab-h` subscribes to lab-h only; a broker that delivers beyond the
    filters (seen with the embedded broker) costs those messages, counted, not a folder or a header."""
    rec = Recorder(BrokerConfig(url="mqtt://127.0.0.1:1"), tmp_path, station=STATION)
    rec.handle("daq/demo/status", b'{"v": 1, "station": "demo", "state": "online"}')
    rec.handle("daq/demo/dials/d1/samples", json.dumps(station_sample("demo", 0, "d1", "s-1")).encode())
    publish(rec, sample(0))
    rec.close()
    assert rec.seen_stations == {STATION}
    assert rec.stats.refused.reasons["a station this recorder does not record"] == 2
    assert not (tmp_path / "demo").exists()
    assert [r[1] for r in read_recording(tmp_path / STATION / "s-1" / "d1.csv").rows] == ["0"]
