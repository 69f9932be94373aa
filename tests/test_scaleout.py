"""Scale-out: chat rooms shared through Redis pub/sub by several processes and servers.

Each test starts its own ``redis-server`` (Debian's package, installed by
``bash .ci/system-deps``) on a free port and stops it by PID afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os

import aiohttp
import pytest

from tests.example_servers import EXAMPLE, free_port, gunicorn, migrated_db, redis_server

pytestmark = pytest.mark.slow

TIMEOUT = aiohttp.ClientTimeout(total=15)


def import_redis():
    try:
        import redis.asyncio as redis
    except ImportError:
        reason = "redis-py is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI=true needs it.")
        pytest.skip(reason)
    return redis


@pytest.fixture
def redis_url(tmp_path):
    import_redis()
    with redis_server(tmp_path) as url:
        yield url


@pytest.fixture
def broadcast(monkeypatch):
    """The example's ``chat.broadcast`` module."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from chat import broadcast

    return broadcast


async def next_message(subscription) -> dict:
    return await asyncio.wait_for(subscription.__anext__(), 10)


async def redis_clients(url: str) -> int:
    redis = import_redis()
    client = redis.Redis.from_url(url)
    try:
        return len(await client.client_list()) - 1  # less this one
    finally:
        await client.aclose()


async def test_redis_channels_share_a_room(redis_url, broadcast):
    # Two channels stand for two processes: each has its own connections.
    first = broadcast.RedisChannel(redis_url)
    second = broadcast.RedisChannel(redis_url)
    async with first.subscribe("room") as one, second.subscribe("room") as two:
        async with second.subscribe("other") as elsewhere:
            await first.publish("room", {"type": "message", "text": "across"})
            assert await next_message(one) == {"type": "message", "text": "across"}
            assert await next_message(two) == {"type": "message", "text": "across"}
            await second.publish("other", {"type": "message", "text": "elsewhere"})
            assert (await next_message(elsewhere))["text"] == "elsewhere"
            assert first.listeners("room") == second.listeners("room") == 1
            assert await redis_clients(redis_url) >= 3
    # The last listener of a room takes its connections with it.
    assert first.listeners("room") == 0
    assert await redis_clients(redis_url) == 0


async def test_redis_channel_listeners_of_one_process_share_a_subscription(redis_url, broadcast):
    channel = broadcast.RedisChannel(redis_url)
    async with channel.subscribe("room") as one:
        clients = await redis_clients(redis_url)
        async with channel.subscribe("room") as two:
            assert await redis_clients(redis_url) == clients
            await channel.publish("room", {"n": 1})
            assert await next_message(one) == await next_message(two) == {"n": 1}


async def test_redis_channel_without_a_server_fails_to_subscribe(broadcast):
    redis = import_redis()
    channel = broadcast.RedisChannel(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(redis.ConnectionError):
        async with channel.subscribe("room"):
            pass
    assert channel.listeners("room") == 0


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
