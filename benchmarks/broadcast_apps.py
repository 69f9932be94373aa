"""The servers of benchmarks/broadcast.py: one websocket group, three implementations.

Each serves ``/ws/`` (any path for Channels): a websocket that joins the group
``bench``, sends one ``"ready"`` frame once it is subscribed, then receives
every message published to the group as a text frame. ``BENCH_REDIS_URL``
names the Redis server.

``aiodjango_app``  aiodjango.broadcast (Redis backend), a lifted view; gunicorn
                   with aiohttp's worker.
``bare_app``       bare aiohttp: each process subscribes once to the Redis
                   channel and sends every message to its sockets in turn.
``channels_app``   Django Channels + channels_redis: an AsyncWebsocketConsumer
                   in the group, fed by ``group_send``; on daphne or uvicorn.

Import only the one a process serves (each configures what it needs).
"""

from __future__ import annotations

import os

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
GROUP = "bench"
#: The Redis channel the aiodjango backend uses for GROUP, which the bare
#: server and the publisher use too.
CHANNEL = "aiodjango:" + GROUP


def _django(**extra) -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY="broadcast-benchmark",
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            MIDDLEWARE=[],
            DATABASES={},
            USE_TZ=True,
            **extra,
        )
        django.setup()


def __getattr__(name: str):
    if name == "aiodjango_app":
        return _aiodjango_app()
    if name == "bare_app":
        return _bare_app()
    if name == "channels_app":
        return _channels_app()
    raise AttributeError(name)


# aiodjango ----------------------------------------------------------------------


async def aiodjango_socket(request):
    from aiohttp import web

    from aiodjango.broadcast import forward_to_websocket, subscribe

    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async with subscribe(GROUP) as messages, forward_to_websocket(messages, ws):
        await ws.send_str('"ready"')
        async for _ in ws:
            pass
    return ws


def _aiodjango_app():
    from django.urls import path

    _django(
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["aiodjango"],
        AIODJANGO_BROADCAST={
            "default": {
                "BACKEND": "aiodjango.broadcast.backends.redis.RedisBroadcast",
                "LOCATION": REDIS_URL,
                "OPTIONS": {"QUEUE_SIZE": int(os.environ.get("BENCH_QUEUE_SIZE", "100"))},
            }
        },
    )
    global urlpatterns
    urlpatterns = [path("ws/", aiodjango_socket)]
    from aiodjango import get_aio_application

    return get_aio_application()


# bare aiohttp -----------------------------------------------------------------------


def _bare_app():
    import asyncio

    import redis.asyncio as redis
    from aiohttp import web

    sockets: set = set()

    async def socket(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sockets.add(ws)
        try:
            await ws.send_str('"ready"')
            async for _ in ws:
                pass
        finally:
            sockets.discard(ws)
        return ws

    async def fan_out(pubsub):
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            text = message["data"].decode()
            for ws in list(sockets):
                if not ws.closed:
                    try:
                        await ws.send_str(text)
                    except ConnectionError:
                        pass

    async def lifespan(app):
        client = redis.Redis.from_url(REDIS_URL)
        pubsub = client.pubsub()
        await pubsub.subscribe(CHANNEL)
        task = asyncio.ensure_future(fan_out(pubsub))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()
        await client.aclose()

    app = web.Application()
    app.router.add_get("/ws/", socket)
    app.cleanup_ctx.append(lifespan)
    return app


# Django Channels ------------------------------------------------------------------------


def _channels_app():
    _django(
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [REDIS_URL]},
            }
        },
    )
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter

    class BenchConsumer(AsyncWebsocketConsumer):
        async def connect(self):
            await self.channel_layer.group_add(GROUP, self.channel_name)
            await self.accept()
            await self.send(text_data='"ready"')

        async def disconnect(self, code):
            await self.channel_layer.group_discard(GROUP, self.channel_name)

        async def bench_message(self, event):
            await self.send(text_data=event["text"])

    return ProtocolTypeRouter({"websocket": BenchConsumer.as_asgi()})
