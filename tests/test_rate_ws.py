"""`daq rate` without a browser: a script plays the page's part over the WebSocket, with the embedded broker.

The sitting starts with the first "playing" position, pauses, seeks back, loses its page for a moment
(the session goes on without a media position) and ends with "ended"; the recording holds only the
session's samples, placed on the positions sent; the command exits 0.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.procs import free_port, start_daq, stop_process, wait_port

pytestmark = pytest.mark.timeout(90)


async def send(ws: aiohttp.ClientWebSocketResponse, state: str, position: float) -> None:
    body = {"type": "position", "state": state, "position_s": position, "speed": 1.0, "t_ns": time.time_ns()}
    await ws.send_str(json.dumps(body))


async def play_the_page(port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/ws"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            hello = json.loads((await ws.receive()).data)
            assert hello["type"] == "hello" and hello["session"] is None
            await send(ws, "paused", 0.0)  # before playback: no session
            await asyncio.sleep(0.5)
            await send(ws, "playing", 0.0)
            await asyncio.sleep(1.5)
            await send(ws, "paused", 1.5)
            await asyncio.sleep(1.0)
            await send(ws, "playing", 0.5)  # a seek back
            await asyncio.sleep(1.0)
        await asyncio.sleep(0.6)  # the page closed: the session goes on without a media position
        async with http.ws_connect(url) as ws:
            hello = json.loads((await ws.receive()).data)
            assert hello["session"] is not None  # the same sitting
            await send(ws, "playing", 1.5)
            await asyncio.sleep(0.5)
            await ws.send_str(json.dumps({"type": "ended", "t_ns": time.time_ns()}))
            while True:
                msg = json.loads((await ws.receive(timeout=10)).data)
                if msg["type"] == "done":
                    return dict(msg)


def test_a_sitting_over_the_websocket_with_the_embedded_broker(tmp_path: Path) -> None:
    video = tmp_path / "v.webm"
    video.write_bytes(b"not really a video: the script never plays it")
    port = free_port()
    proc = start_daq(
        ["rate", "--video", str(video), "--simulate", "--embedded", "--fps", "25", "--station", "ws-1",
         "--rater", "observer-1", "--out", "rec", "--port", str(port), "--no-open"],
        tmp_path,
        "rate",
    )  # fmt: skip
    try:
        wait_port(port, 30)
        done = asyncio.run(play_the_page(port))
        assert proc.wait(30) == 0
    finally:
        stop_process(proc)
    log = (tmp_path / "rate.log").read_text()
    assert "started an embedded one" in log and "gap" not in log and "the page closed" in log
    folder = tmp_path / done["folder"]
    assert [p.name for p in (tmp_path / "rec" / "ws-1").iterdir()] == [folder.name]  # no no-session folder
    sitting = json.loads((folder / "sitting.json").read_text())
    assert sitting["rater"] == "observer-1" and sitting["video"]["size"] == video.stat().st_size
    lines = [line for line in (folder / "sim-01.csv").read_text().splitlines() if not line.startswith("#")]
    rows = list(csv.DictReader(lines))
    media = [float(r["media_s"]) for r in rows if r["media_s"]]
    assert sum(1 for r in rows if not r["media_s"]) >= 8  # the 0.6 s without a page
    assert len(media) >= 60  # 3.5 s at 20 Hz, less the start
    assert max(media) == pytest.approx(2.0, abs=0.15)
    assert max(sum(1 for m in media if m == v) for v in media) >= 15  # the pause: a second on one position
    assert any(b < a - 0.5 for a, b in itertools.pairwise(media))  # the seek back
