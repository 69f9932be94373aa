"""The chat app's views: Django views and aiohttp handlers side by side.

The plain functions are ordinary Django views: Django runs them, with its
middleware, in aiodjango's thread pool. The ``async def`` functions are
aiohttp handlers: aiodjango lifts them out of the URLconf into native aiohttp
routes, where they take an ``aiohttp.web.Request`` (URL values are strings in
``request.match_info``) and return an aiohttp response. They are the place for
what Django's request/response cycle does badly: long-lived connections.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from aiohttp import WSMsgType, web
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from aiodjango.broadcast import (
    BroadcastError,
    BroadcastUnavailable,
    forward_to_websocket,
    publish,
    stream_events,
    subscribe,
)

from .users import get_username

logger = logging.getLogger(__name__)

#: Longest chat message accepted, in characters.
MAX_MESSAGE = 500
#: Seconds between keep-alive comments on an idle event stream.
SSE_KEEPALIVE = 15.0


# Django views ---------------------------------------------------------------


def index(request: HttpRequest) -> HttpResponse:
    """The home page: a Django template; it follows the lobby over SSE."""
    return render(request, "chat/index.html", {"room": "lobby"})


def room(request: HttpRequest, room: str) -> HttpResponse:
    """A chat room's page: a Django template; its JavaScript opens the websocket."""
    return render(request, "chat/room.html", {"room": room})


def slow(request: HttpRequest) -> HttpResponse:
    """A blocking Django view (``?seconds=``, at most 10).

    It holds one of the bridge's threads while it sleeps; the lifted handlers
    and the other threads go on serving meanwhile.
    """
    try:
        seconds = min(max(float(request.GET.get("seconds", "1")), 0.0), 10.0)
    except ValueError:
        return JsonResponse({"error": "seconds must be a number"}, status=400)
    if seconds:
        logger.info("Slow view sleeping %.1f s in pid %d.", seconds, os.getpid())
        time.sleep(seconds)
    return JsonResponse({"slept": seconds, "pid": os.getpid()})


# aiohttp handlers (lifted) ------------------------------------------------


async def hello(request: web.Request) -> web.Response:
    """A JSON endpoint with a URL parameter, served by aiohttp."""
    name = request.match_info["name"]
    return web.json_response({"hello": name, "served_by": "aiohttp", "pid": os.getpid()})


def room_group(room: str) -> str:
    """The broadcast group of a chat room."""
    return f"chat.{room}"


async def chat_socket(request: web.Request) -> web.WebSocketResponse:
    """The chat room's websocket: text frames in, JSON messages out.

    Every message published to the room's group (by this process or, with
    Redis, by any other worker or machine) is sent to the socket as
    ``{"type": ..., "user": ..., ...}``: ``forward_to_websocket`` does it while
    the handler reads what the client says.
    """
    room = request.match_info["room"]
    user = await get_username(request)
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    group = room_group(room)
    try:
        async with subscribe(group) as messages, forward_to_websocket(messages, ws):
            await publish(group, {"type": "join", "user": user})
            try:
                async for frame in ws:
                    if frame.type != WSMsgType.TEXT:
                        continue
                    text = frame.data.strip()[:MAX_MESSAGE]
                    if text:
                        await publish(group, {"type": "message", "user": user, "text": text})
            finally:
                with contextlib.suppress(BroadcastError):
                    await publish(group, {"type": "leave", "user": user})
    except BroadcastUnavailable as exc:
        # Redis is down: the page's JavaScript reconnects after a while.
        logger.warning("Chat room %r unavailable: %s", room, exc)
        await ws.close(code=1013, message=b"chat unavailable, try again later")
    return ws


async def room_events(request: web.Request) -> web.StreamResponse:
    """The room's messages as server-sent events (``text/event-stream``).

    A read-only view of the room for pages that do not talk: the home page
    follows the lobby with ``EventSource``. Each event is named after the
    message's type (``event: join``); ``stream_events`` sends keep-alive
    comments and ends when the client goes away.
    """
    room = request.match_info["room"]
    async with subscribe(room_group(room)) as messages:
        return await stream_events(
            request, messages, event=lambda message: message.get("type"), retry=2000,
            keepalive=SSE_KEEPALIVE,
        )
