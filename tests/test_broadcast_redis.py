"""The Redis backend against a real redis-server (started on a free port by each test).

Two ``RedisBroadcast`` instances stand for two processes: each has its own
connections. Servers and workers: tests/test_broadcast_servers.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from aiodjango.broadcast import BroadcastUnavailable, publish_sync
from aiodjango.broadcast.backends.redis import RedisBroadcast
from tests.broadcast_project.harness import redis_server
from tests.example_servers import free_port
from tests.support.broadcast import publish_from_threads, take
from tests.support.needs import needs_module

pytestmark = pytest.mark.slow

REDIS = "aiodjango.broadcast.backends.redis.RedisBroadcast"


def import_redis():
    return needs_module("redis")


@pytest.fixture
def server(tmp_path):
    import_redis()
    with redis_server(tmp_path) as running:
        yield running


@pytest.fixture
async def make(server):
    """Backends on ``server`` (each one a "process"), closed after the test."""
    made = []

    def make(**options):
        broadcast = RedisBroadcast(
            "default",
            {"LOCATION": server.url, "OPTIONS": {"RETRY_MAX_DELAY": 0.3, **options}},
        )
        made.append(broadcast)
        return broadcast

    yield make
    for broadcast in made:
        await broadcast.close()


def redis_client(server):
    return import_redis().Redis.from_url(server.url)


def numsub(server, *groups: str, prefix: str = "aiodjango:") -> dict[str, int]:
    with redis_client(server) as client:
        reply = client.pubsub_numsub(*(prefix + group for group in groups))
    return {channel.decode()[len(prefix):]: count for channel, count in reply}


def connections(server, kind: str) -> int:
    """Clients of ``server`` named aiodjango:broadcast:<alias>:<kind>."""
    with redis_client(server) as client:
        return sum(1 for c in client.client_list() if c.get("name", "").endswith(":" + kind))


async def wait_until(predicate, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_two_processes_share_a_group(make):
    east, west = make(), make()
    async with east.subscribe("room") as one, west.subscribe("room") as two, west.subscribe("other") as elsewhere:
        await east.publish("room", {"text": "across"})
        assert await take(one) == await take(two) == [{"text": "across"}]
        await west.publish("other", 1)
        assert await take(elsewhere) == [1]
        assert one.pending == two.pending == 0


async def test_one_pubsub_connection_per_process_whatever_the_subscribers(make, server):
    broadcast = make()
    async with broadcast.subscribe("a") as first:
        assert await asyncio.to_thread(connections, server, "subscribe") == 1
        subscriptions = [broadcast.subscribe(f"g{n % 20}") for n in range(200)]
        entered = [await s.__aenter__() for s in subscriptions]
        assert await asyncio.to_thread(connections, server, "subscribe") == 1
        counts = await asyncio.to_thread(numsub, server, *(f"g{n}" for n in range(20)))
        assert set(counts.values()) == {1}  # one Redis subscription per group, fanned out here
        await broadcast.publish("g3", "x")
        assert [await take(s) for s in entered if "g3" in s.groups] == [["x"]] * 10
        for s in subscriptions:
            await s.__aexit__(None, None, None)
        await broadcast.publish("a", "still")
        assert await take(first) == ["still"]
    # No local subscriber left: no subscription left in Redis.
    await wait_until(lambda: set(numsub(server, "a", *(f"g{n}" for n in range(20))).values()) == {0})


async def test_subscribe_unsubscribe_races_leave_redis_consistent(make, server):
    broadcast = make()
    for _ in range(50):
        async with broadcast.subscribe("flip") as messages:
            await broadcast.publish("flip", "on")
            assert await take(messages) == ["on"]
    # Each subscribe waited for Redis's confirmation, so every message arrived;
    # and nothing is left subscribed.
    await wait_until(lambda: numsub(server, "flip") == {"flip": 0})


async def test_publish_sync_from_a_thread_goes_through_the_loop(make):
    broadcast = make()
    async with broadcast.subscribe("a", queue_size=500) as messages:
        await publish_from_threads(broadcast, "a", "xy", messages)


async def test_publish_sync_without_a_loop_uses_a_short_connection(make, settings, server):
    # As a management command would: no event loop of that process serves it.
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": REDIS, "LOCATION": server.url}}
    listener = make()
    async with listener.subscribe("news") as messages:
        await asyncio.to_thread(publish_sync, "news", {"from": "command"})
        assert await take(messages) == [{"from": "command"}]
    # The command's connection was closed after use.
    await wait_until(lambda: connections(server, "publish") == 0)


def test_publish_sync_without_a_loop_names_the_unreachable_server(settings):
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": REDIS, "LOCATION": url, "OPTIONS": {"TIMEOUT": 2}}}
    with pytest.raises(BroadcastUnavailable, match=r"Could not publish to group 'news'.*redis://:\*\*\*@127\.0\.0\.1") as error:
        publish_sync("news", 1)
    assert "secret" not in str(error.value)  # the password stays out of messages and logs


async def test_without_a_server_subscribe_and_publish_raise(tmp_path):
    import_redis()
    broadcast = RedisBroadcast(
        "default", {"LOCATION": f"redis://127.0.0.1:{free_port()}/0", "OPTIONS": {"TIMEOUT": 2}}
    )
    try:
        with pytest.raises(BroadcastUnavailable, match="Cannot subscribe to group 'room'"):
            async with broadcast.subscribe("room"):
                pass
        assert broadcast.groups() == []
        with pytest.raises(BroadcastUnavailable, match="Could not publish to group 'room'"):
            await broadcast.publish("room", 1)
    finally:
        await broadcast.close()


async def test_redis_killed_and_restarted_subscribers_get_messages_again(make, server, caplog):
    sender, receiver = make(), make()
    caplog.set_level(logging.WARNING, logger="aiodjango.broadcast")
    async with receiver.subscribe("live") as messages:
        await sender.publish("live", "before")
        assert await take(messages) == ["before"]

        await asyncio.to_thread(server.kill)
        await wait_until(lambda: "lost Redis" in caplog.text)
        with pytest.raises(BroadcastUnavailable, match="Could not publish to group 'live'"):
            await sender.publish("live", "during")
        with pytest.raises(BroadcastUnavailable, match="Cannot subscribe to group 'new'"):
            async with receiver.subscribe("new"):
                pass

        await asyncio.to_thread(server.start)
        # Reconnected with backoff and subscribed again: messages flow.
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            try:
                await sender.publish("live", "after")
                if await take(messages, timeout=0.3) == ["after"]:
                    break
            except (BroadcastUnavailable, asyncio.TimeoutError):
                pass
            assert asyncio.get_running_loop().time() < deadline, caplog.text
        assert messages.active
    outage = [r.getMessage() for r in caplog.records if r.name == "aiodjango.broadcast"]
    assert len([m for m in outage if "lost Redis" in m]) == 1  # once, not per retry
    assert any("reconnected to Redis" in m and "subscribing again to 1 group" in m for m in outage)


async def test_a_frozen_redis_is_detected_by_the_health_check(make, server, caplog):
    broadcast = make(HEALTH_CHECK_INTERVAL=0.3, TIMEOUT=0.5)
    caplog.set_level(logging.WARNING, logger="aiodjango.broadcast")
    async with broadcast.subscribe("g") as messages:
        os.kill(server.proc.pid, signal.SIGSTOP)  # accepts nothing, answers nothing, closes nothing
        try:
            await wait_until(lambda: "no answer to PING" in caplog.text)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            try:
                await broadcast.publish("g", "back")
                if await take(messages, timeout=0.3) == ["back"]:
                    break
            except (BroadcastUnavailable, asyncio.TimeoutError):
                pass
            assert asyncio.get_running_loop().time() < deadline, caplog.text


async def test_messages_from_other_publishers_that_are_not_json_are_ignored(make, server, caplog):
    broadcast = make()
    caplog.set_level(logging.WARNING, logger="aiodjango.broadcast")
    async with broadcast.subscribe("g") as messages:
        def foreign():
            with redis_client(server) as client:
                client.publish("aiodjango:g", b"\xff not json")
                client.publish("aiodjango:g", "{not json")
                client.publish("aiodjango:g", '{\n  "pretty": true\n}')

        await asyncio.to_thread(foreign)
        assert await take(messages) == [{"pretty": True}]
        assert messages._queue == type(messages._queue)()
    assert len([r for r in caplog.records if "not UTF-8 JSON" in r.getMessage()]) == 1


async def test_prefix_keeps_sites_sharing_a_redis_apart(make):
    one, two = make(PREFIX="site1:"), make(PREFIX="site2:")
    async with one.subscribe("g") as first, two.subscribe("g") as second:
        await one.publish("g", 1)
        await two.publish("g", 2)
        assert await take(first) == [1]
        assert await take(second) == [2]


async def test_slow_subscriber_does_not_slow_the_others(make):
    broadcast = make(QUEUE_SIZE=20)
    async with broadcast.subscribe("g") as stuck, broadcast.subscribe("g", queue_size=1000) as reader:
        for n in range(200):
            await broadcast.publish("g", n)
        assert await take(reader, 200) == list(range(200))
        assert not stuck.active and stuck.pending == 20
        assert broadcast.subscribers("g") == 1
