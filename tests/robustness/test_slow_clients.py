"""Slow, vanishing and too many clients.

* A slowloris trickling its headers is cut by aiohttp's ``keepalive_timeout``
  (armed when the connection opens, aiohttp 3.14+); one trickling a body to
  a Django view holds no bridge thread, since the bridge reads the body
  before it calls the app.
* 100 clients vanishing mid-upload, mid-stream and mid-websocket leave no
  busy thread, no file descriptor, no temporary file, no open iterable.
* 10x the pool's capacity in slow Django views: lifted views keep
  answering, every queued request completes.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import struct
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.web_protocol import RequestHandler

from .conftest import REPORT, scaled, settled

HOST = b"Host: 127.0.0.1\r\n"
THREADS = 4

# aiohttp arms keepalive_timeout when a connection opens only since 3.14.
KEEPALIVE_FROM_START = "_keepalive_handle" in inspect.getsource(RequestHandler.connection_made)


async def trickle(port: int, head: bytes, drip: bytes, interval: float, limit: float) -> float | None:
    """Send ``head``, then ``drip`` one byte per ``interval``; return when the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(head)
        for index in range(len(drip)):
            if time.monotonic() - started > limit:
                return None
            try:
                writer.write(drip[index : index + 1])
                await writer.drain()
                data = await asyncio.wait_for(reader.read(65536), interval)
            except asyncio.TimeoutError:
                continue
            except (ConnectionError, OSError):
                return time.monotonic() - started
            if not data or data.startswith(b"HTTP/1.1 4"):
                return time.monotonic() - started
        return None
    finally:
        writer.close()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


@pytest.mark.skipif(not KEEPALIVE_FROM_START, reason="aiohttp < 3.14 does not time out a request's headers")
async def test_slowloris_headers_are_cut_after_keepalive_timeout(spawn) -> None:
    server = spawn("--keepalive-timeout", "1", "--threads", str(THREADS))
    head = b"GET /django/hello/ HTTP/1.1\r\n" + HOST
    drip = b"X-Slow: " + b"a" * 200
    loris = [asyncio.ensure_future(trickle(server.port, head, drip, 0.1, 6)) for _ in range(20)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        await asyncio.sleep(0.3)
        assert await get(session, server.url + "/django/hello/") == (200, "django hello")
        assert await get(session, server.url + "/lifted/hello/") == (200, "lifted hello")
    cut = await asyncio.wait_for(asyncio.gather(*loris), 15)
    REPORT.clients_cut += sum(1 for c in cut if c is not None)
    assert all(c is not None and c < 4 for c in cut), cut
    assert server.diag()["django_calls"] == 1  # only the normal request reached Django


async def test_slowloris_body_holds_no_bridge_thread(spawn) -> None:
    server = spawn("--threads", str(THREADS))
    baseline = server.diag()
    body = b"b" * 64
    head = b"POST /django/echo/ HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % (len(body) + 1)
    loris = [asyncio.ensure_future(trickle(server.port, head, body, 0.05, 30)) for _ in range(5 * THREADS)]
    try:
        await asyncio.sleep(0.5)
        # All of the pool is free: THREADS slow views run at once, and the rest answer.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            slow = [asyncio.ensure_future(get(session, server.url + "/django/slow/?t=0.5")) for _ in range(THREADS)]
            deadline = time.monotonic() + 5
            while server.diag()["sync_slow_inflight"] < THREADS:
                assert time.monotonic() < deadline, "the slowloris clients hold pool threads"
                await asyncio.sleep(0.05)
            assert await get(session, server.url + "/lifted/hello/") == (200, "lifted hello")
            assert await asyncio.gather(*slow) == [(200, "slow done")] * THREADS
        assert server.diag()["wsgi_inflight"] == 0
        assert not any(task.done() for task in loris)
    finally:
        for task in loris:
            task.cancel()
        await asyncio.gather(*loris, return_exceptions=True)
    REPORT.clients_cut += len(loris)
    settled(server, baseline)  # the abandoned bodies are dropped, their sockets closed


async def test_slowloris_body_is_cut_after_a_timeout(spawn) -> None:
    server = spawn("--keepalive-timeout", "1")
    head = b"POST /django/echo/ HTTP/1.1\r\n" + HOST + b"Content-Length: 1000\r\n\r\n"
    # AIODJANGO_REQUEST_BODY_TIMEOUT is 2 s in tests/robustness/settings.py.
    cut = await trickle(server.port, head, b"b" * 999, 0.1, 3)
    assert cut is not None, "still connected after 3 s of trickling"


# --- vanishing clients ---------------------------------------------------------------


def rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, as a crashed client or a dropped network does."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def vanish_mid_upload(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    size = 4 * 1024 * 1024
    writer.write(b"POST /django/upload/ HTTP/1.1\r\n" + HOST + b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % size)
    writer.write(b"u" * (3 * size // 8))  # past the 1 MiB spool threshold
    await writer.drain()
    await asyncio.sleep(0.2)
    rst(writer)


async def vanish_mid_stream(port: int, kind: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /%s/stream/?chunks=400&size=65536&delay=0.005 HTTP/1.1\r\n" % kind.encode() + HOST + b"\r\n")
    await writer.drain()
    got = 0
    while got < 200_000:
        data = await asyncio.wait_for(reader.read(65536), 10)
        assert data, "the stream ended early"
        got += len(data)
    rst(writer)


async def vanish_mid_websocket(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /ws/ HTTP/1.1\r\n" + HOST + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    # One masked text frame, half of a second one, then gone.
    payload = b"hello"
    mask = b"\x01\x02\x03\x04"
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    writer.write(frame + frame[:4])
    await writer.drain()
    await asyncio.sleep(0.1)
    rst(writer)


async def test_100_vanishing_clients_leave_nothing_behind(spawn) -> None:
    server = spawn("--threads", str(THREADS))
    baseline = server.diag()
    per_kind = 25
    jobs = (
        [vanish_mid_upload(server.port) for _ in range(per_kind)]
        + [vanish_mid_stream(server.port, "django") for _ in range(per_kind)]
        + [vanish_mid_stream(server.port, "lifted") for _ in range(per_kind)]
        + [vanish_mid_websocket(server.port) for _ in range(per_kind)]
    )
    semaphore = asyncio.Semaphore(20)

    async def bounded(job: Any) -> None:
        async with semaphore:
            await job

    await asyncio.wait_for(asyncio.gather(*(bounded(job) for job in jobs)), 60)
    REPORT.clients_cut += len(jobs)
    assert len(jobs) == 100
    after = settled(server, baseline, timeout=10)
    assert after["django_stream_started"] == per_kind
    assert after["lifted_stream_started"] == per_kind
    async with aiohttp.ClientSession() as session:
        assert await get(session, server.url + "/django/hello/") == (200, "django hello")


# --- overload ------------------------------------------------------------------------------


async def test_overload_lifted_views_keep_answering_queued_requests_complete(spawn) -> None:
    server = spawn("--threads", str(THREADS))
    baseline = server.diag()
    count = 10 * THREADS
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        slow = [asyncio.ensure_future(get(session, server.url + "/django/slow/?t=0.3")) for _ in range(count)]
        deadline = time.monotonic() + 10
        while server.diag()["sync_slow_inflight"] < THREADS:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        lifted = 0
        while not all(task.done() for task in slow):
            assert time.monotonic() < deadline + scaled(30, 60), "queued requests did not complete"
            # Every pool thread is busy, requests are queued: lifted views answer.
            if server.diag()["sync_slow_inflight"] == THREADS:
                assert await get(session, server.url + "/lifted/hello/") == (200, "lifted hello")
                lifted += 1
            await asyncio.sleep(0.02)
        answers = await asyncio.gather(*slow)
    assert answers == [(200, "slow done")] * count
    assert lifted >= 3
    settled(server, baseline)
