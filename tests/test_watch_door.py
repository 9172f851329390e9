"""The watch page's door (issue 13.8): the rules on their own, through the aiohttp app, and a real `daq watch`.

Off loopback every request needs the token (query or cookie); on loopback the Host must be a
loopback name; the WebSocket takes only the page's own Origin; a page that sends too much, too
fast, or reads too slowly is closed. The real-process test serves on 127.0.0.2: not a loopback
name by the rules (so the token is needed), while the traffic stays on this machine.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from daq.config import BrokerConfig
from daq.subscribers.watch.bridge import WatchBridge
from daq.subscribers.watch.server import make_app
from daq.web.door import (
    MAX_MESSAGES_PER_S,
    MAX_QUEUED_MESSAGES,
    Door,
    RateLimit,
    host_name,
    is_loopback,
    origin_ok,
    token_cookie,
)
from daq.web.page_socket import Outbox
from tests.support.procs import Mosquitto, free_port, start_daq, stop_process, wait_for


def bridge() -> WatchBridge:
    return WatchBridge(BrokerConfig(url="mqtt://127.0.0.1:1"), "daq", "lab")


def test_the_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("127.0.0.2") and not is_loopback("0.0.0.0") and not is_loopback("lab-pc")
    assert host_name("127.0.0.1:8787") == "127.0.0.1" and host_name("[::1]:80") == "::1" and host_name("a") == "a"
    assert Door.for_host("127.0.0.1", {}).token is None
    door = Door.for_host("0.0.0.0", {})
    assert door.token and len(door.token) >= 24 and door.token != Door.for_host("0.0.0.0", {}).token
    assert Door.for_host("127.0.0.1", {"DAQ_WATCH_TOKEN": "pw"}).token == "pw"  # set: needed on loopback too
    assert door.token_ok(door.token) and not door.token_ok(None) and not door.token_ok(door.token + "x")
    loop = Door.for_host("localhost", {})
    assert loop.host_ok("localhost:1") and not loop.host_ok("evil.example:1") and door.host_ok("lab-pc:8787")
    assert origin_ok(None, "h:1") and origin_ok("http://h:1", "h:1") and origin_ok("https://H:1", "h:1")
    assert not origin_ok("http://evil.example", "h:1") and not origin_ok("http://h:2", "h:1")
    assert not origin_ok("null", "h:1")
    rate = RateLimit(per_s=3, window_start=0.0)
    assert [rate.allow(0.1) for _ in range(4)] == [True, True, True, False] and rate.allow(1.2)


def test_a_page_that_falls_behind_is_dropped_not_buffered_for() -> None:
    class Request:
        transport = None

    outbox = Outbox(Request())  # type: ignore[arg-type]
    assert all(outbox.put(b"x") for _ in range(MAX_QUEUED_MESSAGES))
    assert not outbox.put(b"x") and not outbox.put(b"x") and outbox.dropped
    big = Outbox(Request())  # type: ignore[arg-type]
    assert big.put(b"x" * 1000) and not big.put(b"x" * (9 << 20))


def test_the_token_the_cookie_the_origin_and_the_limits_in_the_app() -> None:
    async def scenario() -> None:
        door = Door(token="s3cret", loopback_only=False)
        async with TestClient(TestServer(make_app(bridge(), None, door))) as client:
            for path in ("/", "/state.json", "/static/app.js", "/ws", "/video"):
                assert (await client.get(path)).status == 403, path
            assert (await client.get("/state.json?token=wrong")).status == 403
            first = await client.get("/?token=s3cret", allow_redirects=False)
            assert first.status == 302 and first.headers["Location"] == "/"
            cookie = token_cookie(f"{client.host}:{client.port}")
            assert cookie == f"daq_token_{client.port}"
            assert cookie in first.cookies and first.cookies[cookie]["httponly"]
            # The cookie jar now holds the token: every request passes without the query.
            assert (await client.get("/")).status == 200
            assert (await client.get("/state.json")).status == 200
            assert (await client.get("/static/app.js")).status == 200
            host = f"{client.host}:{client.port}"
            refused = await client.get(
                "/ws",
                headers={"Origin": "http://evil.example", "Upgrade": "websocket", "Connection": "Upgrade",
                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"},
            )  # fmt: skip
            assert refused.status == 403
            ws = await client.ws_connect("/ws", headers={"Origin": f"http://{host}"})
            assert json.loads((await ws.receive()).data)["type"] == "snapshot"
            for _ in range(MAX_MESSAGES_PER_S + 5):
                await ws.send_str("hi")
            closed = await ws.receive(timeout=5)
            while closed.type not in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                closed = await ws.receive(timeout=5)
            assert ws.close_code == 1008
            await ws.close()
            ws = await client.ws_connect("/ws", headers={"Origin": f"http://{host}"})
            await ws.receive()
            await ws.send_str("x" * 10_000)
            closed = await ws.receive(timeout=5)
            while closed.type not in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                closed = await ws.receive(timeout=5)
            assert ws.close_code == 1009
            await ws.close()

        loopback = Door(token=None, loopback_only=True)
        async with TestClient(TestServer(make_app(bridge(), None, loopback))) as client:
            assert (await client.get("/state.json")).status == 200
            # A page elsewhere reaching 127.0.0.1 under its own DNS name (rebinding): refused.
            assert (await client.get("/state.json", headers={"Host": "evil.example:8787"})).status == 403

    asyncio.run(scenario())


def http_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def ws_handshake(host: str, port: int, path: str, origin: str, cookie: str = "") -> str:
    """The status line of a WebSocket upgrade request, sent by hand."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        f"Origin: {origin}",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return sock.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


@pytest.mark.e2e
def test_daq_watch_off_loopback_needs_the_token_and_the_pages_own_origin(mosquitto: Mosquitto, tmp_path: Path) -> None:
    host, port = "127.0.0.2", free_port()
    watch = start_daq(["watch", "--broker", mosquitto.url, "--host", host, "--port", str(port)], tmp_path, "watch")
    log = tmp_path / "watch.log"
    try:
        wait_for(lambda: "?token=" in log.read_text(), what="the page's URL with its token")
        found = re.search(rf"http://{re.escape(host)}:{port}/\?token=([A-Za-z0-9_-]+)", log.read_text())
        assert found, log.read_text()
        token = found.group(1)
        base = f"http://{host}:{port}"
        assert http_status(f"{base}/state.json")[0] == 403
        assert http_status(f"{base}/")[0] == 403
        assert http_status(f"{base}/state.json?token=nope")[0] == 403
        status, body = http_status(f"{base}/state.json?token={token}")
        assert status == 200 and "stations" in json.loads(body)
        cookie = f"{token_cookie(f'{host}:{port}')}={token}"
        assert http_status(f"{base}/state.json", {"Cookie": cookie})[0] == 200
        assert " 403 " in ws_handshake(host, port, "/ws", "http://evil.example", cookie) + " "
        assert " 403 " in ws_handshake(host, port, "/ws", f"http://{host}:{port}") + " "  # no token
        assert " 101 " in ws_handshake(host, port, "/ws", f"http://{host}:{port}", cookie) + " "
        assert watch.poll() is None
    finally:
        assert stop_process(watch) == 0, log.read_text()
