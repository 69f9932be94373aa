"""The chat app's views: Django views and aiohttp handlers side by side.

The plain functions are ordinary Django views: Django runs them, with its
middleware, in aiodjango's thread pool. The ``async def`` functions are
aiohttp handlers: aiodjango lifts them out of the URLconf into native aiohttp
routes, where they take an ``aiohttp.web.Request`` (URL values are strings in
``request.match_info``) and return an aiohttp response. They are the place for
what Django's request/response cycle does badly: long-lived connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time

from aiohttp import WSMsgType, web
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from .broadcast import get_channel
from .users import get_username

logger = logging.getLogger(__name__)

#: Longest chat message accepted, in characters.
MAX_MESSAGE = 500
#: Seconds between keep-alive comments on an idle event stream.
SSE_KEEPALIVE = 15.0
#: Seconds between checks that an event stream's client is still there.
SSE_POLL = 1.0


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


async def chat_socket(request: web.Request) -> web.WebSocketResponse:
    """The chat room's websocket: text frames in, JSON messages out.

    Every message published to the room (by this process or, with Redis, by
    any other) is sent to the socket as ``{"type": ..., "user": ..., ...}``.
    """
    room = request.match_info["room"]
    user = await get_username(request)
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    channel = get_channel()
    async with channel.subscribe(room) as messages:
        forward = asyncio.create_task(_forward(messages, ws))
        try:
            await channel.publish(room, {"type": "join", "user": user})
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                text = frame.data.strip()[:MAX_MESSAGE]
                if text:
                    await channel.publish(room, {"type": "message", "user": user, "text": text})
        finally:
            forward.cancel()
            await asyncio.gather(forward, return_exceptions=True)
            await channel.publish(room, {"type": "leave", "user": user})
    return ws


async def _forward(messages, ws: web.WebSocketResponse) -> None:
    """Send the room's messages to the socket until it closes."""
    async for message in messages:
        if ws.closed:
            return
        try:
            await ws.send_str(json.dumps(message))
        except ConnectionError:
            return


async def room_events(request: web.Request) -> web.StreamResponse:
    """The room's messages as server-sent events (``text/event-stream``).

    A read-only view of the room for pages that do not talk: the home page
    follows the lobby with ``EventSource``.
    """
    room = request.match_info["room"]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # Tells nginx not to buffer the stream (see docs/deployment.rst).
            "X-Accel-Buffering": "no",
        }
    )
    channel = get_channel()
    async with channel.subscribe(room) as messages:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        stream = messages.__aiter__()
        quiet_since = time.monotonic()
        try:
            while not _disconnected(request):
                try:
                    message = await asyncio.wait_for(stream.__anext__(), SSE_POLL)
                except asyncio.TimeoutError:
                    if time.monotonic() - quiet_since >= SSE_KEEPALIVE:
                        await response.write(b": keep-alive\n\n")
                        quiet_since = time.monotonic()
                    continue
                event = f"event: {message['type']}\ndata: {json.dumps(message)}\n\n"
                await response.write(event.encode("utf-8"))
                quiet_since = time.monotonic()
        except ConnectionError:
            pass  # the client went away while we wrote
    return response


def _disconnected(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
