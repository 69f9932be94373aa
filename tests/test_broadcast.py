"""aiodjango.broadcast: the in-memory backend's semantics, settings and checks, and the
websocket/event-stream helpers on a real aiohttp server (in this process).

Redis: tests/test_broadcast_redis.py; gunicorn workers: tests/test_broadcast_servers.py.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import threading

import aiohttp
import pytest
from django.core.exceptions import ImproperlyConfigured

from aiodjango import get_aio_application
from aiodjango.broadcast import (
    BroadcastError,
    Event,
    SubscriptionOverflow,
    broadcasts,
    publish,
    publish_sync,
    stream_events,
    subscribe,
)
from aiodjango.broadcast.backends.memory import MemoryBroadcast
from aiodjango.checks import check_broadcast_settings
from tests.support.broadcast import publish_from_threads, take

pytest_plugins = ["aiodjango.testing"]  # AioClient for the Django-test case below

MEMORY = "aiodjango.broadcast.backends.memory.MemoryBroadcast"
REDIS = "aiodjango.broadcast.backends.redis.RedisBroadcast"


@pytest.fixture
async def memory():
    broadcast = MemoryBroadcast("default", {"OPTIONS": {"QUEUE_SIZE": 10}})
    try:
        yield broadcast
    finally:
        await broadcast.close()


# Delivery ---------------------------------------------------------------------


async def test_messages_reach_every_subscriber_of_their_group_only(memory):
    async with memory.subscribe("a") as first, memory.subscribe("a") as second, memory.subscribe("b") as other:
        await memory.publish("a", {"n": 1})
        await memory.publish("b", {"n": 2})
        assert await take(first, 1) == await take(second, 1) == [{"n": 1}]
        assert await take(other, 1) == [{"n": 2}]
        assert first.pending == second.pending == other.pending == 0
        assert memory.subscribers("a") == 2 and memory.subscribers("b") == 1
    assert memory.subscribers("a") == memory.subscribers("b") == 0
    assert memory.groups() == []


async def test_subscription_is_active_when_the_block_starts_and_ends_with_it(memory):
    await memory.publish("a", "before")  # nobody listens: dropped quietly
    async with memory.subscribe("a") as messages:
        await memory.publish("a", "during")
        assert await take(messages, 1) == ["during"]
    await memory.publish("a", "after")
    assert not messages.active
    with pytest.raises(StopAsyncIteration):
        await messages.__anext__()


async def test_order_is_kept_per_publisher(memory):
    async with memory.subscribe("a", queue_size=1000) as messages:
        async def publisher(name):
            for n in range(200):
                await memory.publish("a", [name, n])
                if n % 7 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(publisher("x"), publisher("y"))
        received = await take(messages, 400)
    for name in ("x", "y"):
        assert [n for who, n in received if who == name] == list(range(200))


async def test_one_subscription_to_several_groups_and_events_say_which(memory):
    async with memory.subscribe("a", "b") as subscription:
        assert subscription.groups == {"a", "b"}
        await memory.publish("b", 1)
        await memory.publish("a", 2)
        events = subscription.events()
        assert await asyncio.wait_for(events.__anext__(), 1) == Event("b", 1)
        assert await asyncio.wait_for(events.__anext__(), 1) == Event("a", 2)


async def test_groups_can_be_added_and_discarded(memory):
    async with memory.subscribe() as subscription:
        await subscription.add("late")
        await memory.publish("late", 1)
        assert await take(subscription, 1) == [1]
        subscription.discard("late")
        assert memory.subscribers("late") == 0
        await memory.publish("late", 2)
        assert subscription.pending == 0


async def test_messages_are_json_values_decoded_once_per_process(memory):
    async with memory.subscribe("a") as first, memory.subscribe("a") as second:
        sent = {"tuple": (1, 2), 3: "int key", "nested": [None, True, 1.5, "é"]}
        await memory.publish("a", sent)
        one, two = (await take(first, 1))[0], (await take(second, 1))[0]
    # What a subscriber gets is json.loads(json.dumps(message)), shared in the process.
    assert one == {"tuple": [1, 2], "3": "int key", "nested": [None, True, 1.5, "é"]}
    assert one is two


async def test_unserialisable_messages_are_refused_naming_the_encoder_option(memory):
    with pytest.raises(TypeError, match=r"group 'a' is not JSON-serialisable.*\['ENCODER'\]"):
        await memory.publish("a", {"when": datetime.date(2024, 1, 1)})
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        await memory.publish("a", float("nan"))
    with pytest.raises(TypeError):
        publish_sync("a", object())


async def test_django_json_encoder_option_allows_dates_and_decimals():
    import decimal

    broadcast = MemoryBroadcast(
        "default", {"OPTIONS": {"ENCODER": "django.core.serializers.json.DjangoJSONEncoder"}}
    )
    try:
        async with broadcast.subscribe("a") as messages:
            await broadcast.publish("a", {"d": datetime.date(2024, 1, 2), "x": decimal.Decimal("1.5")})
            assert await take(messages, 1) == [{"d": "2024-01-02", "x": "1.5"}]
    finally:
        await broadcast.close()


async def test_messages_larger_than_max_message_size_are_refused():
    broadcast = MemoryBroadcast("default", {"OPTIONS": {"MAX_MESSAGE_SIZE": 100}})
    try:
        await broadcast.publish("a", "x" * 90)
        with pytest.raises(ValueError, match=r"more than AIODJANGO_BROADCAST\['default'\]\['OPTIONS'\]\['MAX_MESSAGE_SIZE'\] \(100\)"):
            await broadcast.publish("a", "é" * 60)  # 120 bytes of UTF-8
    finally:
        await broadcast.close()


@pytest.mark.parametrize("group", ["", "has space", "new\nline", "x" * 201, "tab\t"])
async def test_bad_group_names_are_refused(memory, group):
    with pytest.raises(ValueError, match="Invalid broadcast group name"):
        await memory.publish(group, 1)
    with pytest.raises(ValueError, match="Invalid broadcast group name"):
        memory.subscribe(group)


async def test_group_names_must_be_strings(memory):
    with pytest.raises(TypeError, match="must be a str"):
        await memory.publish(42, 1)


async def test_subscribe_arguments_are_checked(memory):
    with pytest.raises(ValueError, match="queue_size"):
        memory.subscribe("a", queue_size=0)
    with pytest.raises(ValueError, match="overflow"):
        memory.subscribe("a", overflow="block")


# Slow subscribers ------------------------------------------------------------------


async def test_slow_subscriber_is_disconnected_while_the_others_get_everything(memory, caplog):
    async with memory.subscribe("a") as stuck, memory.subscribe("a", queue_size=100) as reader:
        with caplog.at_level(logging.WARNING, logger="aiodjango.broadcast"):
            for n in range(50):
                await memory.publish("a", n)
        # The others are not slowed down: everything queued for them.
        assert await take(reader, 50) == list(range(50))
        # The stuck one kept QUEUE_SIZE (10) messages, then was dropped from the group.
        assert stuck.pending == 10
        assert not stuck.active
        assert memory.subscribers("a") == 1
        assert await take(stuck, 10) == list(range(10))
        with pytest.raises(SubscriptionOverflow, match=r"fell 10 messages behind.*QUEUE_SIZE"):
            await stuck.__anext__()
    warnings = [r for r in caplog.records if "behind" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not once per lost message
    assert "group 'a'" in warnings[0].getMessage()


async def test_drop_policy_keeps_the_newest_messages_and_counts_the_lost(memory, caplog):
    async with memory.subscribe("a", overflow="drop") as lagging:
        with caplog.at_level(logging.WARNING, logger="aiodjango.broadcast"):
            for n in range(25):
                await memory.publish("a", n)
        assert lagging.active
        assert lagging.pending == 10
        assert lagging.dropped == 15
        assert await take(lagging, 10) == list(range(15, 25))
        await memory.publish("a", "next")
        assert await take(lagging, 1) == ["next"]
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1


async def test_queues_stay_bounded_whatever_is_published(memory):
    async with memory.subscribe("a", overflow="drop") as lagging:
        for n in range(5000):
            await memory.publish("a", n)
            assert lagging.pending <= 10


# Lifetimes --------------------------------------------------------------------------


async def test_cancelled_subscriber_leaves_its_groups(memory):
    started = asyncio.Event()

    async def listen():
        async with memory.subscribe("a", "b") as messages:
            started.set()
            async for _ in messages:
                pass

    task = asyncio.ensure_future(listen())
    await asyncio.wait_for(started.wait(), 1)
    assert memory.subscribers("a") == memory.subscribers("b") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert memory.groups() == []


async def test_close_ends_every_subscription(memory):
    async with memory.subscribe("a") as messages:
        await memory.publish("a", 1)
        await memory.close()
        assert await take(messages, 1) == [1]  # what was queued is still read
        with pytest.raises(StopAsyncIteration):
            await messages.__anext__()
    assert memory.groups() == []


async def test_a_broadcast_serves_one_running_loop_at_a_time(memory):
    await memory.publish("a", 1)  # bound to this loop
    errors = []

    def other_loop():
        async def use():
            async with memory.subscribe("a"):
                pass

        try:
            asyncio.run(use())
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=other_loop)
    thread.start()
    await asyncio.to_thread(thread.join, 10)
    assert errors and "in use by another running event loop" in errors[0]


# Publishing from synchronous code ------------------------------------------------------


async def test_publish_sync_from_threads_reaches_the_loop_in_order(memory):
    async with memory.subscribe("a", queue_size=1000) as messages:
        await publish_from_threads(memory, "a", "xyz", messages)


async def test_publish_sync_on_the_event_loop_thread_is_refused(memory):
    with pytest.raises(RuntimeError, match=r"use 'await publish\(...\)'"):
        memory.publish_sync("a", 1)


def test_publish_sync_without_a_loop_explains_the_memory_backend():
    broadcast = MemoryBroadcast("default", {})
    with pytest.raises(BroadcastError, match=r"in-memory backend.*reaches subscribers of this process only.*RedisBroadcast"):
        broadcast.publish_sync("a", {"n": 1})


# Settings and checks ------------------------------------------------------------------------


def test_default_is_the_in_memory_backend(settings):
    settings.AIODJANGO_BROADCAST = None
    del settings.AIODJANGO_BROADCAST
    assert type(broadcasts["default"]) is MemoryBroadcast
    assert broadcasts["default"] is broadcasts["default"]
    assert check_broadcast_settings() == []


def test_changing_the_setting_rebuilds_the_backends(settings):
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": MEMORY, "OPTIONS": {"QUEUE_SIZE": 3}}}
    first = broadcasts["default"]
    assert first.settings["QUEUE_SIZE"] == 3
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": MEMORY, "OPTIONS": {"QUEUE_SIZE": 4}}}
    assert broadcasts["default"] is not first
    assert broadcasts["default"].settings["QUEUE_SIZE"] == 4


def test_unknown_alias_names_the_setting(settings):
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": MEMORY}}
    with pytest.raises(ImproperlyConfigured, match=r"no broadcast 'chat' in AIODJANGO_BROADCAST"):
        subscribe("room", using="chat")


def test_bad_option_raises_with_the_setting_path_and_check_id(settings):
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": MEMORY, "OPTIONS": {"QUEUE_SIZE": -1}}}
    with pytest.raises(
        ImproperlyConfigured,
        match=r"AIODJANGO_BROADCAST\['default'\]\['OPTIONS'\]\['QUEUE_SIZE'\] must be a positive "
        r"number of messages, e.g. 100, got -1\..*aiodjango.E052",
    ):
        broadcasts["default"]


@pytest.mark.parametrize(
    "value, check_id, words",
    [
        ([], "aiodjango.E050", "must be a dict of broadcast aliases"),
        ({"chat": {"BACKEND": MEMORY}}, "aiodjango.E050", "no 'default' alias"),
        ({"default": "redis://"}, "aiodjango.E050", "must be a dict with 'BACKEND'"),
        ({"default": {"BACKEND": MEMORY, "LOCATON": "x"}}, "aiodjango.E050", "unknown keys: 'LOCATON'"),
        ({"default": {"BACKEND": "nope.Nope"}}, "aiodjango.E051", "cannot be imported"),
        ({"default": {"BACKEND": "json.JSONEncoder"}}, "aiodjango.E051", "is not a broadcast backend"),
        ({"default": {"BACKEND": MEMORY, "OPTIONS": []}}, "aiodjango.E052", "['OPTIONS'] must be a dict"),
        ({"default": {"BACKEND": MEMORY, "OPTIONS": {"SIZE": 1}}}, "aiodjango.E052", "unknown option 'SIZE'"),
        ({"default": {"BACKEND": MEMORY, "OPTIONS": {"OVERFLOW": "block"}}}, "aiodjango.E052",
         "'disconnect' or 'drop'"),
        ({"default": {"BACKEND": MEMORY, "OPTIONS": {"ENCODER": "json.JSONDecoder"}}}, "aiodjango.E052",
         "json.JSONEncoder subclass"),
        ({"default": {"BACKEND": MEMORY, "OPTIONS": {"TIMEOUT": float("inf")}}}, "aiodjango.E052",
         "positive number of seconds"),
        ({"default": {"BACKEND": MEMORY, "LOCATION": "redis://x"}}, "aiodjango.E053", "takes none"),
        ({"default": {"BACKEND": REDIS}}, "aiodjango.E053", "must be a Redis URL, got None"),
        ({"default": {"BACKEND": REDIS, "LOCATION": "redis://h/0?protocol=3"}}, "aiodjango.E053", "RESP3"),
        ({"default": {"BACKEND": REDIS, "LOCATION": "redis://h", "OPTIONS": {"PREFIX": 1}}},
         "aiodjango.E052", "['PREFIX'] must be a string"),
    ],
)
def test_system_checks_report_bad_settings(settings, value, check_id, words):
    settings.AIODJANGO_BROADCAST = value
    errors = check_broadcast_settings()
    assert [e.id for e in errors] == [check_id], errors
    assert words in errors[0].msg
    assert errors[0].hint
    assert errors[0].obj == "AIODJANGO_BROADCAST"


def test_redis_backend_without_redis_py_says_what_to_install(settings, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": REDIS, "LOCATION": "redis://127.0.0.1/0"}}
    errors = check_broadcast_settings()
    assert [e.id for e in errors] == ["aiodjango.E053"]
    assert "pip install 'aiodjango[redis]'" in errors[0].hint
    with pytest.raises(ImproperlyConfigured, match="needs redis-py"):
        broadcasts["default"]


# On a real server: websockets, event streams, a sync Django view ----------------------------


@pytest.fixture
async def client(aiohttp_client, settings):
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": MEMORY, "OPTIONS": {"QUEUE_SIZE": 20}}}
    settings.ROOT_URLCONF = "tests.broadcast_project.urls"
    app = get_aio_application()
    return await aiohttp_client(app)


async def receive_json(ws, timeout: float = 5.0):
    message = await asyncio.wait_for(ws.receive(), timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


async def test_websockets_share_a_group(client):
    async with client.ws_connect("/ws/room/") as alice, client.ws_connect("/ws/room/") as bob:
        assert "pid" in await receive_json(alice) and "pid" in await receive_json(bob)
        await alice.send_str(json.dumps({"text": "hi"}))
        assert await receive_json(bob) == {"text": "hi"}
        assert await receive_json(alice) == {"text": "hi"}
    # Both sockets closed: their subscriptions ended with them.
    await wait_until(lambda: broadcasts["default"].groups() == [])


async def test_sync_django_view_publishes_to_websockets(client):
    async with client.ws_connect("/ws/news/") as ws:
        await receive_json(ws)
        response = await client.post("/publish/news/?count=3", data=json.dumps({"headline": "x"}))
        assert response.status == 200, await response.text()
        assert [await receive_json(ws) for _ in range(3)] == [
            {"n": n, "message": {"headline": "x"}} for n in range(3)
        ]


async def test_event_stream_sends_events_and_ends_with_its_client(client):
    response = await client.get("/events/feed/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5) == b"retry: 1000\n\n"
    await wait_until(lambda: broadcasts["default"].subscribers("feed") == 1)
    await publish("feed", {"a": [1, "two"]})
    assert await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5) == b'data: {"a":[1,"two"]}\n\n'
    response.close()  # the client vanishes; the group is quiet
    await wait_until(lambda: broadcasts["default"].subscribers("feed") == 0)


async def test_event_stream_keeps_alive_and_names_events_in_one_line(aiohttp_client, settings):
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": MEMORY}}
    app = get_aio_application()

    async def feed(request):
        async with subscribe("named") as messages:
            return await stream_events(
                request, messages, event=lambda m: "tick\r\nid: 666", keepalive=0.2, poll=0.05
            )

    app.router.add_get("/named/", feed)
    client = await aiohttp_client(app)
    response = await client.get("/named/")
    # A quiet group: a comment after ``keepalive`` seconds keeps proxies from closing.
    assert await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5) == b": keep-alive\n\n"
    await publish("named", 1)
    # CR and LF are taken out of the event's name: it can't add a field of its own.
    assert await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5) == b"event: tickid: 666\ndata: 1\n\n"
    response.close()
    await wait_until(lambda: broadcasts["default"].subscribers("named") == 0)


async def test_too_slow_websocket_is_closed_with_1013_and_others_keep_everything(client):
    async with client.ws_connect("/ws/busy/") as fast:
        await receive_json(fast)
        # A subscriber whose socket is never written to (its sender is stuck):
        # simulate by subscribing directly with a small queue and never reading.
        async with subscribe("busy", queue_size=5) as stuck:
            for n in range(30):
                await publish("busy", n)
            assert [await receive_json(fast) for _ in range(30)] == list(range(30))
            assert not stuck.active
            assert stuck.dropped == 1


async def test_server_shutdown_ends_subscribed_websockets_and_streams_at_once(aiohttp_client, settings):
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": MEMORY}}
    settings.ROOT_URLCONF = "tests.broadcast_project.urls"
    app = get_aio_application()
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/ws/room/")
    await receive_json(ws)
    events = await client.get("/events/room/")
    assert await asyncio.wait_for(events.content.readuntil(b"\n\n"), 5) == b"retry: 1000\n\n"
    await app.shutdown()  # what the server does on SIGTERM, before waiting for handlers
    message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1001
    await ws.close()
    assert await asyncio.wait_for(events.content.read(), 5) == b""  # the stream ended
    await publish("room", "publishing still works until cleanup")


async def test_the_application_binds_and_closes_the_broadcasts(aiohttp_client, settings):
    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": MEMORY}}
    settings.ROOT_URLCONF = "tests.broadcast_project.urls"
    app = get_aio_application()
    client = await aiohttp_client(app)
    broadcast = broadcasts["default"]
    assert broadcast._loop is asyncio.get_running_loop()  # bound on start-up
    await client.close()
    assert broadcast._loop is None  # closed on cleanup


def test_publish_sync_from_a_django_test_reaches_the_served_websocket(settings):
    from aiodjango.testing import AioClient

    settings.AIODJANGO_BROADCAST = {"default": {"BACKEND": MEMORY}}
    settings.ROOT_URLCONF = "tests.broadcast_project.urls"
    app = get_aio_application()
    with AioClient(app) as client:
        with client.ws_connect("/ws/alerts/") as ws:
            assert "pid" in ws.receive_json()
            # This thread is not the server's: the message goes through its loop.
            publish_sync("alerts", {"level": "high"})
            assert ws.receive_json() == {"level": "high"}


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
