"""One door for every page (`daq.web`): `daq review` and `daq rate` get the watch page's rules.

The rules every page shares; an app built with `page_app` refusing, on loopback, a POST from another
page's origin and a request under a foreign Host name, keeping one token cookie per port, and capping
its WebSockets; and the real `daq review` and `daq rate` on 127.0.0.2 (not a loopback name by the
rules, so the token is needed, while the traffic stays on this machine): without the token
refused, with it served, a foreign Origin refused on the WebSocket (and on review's POSTs).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from daq.web.app import page_app
from daq.web.door import Door, Limits, needs_origin, page_url, token_cookie
from daq.web.page_socket import PageSocket
from tests.support.procs import free_port, start_daq, stop_process, wait_for
from tests.test_export import session_dir, write_dial
from tests.test_watch_door import ws_handshake

HOST = "127.0.0.2"


def test_the_rules_every_page_shares() -> None:
    both = {"DAQ_PAGE_TOKEN": "page", "DAQ_WATCH_TOKEN": "watch"}
    assert Door.for_host("0.0.0.0", both).token == "page"  # the neutral name first
    old = Door.for_host("127.0.0.1", {"DAQ_WATCH_TOKEN": "watch"}, command="daq review")
    assert old.token == "watch" and old.token_env == "DAQ_WATCH_TOKEN" and old.command == "daq review"
    assert old.shown_token() == "$DAQ_WATCH_TOKEN"  # a token from the environment is never printed
    made = Door.for_host(HOST, {})
    assert made.token and made.shown_token() == made.token and not made.loopback_only
    assert page_url(HOST, 8090, made) == f"http://{HOST}:8090/?token={made.token}"
    assert page_url("127.0.0.1", 8090, Door.for_host("127.0.0.1", {})) == "http://127.0.0.1:8090/"
    assert page_url("::1", 80) == "http://[::1]:80/" and page_url("[::1]", 80) == "http://[::1]:80/"
    assert token_cookie("lab-pc:8787") == "daq_token_8787" and token_cookie("[::1]:8090") == "daq_token_8090"
    assert token_cookie("lab-pc") == "daq_token_80"
    assert needs_origin("POST", None) and needs_origin("GET", "websocket") and needs_origin("PUT", None)
    assert not needs_origin("GET", None) and not needs_origin("HEAD", "") and not needs_origin("OPTIONS", None)


KEY = web.AppKey("answers", list)


def toy_app(tmp_path: Path, door: Door, limits: Limits | None = None) -> web.Application:
    (tmp_path / "page.html").write_text("<p>the page</p>")
    routes = web.RouteTableDef()

    @routes.post("/api/answer")
    async def answer(request: web.Request) -> web.Response:
        request.app[KEY].append(await request.text())
        return web.json_response({"saved": True})

    @routes.get("/ws")
    async def ws(request: web.Request) -> web.WebSocketResponse:
        async with PageSocket(request, name="toy") as page:
            page.send(b"hello")
            async for _ in page:
                pass
        return page.ws

    @routes.get("/echo")
    async def echo(request: web.Request) -> web.WebSocketResponse:
        async with PageSocket(request, name="toy") as page:
            async for msg in page:
                page.send(msg.data.encode())  # an answer to each message, as the rate page's pong
        return page.ws

    return page_app(tmp_path, "page.html", routes, KEY, [], door=door, limits=limits)


def test_on_loopback_a_post_from_another_origin_and_a_foreign_host_name_are_refused(tmp_path: Path) -> None:
    """Without a token a page on loopback is open to this machine, but not to a web page elsewhere
    that posts to it (CSRF) or reaches it through its own DNS name (rebinding)."""

    async def scenario() -> None:
        app = toy_app(tmp_path, Door(), Limits(clients=1))
        async with TestClient(TestServer(app)) as client:
            own = f"http://{client.host}:{client.port}"
            assert (await client.get("/")).status == 200
            refused = await client.post("/api/answer", data="evil", headers={"Origin": "http://evil.example"})
            assert refused.status == 403 and "another page's origin" in await refused.text()
            assert (await client.post("/api/answer", data="mine", headers={"Origin": own})).status == 200
            assert (await client.post("/api/answer", data="curl")).status == 200  # no Origin: not a browser
            assert app[KEY] == ["mine", "curl"]
            assert (await client.get("/", headers={"Host": "evil.example:80"})).status == 403
            first = await client.ws_connect("/ws", headers={"Origin": own})
            assert (await first.receive()).data == "hello"
            with pytest.raises(aiohttp.WSServerHandshakeError) as full:
                await client.ws_connect("/ws", headers={"Origin": own})
            assert full.value.status == 503  # at most `clients` pages at a time
            await first.close()

    asyncio.run(scenario())


def test_a_burst_within_the_rate_answered_message_by_message_is_not_taken_for_a_page_that_does_not_read(
    tmp_path: Path,
) -> None:
    """A page sends 60 messages at once (within its 100 a second) and reads every answer; only 20
    answers may wait for it. The answers go out as they are made, so the page is served to the end,
    not closed with 1013 because the handler answered the whole burst before its writer ran."""

    async def scenario() -> tuple[list[str], int | None]:
        limits = Limits(messages_per_s=100, queued_messages=20)
        server = TestServer(toy_app(tmp_path, Door(), limits))
        async with server, aiohttp.ClientSession() as session, session.ws_connect(f"{server.make_url('/echo')}") as ws:
            for i in range(60):
                await ws.send_str(str(i))  # all written before the server reads any
            got: list[str] = []
            while len(got) < 60:
                msg = await ws.receive(timeout=10)
                if msg.type != WSMsgType.TEXT:
                    break
                got.append(msg.data)
            return got, ws.close_code

    got, code = asyncio.run(scenario())
    assert got == [str(i) for i in range(60)] and code is None, (len(got), code)


def test_two_pages_on_one_host_keep_their_own_token_cookie(tmp_path: Path) -> None:
    """Cookies are per host, not per port: each page's cookie is named for its port, so opening the
    second page does not lock the first one out."""

    async def scenario() -> None:
        doors = [Door(token="one", loopback_only=False), Door(token="two", loopback_only=False)]
        jar = aiohttp.CookieJar(unsafe=True)
        for i in range(2):
            (tmp_path / str(i)).mkdir()
        servers = [TestServer(toy_app(tmp_path / str(i), d)) for i, d in enumerate(doors)]
        async with servers[0], servers[1], aiohttp.ClientSession(cookie_jar=jar) as http:
            urls = [f"http://127.0.0.1:{s.port}" for s in servers]
            for url, door in zip(urls, doors, strict=True):
                assert (await http.get(f"{url}/?token={door.token}")).status == 200  # 302, then the page
            for url in urls:
                assert (await http.get(f"{url}/")).status == 200, url

    asyncio.run(scenario())


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def printed_token(log: Path, port: int) -> str:
    wait_for(lambda: "?token=" in log.read_text(), timeout=30, what="the page's URL with its token")
    found = re.search(rf"http://{re.escape(HOST)}:{port}/\?token=([A-Za-z0-9_-]+)", log.read_text())
    assert found, log.read_text()
    return found.group(1)


@pytest.mark.e2e
def test_daq_review_off_loopback_needs_the_token_and_the_pages_own_origin(tmp_path: Path) -> None:
    folder = session_dir(tmp_path)
    write_dial(folder, "d1", [(i * 0.1, 5.0 + 4.0 * math.sin(i / 7.0)) for i in range(300)])
    port = free_port()
    review = start_daq(["review", str(folder), "--host", HOST, "--port", str(port)], tmp_path, "review")
    log = tmp_path / "review.log"
    try:
        token = printed_token(log, port)
        base = own = f"http://{HOST}:{port}"
        answer = json.dumps({"key": "helpful:1", "segment": {"kind": "helpful"}, "text": "hi", "tags": []}).encode()
        for path in ("/", "/api/state", "/static/review.js", "/video", "/api/segments"):
            assert http(f"{base}{path}")[0] == 403, path
        assert http(f"{base}/api/state?token=nope")[0] == 403
        assert http(f"{base}/api/answer", answer, {"Content-Type": "application/json"})[0] == 403  # no token
        status, body = http(f"{base}/api/state?token={token}")
        assert status == 200 and json.loads(body)["session"] == folder.name
        cookie = {"Cookie": f"{token_cookie(f'{HOST}:{port}')}={token}"}
        assert http(f"{base}/api/state", headers=cookie)[0] == 200
        foreign = {**cookie, "Content-Type": "application/json", "Origin": "http://evil.example"}
        assert http(f"{base}/api/answer", answer, foreign)[0] == 403
        assert not (folder / "interview.json").exists() or "helpful:1" not in (folder / "interview.json").read_text()
        assert " 403 " in ws_handshake(HOST, port, "/ws", "http://evil.example", cookie["Cookie"]) + " "
        mine = {**cookie, "Content-Type": "application/json", "Origin": own}
        status, body = http(f"{base}/api/answer", answer, mine)
        assert status == 200 and json.loads(body)["saved"] is True
        assert "helpful:1" in (folder / "interview.json").read_text()
        assert review.poll() is None
    finally:
        assert stop_process(review) == 0, log.read_text()


async def flood(port: int, cookie: str, own: str) -> int | None:
    """Open the rate page's WebSocket with its token and origin, send far more than it takes: the close code."""
    headers = {"Cookie": cookie, "Origin": own}
    async with aiohttp.ClientSession() as session, session.ws_connect(f"ws://{HOST}:{port}/ws", headers=headers) as ws:
        hello = json.loads((await ws.receive(timeout=10)).data)
        assert hello["type"] == "hello" and hello["session"] is None
        for _ in range(600):
            await ws.send_str('{"type": "ping", "t": 0}')
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = await ws.receive(timeout=10)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                break
        return ws.close_code


@pytest.mark.e2e
@pytest.mark.timeout(90)
def test_daq_rate_off_loopback_needs_the_token_and_the_pages_own_origin(tmp_path: Path) -> None:
    video = tmp_path / "v.webm"
    video.write_bytes(b"not really a video: nobody plays it")
    port = free_port()
    rate = start_daq(
        ["rate", "--video", str(video), "--simulate", "--embedded", "--fps", "25", "--station", "door-1",
         "--out", "rec", "--host", HOST, "--port", str(port)],  # no --no-open: a token is never put on a command line
        tmp_path,
        "rate",
    )  # fmt: skip
    log = tmp_path / "rate.log"
    try:
        token = printed_token(log, port)
        assert "open the URL above in the browser" in log.read_text()
        base = own = f"http://{HOST}:{port}"
        for path in ("/", "/state.json", "/static/rate.js", "/video"):
            assert http(f"{base}{path}")[0] == 403, path
        assert http(f"{base}/state.json?token=nope")[0] == 403
        status, body = http(f"{base}/state.json?token={token}")
        assert status == 200 and json.loads(body)["station"] == "door-1"
        cookie = f"{token_cookie(f'{HOST}:{port}')}={token}"
        assert http(f"{base}/state.json", headers={"Cookie": cookie})[0] == 200
        assert " 403 " in ws_handshake(HOST, port, "/ws", "http://evil.example", cookie) + " "
        assert " 403 " in ws_handshake(HOST, port, "/ws", own) + " "  # its own origin, no token
        assert asyncio.run(flood(port, cookie, own)) == 1008  # a page that sends too much is closed
        assert "sends too many messages" in log.read_text()
        assert rate.poll() is None
    finally:
        assert stop_process(rate) == 0, log.read_text()


def test_serve_runs_work_alongside_and_tells_open_pages_it_goes_away(tmp_path: Path) -> None:
    """`serve(..., alongside=)`: the work (`daq watch`'s bridge) starts once the socket listens and is
    stopped with the server; an open page is closed with 1001 at shutdown, not waited for."""
    from daq.web.app import serve

    async def scenario() -> None:
        stop = asyncio.Event()
        bound: list[tuple[str, int]] = []
        listening = asyncio.Event()
        ran: list[str] = []

        def ready(addresses: list[tuple[str, int]]) -> None:
            bound.extend(addresses)
            listening.set()

        async def alongside(event: asyncio.Event) -> None:
            ran.append("started")
            await event.wait()
            ran.append("stopped")

        server = asyncio.create_task(serve(toy_app(tmp_path, Door()), "127.0.0.1", 0, stop, ready, alongside))
        await asyncio.wait_for(listening.wait(), 5)
        port = bound[0][1]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
            assert (await ws.receive(timeout=5)).data == "hello"
            started = time.monotonic()
            stop.set()
            msg = await ws.receive(timeout=5)
            assert msg.type == WSMsgType.CLOSE and msg.data == 1001
            await asyncio.wait_for(server, 5)
            assert time.monotonic() - started < 3
        assert ran == ["started", "stopped"]

    asyncio.run(scenario())


def test_serve_stops_when_the_work_alongside_fails(tmp_path: Path) -> None:
    from daq.web.app import serve

    async def broken(event: asyncio.Event) -> None:
        raise RuntimeError("the bridge broke")

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="the bridge broke"):
            await serve(toy_app(tmp_path, Door()), "127.0.0.1", 0, asyncio.Event(), lambda bound: None, broken)

    asyncio.run(scenario())
