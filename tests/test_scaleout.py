"""Scale-out: chat rooms shared through Redis pub/sub by several processes and servers.

Each test starts its own ``redis-server`` (Debian's package, installed by
``bash .ci/system-deps``) on a free port and stops it by PID afterwards.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import aiohttp
import pytest

from tests.support.needs import needs_module
from tests.example_servers import (
    EXAMPLE,
    PYTHON,
    example_env,
    free_port,
    gunicorn,
    migrated_db,
    redis_server,
)

pytestmark = pytest.mark.slow

TIMEOUT = aiohttp.ClientTimeout(total=15)


def import_redis():
    return needs_module("redis.asyncio")


@pytest.fixture
def redis_url(tmp_path):
    import_redis()
    with redis_server(tmp_path) as url:
        yield url


async def test_announce_command_reaches_the_room_through_redis(tmp_path, tmp_path_factory, redis_url):
    db = migrated_db(tmp_path_factory)
    env = {"REDIS_URL": redis_url}
    with gunicorn(tmp_path, db, "-w", "2", env=env) as server:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with http.ws_connect(server.url + "/chat/news/ws/") as ws:
                assert await receive(ws) == {"type": "join", "user": "anonymous"}
                # manage.py announce: a process of its own, with no event loop.
                done = await asyncio.to_thread(
                    subprocess.run,
                    [PYTHON, "manage.py", "announce", "news", "  Maintenance at noon  "],
                    cwd=EXAMPLE, env=example_env(db, **env), capture_output=True, text=True, timeout=60,
                )
                assert done.returncode == 0, done.stderr
                assert done.stdout.strip() == "Announced in #news."
                assert await receive(ws) == {
                    "type": "message", "user": "announcement", "text": "Maintenance at noon",
                }


async def test_chat_socket_closes_with_1013_while_redis_is_unreachable(tmp_path, tmp_path_factory):
    db = migrated_db(tmp_path_factory)
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    with gunicorn(tmp_path, db, env=env) as server:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with http.ws_connect(server.url + "/chat/down/ws/") as ws:
                message = await asyncio.wait_for(ws.receive(), 15)
                assert message.type == aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 1013
        assert "Chat room 'down' unavailable" in server.logged()


async def test_two_servers_share_one_room_through_redis(tmp_path, tmp_path_factory, redis_url):
    db = migrated_db(tmp_path_factory)
    env = {"REDIS_URL": redis_url}
    # Two gunicorn instances on two ports stand for two machines; each has
    # two workers, which share nothing but Redis either.
    with gunicorn(tmp_path, db, "-w", "2", env=env, name="east") as east, gunicorn(
        tmp_path, db, "-w", "2", env=env, name="west"
    ) as west:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with http.get(west.url + "/chat/shared/events/") as events:
                await asyncio.wait_for(events.content.readuntil(b"\n\n"), 10)  # retry:
                async with http.ws_connect(east.url + "/chat/shared/ws/") as alice:
                    assert await receive(alice) == {"type": "join", "user": "anonymous"}
                    async with http.ws_connect(west.url + "/chat/shared/ws/") as bob:
                        assert await receive(bob) == {"type": "join", "user": "anonymous"}
                        # Alice, on the other server, saw Bob come in.
                        assert await receive(alice) == {"type": "join", "user": "anonymous"}
                        await alice.send_str("hello from the east")
                        said = {"type": "message", "user": "anonymous", "text": "hello from the east"}
                        assert await receive(bob) == said
                        assert await receive(alice) == said
                        await bob.send_str("hello from the west")
                        assert (await receive(alice))["text"] == "hello from the west"
                    assert await receive(alice) == {"type": "leave", "user": "anonymous"}
                seen = []
                while len(seen) < 6:
                    raw = await asyncio.wait_for(events.content.readuntil(b"\n\n"), 10)
                    if raw.startswith(b"event:"):
                        seen.append(raw.split(b"\n", 1)[0].decode())
    assert seen == [
        "event: join",
        "event: join",
        "event: message",
        "event: message",
        "event: leave",
        "event: leave",
    ]


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict:
    message = await asyncio.wait_for(ws.receive(), 10)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)
