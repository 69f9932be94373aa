"""Broadcast across real processes: gunicorn workers and servers sharing groups through a
real redis-server, a sync Django view publishing, Redis killed mid-run, 1,000 subscribe and
disconnect cycles, and a subscriber that stops reading.

The project served is tests/broadcast_project (websockets on ``/ws/<group>/``, event
streams on ``/events/<group>/``, a sync view on ``/publish/<group>/``, ``/stats/``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct

import aiohttp
import pytest

from tests.broadcast_project.harness import gunicorn, redis_server
from tests.support.needs import needs_module

pytestmark = pytest.mark.slow

TIMEOUT = aiohttp.ClientTimeout(total=30)
PREFIX = "test:"  # tests/broadcast_project/settings.py


@pytest.fixture
def redis(tmp_path):
    needs_module("redis")
    with redis_server(tmp_path) as server:
        yield server


def redis_call(server, method: str, *args):
    import redis

    with redis.Redis.from_url(server.url) as client:
        return getattr(client, method)(*args)


def subscribe_connections(server) -> int:
    clients = redis_call(server, "client_list")
    return sum(1 for c in clients if c.get("name", "").endswith(":subscribe"))


async def receive_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0):
    message = await asyncio.wait_for(ws.receive(), timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


async def open_socket(http, url: str) -> tuple[aiohttp.ClientWebSocketResponse, int]:
    ws = await http.ws_connect(url)
    hello = await receive_json(ws)
    return ws, hello["pid"]


async def poll(predicate, timeout: float = 15.0, interval: float = 0.1, message=lambda: ""):
    """Await ``predicate()`` (a coroutine function) until it returns something true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s {message()}")
        await asyncio.sleep(interval)


async def sockets_on_every_worker(http, url: str, workers: int, attempts: int = 60):
    """Websockets to ``url`` until ``workers`` different processes serve one; returns them all."""
    sockets, pids = [], set()
    for _ in range(attempts):
        ws, pid = await open_socket(http, url)
        sockets.append(ws)
        pids.add(pid)
        if len(pids) == workers and len(sockets) >= 2 * workers:
            return sockets, pids
    return sockets, pids


async def test_two_workers_and_two_servers_share_a_group(tmp_path, redis):
    env = {"BROADCAST_REDIS_URL": redis.url}
    with gunicorn(tmp_path, "-w", "2", env=env, name="east") as east, gunicorn(
        tmp_path, "-w", "1", env=env, name="west"
    ) as west:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            sockets, pids = await sockets_on_every_worker(http, east.ws_url + "/ws/shared/", 2)
            assert len(pids) == 2, "the kernel gave every connection to one worker"
            west_ws, west_pid = await open_socket(http, west.ws_url + "/ws/shared/")
            sockets.append(west_ws)
            assert west_pid not in pids
            try:
                # A websocket on the west server publishes; every worker's subscribers hear it.
                await west_ws.send_str(json.dumps({"from": "west"}))
                # A sync Django view on the east server publishes too.
                async with http.post(east.url + "/publish/shared/", data=json.dumps({"from": "view"})) as response:
                    assert response.status == 200, await response.text()
                for ws in sockets:
                    # Two publishers: nothing orders one's messages against the other's.
                    received = [await receive_json(ws), await receive_json(ws)]
                    assert sorted(m["from"] for m in received) == ["view", "west"]
                # One pub/sub connection per worker process, whatever the subscribers.
                assert await asyncio.to_thread(subscribe_connections, redis) == 3
                counts = await asyncio.to_thread(redis_call, redis, "pubsub_numsub", PREFIX + "shared")
                assert counts == [((PREFIX + "shared").encode(), 3)]
            finally:
                for ws in sockets:
                    await ws.close()


async def test_sync_django_view_publishes_to_websockets_on_every_worker(tmp_path, redis):
    env = {"BROADCAST_REDIS_URL": redis.url}
    with gunicorn(tmp_path, "-w", "2", env=env) as server:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            sockets, pids = await sockets_on_every_worker(http, server.ws_url + "/ws/news/", 2)
            try:
                async with http.post(server.url + "/publish/news/?count=50", data=json.dumps("flash")) as response:
                    assert response.status == 200
                    assert (await response.json())["published"] == 50
                for ws in sockets:
                    received = [await receive_json(ws) for _ in range(50)]
                    # In order: one publisher (the view's thread), one group.
                    assert received == [{"n": n, "message": "flash"} for n in range(50)]
            finally:
                for ws in sockets:
                    await ws.close()


async def test_redis_killed_and_restarted_mid_run(tmp_path, redis):
    env = {"BROADCAST_REDIS_URL": redis.url}
    with gunicorn(tmp_path, "-w", "2", env=env) as server:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            sockets, pids = await sockets_on_every_worker(http, server.ws_url + "/ws/live/", 2)
            try:
                async with http.post(server.url + "/publish/live/", data=json.dumps("before")) as response:
                    assert response.status == 200
                for ws in sockets:
                    assert await receive_json(ws) == "before"

                await asyncio.to_thread(redis.kill)
                # Every worker logs the outage, once.
                await poll(lambda: _logged(server, "lost Redis", len(pids)))
                # Publishing fails with a clear error meanwhile (a 500 from the sync view,
                # an error frame from the websocket handler).
                await sockets[0].send_str(json.dumps("during"))
                error = await receive_json(sockets[0])
                assert "Could not publish to group 'live'" in error["error"]

                await asyncio.to_thread(redis.start)

                async def delivered():
                    async with http.post(server.url + "/publish/live/", data=json.dumps("after")) as response:
                        if response.status != 200:
                            return False
                    try:
                        return await receive_json(sockets[0], timeout=0.5) == "after"
                    except asyncio.TimeoutError:
                        return False

                await poll(delivered, timeout=20)
                await poll(lambda: _logged(server, "reconnected to Redis", len(pids)))
                # Every subscriber, on both workers, gets messages again.
                async with http.post(server.url + "/publish/live/", data=json.dumps("again")) as response:
                    assert response.status == 200
                for ws in sockets:
                    seen = []
                    while "again" not in seen:
                        seen.append(await receive_json(ws))
                    assert set(seen) <= {"after", "again"}
                assert server.logged().count("lost Redis") == len(pids)  # once per worker
            finally:
                for ws in sockets:
                    await ws.close()


async def _no_groups(stats) -> bool:
    return (await stats())["groups"] == {}


async def _logged(server, text: str, count: int) -> bool:
    return server.logged().count(text) >= count


async def test_thousand_subscribe_disconnect_cycles_leave_nothing_behind(tmp_path, redis):
    env = {"BROADCAST_REDIS_URL": redis.url}
    groups = [f"cycle-{n}" for n in range(25)]
    with gunicorn(tmp_path, "-w", "1", env=env) as server:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:

            async def stats():
                async with http.get(server.url + "/stats/") as response:
                    return await response.json()

            # One subscription first: it starts the process's pub/sub connection
            # (a supervisor and a reader task), which stays for the process's life.
            async with http.ws_connect(f"{server.ws_url}/ws/warm-up/") as ws:
                await receive_json(ws)
            await poll(lambda: _no_groups(stats))
            baseline = await stats()

            async def cycle(n: int) -> None:
                group = groups[n % len(groups)]
                if n % 5 == 0:  # an event stream whose client vanishes
                    async with http.get(f"{server.url}/events/{group}/") as response:
                        assert await response.content.readuntil(b"\n\n") == b"retry: 1000\n\n"
                elif n % 5 == 1:  # a websocket client that vanishes without a close frame
                    ws = await http.ws_connect(f"{server.ws_url}/ws/{group}/")
                    await receive_json(ws)
                    # aiohttp's client has no public way to drop a websocket without a close
                    # frame (a vanished client): abort its transport (private attribute).
                    ws._response.connection.transport.abort()
                    await ws.close()
                else:
                    async with http.ws_connect(f"{server.ws_url}/ws/{group}/") as ws:
                        await receive_json(ws)

            async def worker(start: int) -> None:
                for n in range(start, 1000, 50):
                    await cycle(n)

            await asyncio.gather(*(worker(start) for start in range(50)))

            last = {}

            async def settled():
                last.update(await stats())
                return last["groups"] == {} and last["tasks"] <= baseline["tasks"]

            await poll(settled, timeout=20, message=lambda: f"baseline {baseline}, now {last}")
            assert last["pid"] == baseline["pid"]
            counts = await asyncio.to_thread(redis_call, redis, "pubsub_numsub", *(PREFIX + g for g in groups))
            assert {count for _, count in counts} == {0}
            assert await asyncio.to_thread(redis_call, redis, "pubsub_channels", PREFIX + "*") == []
            assert await asyncio.to_thread(subscribe_connections, redis) == 1


async def test_subscriber_that_stops_reading_is_disconnected_while_others_get_everything(tmp_path, redis):
    env = {"BROADCAST_REDIS_URL": redis.url, "BROADCAST_QUEUE_SIZE": "50"}
    total, batch = 3000, 500
    payload = "x" * 2000
    with gunicorn(tmp_path, "-w", "1", env=env) as server:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            stuck = await StuckClient.connect(server.port, "/ws/firehose/")
            readers = [await http.ws_connect(server.ws_url + "/ws/firehose/") for _ in range(3)]
            try:
                for ws in readers:
                    await receive_json(ws)

                async def read_all(ws):
                    return [(await receive_json(ws))["n"] for _ in range(total)]

                reading = [asyncio.ensure_future(read_all(ws)) for ws in readers]
                for _ in range(total // batch):
                    async with http.post(
                        f"{server.url}/publish/firehose/?count={batch}", data=json.dumps(payload)
                    ) as response:
                        assert response.status == 200
                received = await asyncio.wait_for(asyncio.gather(*reading), 60)
                # The readers got every message, in order (n counts within each batch).
                for numbers in received:
                    assert numbers == list(range(batch)) * (total // batch)

                # The stuck one was cut off: its socket ends with a close frame, code 1013.
                code = await asyncio.wait_for(stuck.close_code(), 60)
                assert code == 1013
                assert server.logged().count("fell 50 messages behind") == 1

                async with http.get(server.url + "/stats/") as response:
                    assert (await response.json())["groups"] == {"firehose": 3}
            finally:
                stuck.close()
                for ws in readers:
                    await ws.close()


class StuckClient:
    """A websocket client that completes the handshake, then reads nothing more until asked."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, path: str) -> StuckClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up quickly
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        # From here on nothing is read: the transport stops reading at the
        # StreamReader's limit, the kernel's buffers fill, the server stalls.
        return cls(reader, writer)

    async def close_code(self) -> int | None:
        """Read the frames the server sent until its close frame: that frame's code."""
        while True:
            head = await self.reader.readexactly(2)
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            body = await self.reader.readexactly(length)
            if opcode == 0x8:
                return struct.unpack("!H", body[:2])[0] if len(body) >= 2 else None

    def close(self) -> None:
        self.writer.transport.abort()



async def test_sigterm_ends_subscribed_clients_without_waiting_for_the_graceful_timeout(tmp_path, redis):
    env = {"BROADCAST_REDIS_URL": redis.url}
    with gunicorn(tmp_path, "-w", "1", "--graceful-timeout", "60", env=env) as server:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            ws, _ = await open_socket(http, server.ws_url + "/ws/bye/")
            async with http.get(server.url + "/events/bye/") as events:
                await events.content.readuntil(b"\n\n")
                started = asyncio.get_running_loop().time()
                os.kill(server.proc.pid, signal.SIGTERM)
                message = await asyncio.wait_for(ws.receive(), 10)
                assert message.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1001
                await ws.close()
                assert await asyncio.wait_for(events.content.read(), 10) == b""
            assert await asyncio.to_thread(server.proc.wait, 15) == 0, server.logged()
            # Far from the 60 s graceful timeout: nothing held the worker.
            assert asyncio.get_running_loop().time() - started < 30
