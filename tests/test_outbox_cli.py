"""`daq outbox show|discard` (issue 14), each a real subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from daq.outbox.disk import DiskOutbox
from daq.outbox.inventory import in_use
from tests.support.procs import clean_env, daq_cmd, free_port, start_daq, stop_process, wait_for

T0 = 1_795_451_400_000_000_000


def fill(folder: Path, boot: str = "b0a7", n: int = 40, acked: int = 0) -> None:
    box = DiskOutbox(folder, segment_bytes=2_000)
    for i in range(n):
        dial = f"p{i % 2}"
        sample = {"boot": boot, "dial": dial, "seq": i // 2, "t_ns": T0 + i * 10**8, "value": 1.5}
        box.put(dial, f"daq/st/dials/{dial}/samples", json.dumps(sample).encode())
    if acked:
        box.ack(box.take(acked))
    box.close()


def daq(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(daq_cmd(*args), input=stdin, capture_output=True, text=True, env=clean_env(**env), timeout=60)


def test_show_lists_per_boot_and_dial(tmp_path: Path) -> None:
    folder = tmp_path / "ob"
    fill(folder, acked=4)
    fill_more = DiskOutbox(folder)  # a second run, another boot
    fill_more.take(1000)  # (nothing acked)
    fill_more.put("q9", "daq/st/dials/q9/samples", json.dumps({"boot": "c0de", "seq": 0, "t_ns": T0}).encode())
    fill_more._close_files()  # crashed: its segment is not sealed
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = daq("outbox", "show", "--path", str(folder))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"outbox {folder}: 37 samples waiting" in text and "no daemon running on it" in text
    assert "b0a7  p0" in text and "18       2..19" in text and "2026-11-23 16:30:00.400" in text
    assert "c0de  q9" in text
    data = json.loads(daq("outbox", "show", "--path", str(folder), "--json").stdout)
    groups = {(g["boot"], g["dial"]): g for g in data["groups"]}
    assert data["records"] == 37 and set(groups) == {("b0a7", "p0"), ("b0a7", "p1"), ("c0de", "q9")}
    p1 = groups[("b0a7", "p1")]
    assert (p1["records"], p1["seq_first"], p1["seq_last"]) == (18, 2, 19)
    assert (p1["t_ns_first"], p1["t_ns_last"]) == (T0 + 5 * 10**8, T0 + 39 * 10**8) and p1["bytes"] > 18 * 60
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files  # show changes nothing


def test_show_finds_the_folder_from_config_or_station(tmp_path: Path) -> None:
    state = tmp_path / "state"
    fill(state / "dialdaq" / "outbox-lab-q")
    out = daq("outbox", "show", "--station", "lab-q", XDG_STATE_HOME=str(state))
    assert out.returncode == 0 and "40 samples waiting" in out.stdout, out
    cfg = tmp_path / "station.toml"
    cfg.write_text('[station]\nid = "lab-q"\n[broker]\nurl = "mqtt://127.0.0.1:1"\n')
    out = daq("outbox", "show", "--config", str(cfg), XDG_STATE_HOME=str(state))
    assert out.returncode == 0 and "40 samples waiting" in out.stdout, out
    out = daq("outbox", "show", "--path", str(tmp_path / "none"))
    assert out.returncode == 0 and "no such folder" in out.stdout
    assert daq("outbox", "show").returncode == 2


def test_discard_asks_and_logs_a_deliberate_choice(tmp_path: Path) -> None:
    folder = tmp_path / "ob"
    fill(folder)
    files = sorted(p.name for p in folder.iterdir())
    out = daq("outbox", "discard", "--path", str(folder), stdin="\n")  # the default is No
    assert out.returncode == 1 and "[y/N]" in out.stdout and "nothing discarded" in out.stdout
    assert sorted(p.name for p in folder.iterdir()) == files
    out = daq("outbox", "discard", "--path", str(folder), stdin="y\n")
    assert out.returncode == 0, out.stderr
    assert "discarded 40 samples (boots b0a7;" in out.stderr and "a deliberate choice" in out.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["LOCK"]
    box = DiskOutbox(folder)
    assert box.pending == 0 and box.dropped == 0  # nothing reported missing: it was discarded on purpose
    box.close()
    assert "nothing to discard" in daq("outbox", "discard", "--path", str(folder), "--yes").stdout


def test_discard_refuses_while_a_daemon_holds_the_outbox(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f'[station]\nid = "lab-l"\n[broker]\nurl = "mqtt://127.0.0.1:{free_port()}"\n[outbox]\npath = "{folder}"\n'
    )
    daemon = start_daq(["run", "--config", str(cfg), "--simulate", "1", "--rate", "50"], tmp_path)
    try:
        wait_for(lambda: in_use(folder) and any(folder.glob("seg-*")), timeout=20, what="the daemon's outbox")
        out = daq("outbox", "discard", "--config", str(cfg), "--yes")
        assert out.returncode == 1 and "in use by a running daemon" in out.stderr, out
        assert any(folder.glob("seg-*"))
        shown = daq("outbox", "show", "--config", str(cfg))
        assert shown.returncode == 0 and "in use by a running daemon: a snapshot" in shown.stdout
    finally:
        stop_process(daemon)
    out = daq("outbox", "discard", "--config", str(cfg), "--yes")
    assert out.returncode == 0 and "a deliberate choice" in out.stderr, out
    assert not any(folder.glob("seg-*"))
