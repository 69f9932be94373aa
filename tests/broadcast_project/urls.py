"""Views of the broadcast test project: one URLconf, lifted and Django views side by side."""

from __future__ import annotations

import asyncio
import json
import os

from aiohttp import WSMsgType, web
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from aiodjango.broadcast import (
    BroadcastUnavailable,
    broadcasts,
    forward_to_websocket,
    publish,
    publish_sync,
    stream_events,
    subscribe,
)


async def socket(request: web.Request) -> web.WebSocketResponse:
    """Subscribe to the group; text frames from the client are published to it.

    The first frame says which process serves the socket: ``{"pid": ...}``.
    """
    group = request.match_info["group"]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    try:
        async with subscribe(group) as messages, forward_to_websocket(messages, ws):
            await ws.send_str(json.dumps({"pid": os.getpid()}))
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    try:
                        await publish(group, json.loads(frame.data))
                    except BroadcastUnavailable as exc:
                        await ws.send_str(json.dumps({"error": str(exc)}))
    except BroadcastUnavailable:
        await ws.close(code=1013, message=b"broadcast unavailable")
    return ws


async def events(request: web.Request) -> web.StreamResponse:
    """The group as server-sent events."""
    async with subscribe(request.match_info["group"]) as messages:
        return await stream_events(request, messages, retry=1000, poll=0.2)


@csrf_exempt  # a test endpoint, called without a browser
def publish_view(request: HttpRequest, group: str) -> JsonResponse:
    """A synchronous Django view (in the bridge's threads) publishing the request body's JSON."""
    message = json.loads(request.body or b"null")
    count = int(request.GET.get("count", "1"))
    for n in range(count):
        publish_sync(group, message if count == 1 else {"n": n, "message": message})
    return JsonResponse({"pid": os.getpid(), "published": count})


async def stats(request: web.Request) -> web.Response:
    """What this process holds: its tasks and its groups."""
    broadcast = broadcasts["default"]
    return web.json_response(
        {
            "pid": os.getpid(),
            "tasks": len(asyncio.all_tasks()),
            "groups": {group: broadcast.subscribers(group) for group in broadcast.groups()},
        }
    )


urlpatterns = [
    path("ws/<str:group>/", socket),
    path("events/<str:group>/", events),
    path("publish/<str:group>/", publish_view),
    path("stats/", stats),
]
