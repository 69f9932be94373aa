"""Sending a subscription to a client: a websocket, or a server-sent-events stream.

Both send each message as the JSON text it was published as (no decoding and
encoding again per client), in batches when several are waiting, and deal
with the ends: the client going away, the broadcast closing on shutdown, and
the subscriber falling ``QUEUE_SIZE`` messages behind (the websocket is
closed with 1013 "Try Again Later"; the event stream ends, and the browser's
``EventSource`` reconnects).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Mapping, Optional

from aiohttp import web

from .exceptions import SubscriptionOverflow
from .subscription import Delivery, Subscription

#: Close code for a subscriber that fell behind: "Try Again Later" (RFC 6455 registry).
CLOSE_TOO_SLOW = 1013
#: Close code when the broadcast closes (server shutdown): "Going Away".
CLOSE_GOING_AWAY = 1001


class forward_to_websocket:
    """``async with forward_to_websocket(subscription, ws):`` sends the messages while the block runs.

    Each message goes out as one text frame holding its JSON. The block is
    where the handler reads the client's frames; leaving it (the client
    closed, or an error) stops the sending. The socket is closed with 1013
    when the subscriber falls behind, and with 1001 when the broadcast
    closes; either ends the block's ``async for msg in ws`` loop.
    """

    def __init__(self, subscription: Subscription, ws: web.WebSocketResponse) -> None:
        self._subscription = subscription
        self._ws = ws
        self._task: Optional[asyncio.Task[None]] = None

    async def __aenter__(self) -> forward_to_websocket:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        subscription, ws = self._subscription, self._ws
        try:
            while True:
                batch = [await subscription._next()]
                batch.extend(subscription._drain())
                for delivery in batch:
                    if ws.closed:
                        return
                    await ws.send_str(delivery.text)
        except StopAsyncIteration:
            await _close(ws, CLOSE_GOING_AWAY, b"broadcast closed")
        except SubscriptionOverflow:
            await _close(ws, CLOSE_TOO_SLOW, b"too slow: messages were lost")
        except ConnectionError:
            pass  # the client went away


async def _close(ws: web.WebSocketResponse, code: int, message: bytes) -> None:
    try:
        await ws.close(code=code, message=message)
    except ConnectionError:
        pass


async def stream_events(
    request: web.Request,
    subscription: Subscription,
    *,
    event: Optional[Callable[[Any], Optional[str]]] = None,
    retry: Optional[int] = None,
    keepalive: float = 15.0,
    poll: float = 1.0,
    headers: Optional[Mapping[str, str]] = None,
) -> web.StreamResponse:
    """Serve ``subscription`` as ``text/event-stream`` until the client leaves; return the response.

    Each message is one event whose ``data:`` is its JSON; ``event(message)``
    may name it (the ``event:`` field, e.g. ``lambda m: m["type"]``).
    ``retry`` (milliseconds) tells the browser how long to wait before
    reconnecting; a comment goes out after ``keepalive`` seconds of silence;
    the connection is checked every ``poll`` seconds, so a vanished client
    ends the stream (and, when the caller's ``async with`` exits, the
    subscription) within that time even when the group is quiet.
    """
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: don't buffer the stream
            **(headers or {}),
        }
    )
    await response.prepare(request)
    try:
        if retry is not None:
            await response.write(f"retry: {int(retry)}\n\n".encode())
        quiet = 0.0
        while not _gone(request):
            delivery = await subscription._next(timeout=poll)
            if delivery is None:
                quiet += poll
                if quiet >= keepalive:
                    await response.write(b": keep-alive\n\n")
                    quiet = 0.0
                continue
            batch = [delivery]
            batch.extend(subscription._drain())
            await response.write("".join(_event(d, event) for d in batch).encode("utf-8"))
            quiet = 0.0
    except (StopAsyncIteration, SubscriptionOverflow, ConnectionError):
        pass  # the broadcast closed, the subscriber fell behind, or the client left
    return response


def _event(delivery: Delivery, event: Optional[Callable[[Any], Optional[str]]]) -> str:
    if event is not None:
        name = event(delivery.message)
        if name:
            name = str(name).replace("\r", "").replace("\n", "")
            return f"event: {name}\ndata: {delivery.text}\n\n"
    return f"data: {delivery.text}\n\n"


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
