"""The example under gunicorn, as it runs in production: workers, recycling, signals.

``gunicorn example.wsgi:app --worker-class aiohttp.worker.GunicornWebWorker``
serves the lifted routes and the Django views; the plain WSGI ``application``
still runs under gunicorn's own sync worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time

import aiohttp
import pytest

from tests.example_servers import UVLOOP_WORKER, gunicorn, migrated_db, stop, wait_for_log

pytestmark = pytest.mark.slow

TIMEOUT = aiohttp.ClientTimeout(total=15)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return migrated_db(tmp_path_factory)


def fresh_connections() -> aiohttp.ClientSession:
    """A client that opens a new connection per request, like many browsers would."""
    return aiohttp.ClientSession(
        timeout=TIMEOUT, connector=aiohttp.TCPConnector(force_close=True)
    )


async def get(http: aiohttp.ClientSession, url: str) -> tuple[aiohttp.ClientResponse, dict]:
    """GET ``url``, retrying once if the connection closes without an answer.

    RFC 9112 lets clients retry an idempotent request so; aiohttp's client
    does it by itself since 3.10. A gunicorn worker that is stopping closes a
    connection it accepted in its last instant that way (docs/deployment.rst).
    """
    try:
        async with http.get(url) as response:
            return response, await response.json()
    except aiohttp.ServerDisconnectedError:
        async with http.get(url) as response:
            return response, await response.json()


async def worker_pid(http: aiohttp.ClientSession, url: str) -> int:
    response, data = await get(http, url + "/api/hello/pid/")
    assert response.status == 200
    return data["pid"]


async def django_page(http: aiohttp.ClientSession, url: str) -> int:
    response, data = await get(http, url + "/slow/?seconds=0")
    assert response.status == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    return data["pid"]


async def stream_end(response: aiohttp.ClientResponse) -> None:
    """Read ``response`` until the server ends or cuts it; TimeoutError after 10 s idle."""
    try:
        while await asyncio.wait_for(response.content.readany(), 10):
            pass
    except aiohttp.ClientError:
        pass  # cut rather than ended: just as final


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


async def chat_round_trip(http: aiohttp.ClientSession, url: str) -> None:
    async with http.ws_connect(url.replace("http", "ws", 1) + "/chat/gunicorn/ws/") as ws:
        joined = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert joined["type"] == "join"
        await ws.send_str("over gunicorn")
        echoed = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert echoed == {"type": "message", "user": "anonymous", "text": "over gunicorn"}


async def test_two_workers_share_the_load(tmp_path, db):
    with gunicorn(tmp_path, db, "-w", "2") as server:
        wait_for_log(server.log, "Booting worker", count=2)
        pids = set()
        async with fresh_connections() as http:
            deadline = time.monotonic() + 20
            while len(pids) < 2 and time.monotonic() < deadline:
                pids.add(await worker_pid(http, server.url))
                pids.add(await django_page(http, server.url))
            await chat_round_trip(http, server.url)
        assert len(pids) == 2, f"one worker served everything: {pids}"
        assert {parent_of(pid) for pid in pids} == {server.proc.pid}


async def test_max_requests_recycles_workers_without_failures(tmp_path, db):
    with gunicorn(
        tmp_path, db, "-w", "1", "--max-requests", "5", "--max-requests-jitter", "0",
        "--graceful-timeout", "3",
    ) as server:
        pids = []
        async with fresh_connections() as http:
            deadline = time.monotonic() + 30
            while len(set(pids)) < 3 and time.monotonic() < deadline:
                pids.append(await worker_pid(http, server.url))
                pids.append(await django_page(http, server.url))
        assert len(set(pids)) >= 3, f"workers were not recycled: {pids}"
        assert "Max requests, shutting down" in server.logged()


async def test_sigterm_finishes_the_in_flight_request_then_exits_0(tmp_path, db):
    with gunicorn(tmp_path, db, "-w", "1", "--graceful-timeout", "10") as server:
        async with fresh_connections() as http:
            slow = asyncio.ensure_future(http.get(server.url + "/slow/?seconds=2"))
            try:
                await asyncio.to_thread(wait_for_log, server.log, "Slow view sleeping")
                sent = time.monotonic()
                os.kill(server.proc.pid, signal.SIGTERM)
                response = await slow
                assert response.status == 200
                assert (await response.json())["slept"] == 2.0
            finally:
                slow.cancel()
        # gunicorn exits on its own once the request is done, well inside the
        # graceful timeout, and reports success.
        returncode = await asyncio.to_thread(server.proc.wait, 10)
        assert returncode == 0, server.logged()
        assert time.monotonic() - sent < 10
        assert "SIGKILL" not in server.logged()


async def test_sigterm_with_open_websockets_and_event_streams_exits_0(tmp_path, db):
    # Long-lived connections are closed at the latest when the graceful timeout
    # runs out; the chat's JavaScript then reconnects to the new workers.
    with gunicorn(tmp_path, db, "-w", "1", "--graceful-timeout", "3") as server:
        async with fresh_connections() as http:
            async with http.ws_connect(server.url.replace("http", "ws", 1) + "/chat/bye/ws/") as ws:
                async with http.get(server.url + "/chat/bye/events/") as events:
                    assert (await asyncio.wait_for(ws.receive(), 10)).type == aiohttp.WSMsgType.TEXT
                    os.kill(server.proc.pid, signal.SIGTERM)
                    while True:
                        message = await asyncio.wait_for(ws.receive(), 10)
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
                    # The event stream ends too (cleanly or cut) instead of timing out.
                    await stream_end(events)
        assert await asyncio.to_thread(server.proc.wait, 10) == 0, server.logged()


async def test_sighup_reloads_workers_without_failed_requests(tmp_path, db):
    with gunicorn(tmp_path, db, "-w", "2", "--graceful-timeout", "3") as server:
        wait_for_log(server.log, "Booting worker", count=2)
        before = set(re.findall(r"Booting worker with pid: (\d+)", server.logged()))
        served = []
        failures = []
        hup_at = gone_at = None
        async with fresh_connections() as http:
            deadline = time.monotonic() + 30
            # A steady client: one request after the other, lifted and Django
            # alternately, before, during and after the reload (see get()).
            while time.monotonic() < deadline:
                for probe in (worker_pid, django_page):
                    try:
                        served.append(str(await probe(http, server.url)))
                    except (aiohttp.ClientError, AssertionError, asyncio.TimeoutError) as exc:
                        failures.append(repr(exc))
                # Reload a server that is up: both workers have served. (A
                # worker signalled in the instant after its fork, before it
                # installs its handlers, misses the signal: a gunicorn race.)
                if hup_at is None and set(served) == before and len(served) >= 10:
                    os.kill(server.proc.pid, signal.SIGHUP)
                    hup_at = len(served)
                if hup_at is not None and gone_at is None:
                    log = server.logged()
                    if all(f"Worker exiting (pid: {pid})" in log for pid in before):
                        gone_at = len(served)
                if gone_at is not None and len(served) - gone_at >= 20:
                    break
        assert not failures, failures
        assert gone_at is not None, f"the old workers did not exit:\n{server.logged()}"
        after = served[gone_at:]
        assert not set(after) & before
        new = set(re.findall(r"Booting worker with pid: (\d+)", server.logged())) - before
        assert set(after) <= new, f"served by unknown workers: {after}, new: {new}"
        assert "Handling signal: hup" in server.logged()


async def test_uvloop_worker(tmp_path, db):
    pytest.importorskip("uvloop", reason="uvloop is an optional extra: pip install uvloop")
    with gunicorn(tmp_path, db, worker=UVLOOP_WORKER) as server:
        async with fresh_connections() as http:
            await worker_pid(http, server.url)
            await django_page(http, server.url)
            await chat_round_trip(http, server.url)
        assert f"Using worker: {UVLOOP_WORKER}" in server.logged()


async def test_plain_wsgi_application_under_the_sync_worker(tmp_path, db):
    # WSGI_APPLICATION = "example.wsgi.application" stays a valid WSGI app.
    with gunicorn(
        tmp_path, db, app="example.wsgi:application", worker=None, ready_path="/"
    ) as server:
        async with fresh_connections() as http:
            async with http.get(server.url + "/") as response:
                assert response.status == 200
                assert "Django and aiohttp, one server" in await response.text()
            async with http.get(server.url + "/static/chat/chat.css") as response:
                assert response.status == 200
            async with http.get(server.url + "/admin/login/") as response:
                assert response.status == 200
        assert "Using worker: sync" in server.logged()
    assert stop(server.proc) == 0
