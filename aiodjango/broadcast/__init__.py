"""Groups and broadcast for websockets and event streams, across workers and machines.

Subscribe a websocket or an event stream to named groups, and publish to a
group from anywhere: a lifted view (``await publish()``), a Django view, a
signal handler or a management command (``publish_sync()``)::

    from aiodjango.broadcast import forward_to_websocket, publish, subscribe

    async def room_socket(request):
        room = request.match_info["room"]
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async with subscribe(f"room.{room}") as messages, forward_to_websocket(messages, ws):
            async for frame in ws:
                await publish(f"room.{room}", {"text": frame.data})
        return ws

Messages are JSON values. Backends are configured by ``AIODJANGO_BROADCAST``,
shaped like ``CACHES``: in-process by default, Redis pub/sub for several
processes (see ``docs/broadcast.rst`` for the delivery guarantees).
"""

from __future__ import annotations

from typing import Any, Optional

from .base import Broadcast
from .exceptions import BroadcastError, BroadcastUnavailable, SubscriptionOverflow
from .handler import BroadcastHandler, broadcasts, close_all
from .streams import forward_to_websocket, stream_events
from .subscription import Event, Subscription

__all__ = [
    "Broadcast",
    "BroadcastError",
    "BroadcastHandler",
    "BroadcastUnavailable",
    "Event",
    "Subscription",
    "SubscriptionOverflow",
    "broadcasts",
    "close",
    "forward_to_websocket",
    "publish",
    "publish_sync",
    "stream_events",
    "subscribe",
]


def subscribe(
    *groups: str,
    using: str = "default",
    queue_size: Optional[int] = None,
    overflow: Optional[str] = None,
) -> Any:
    """Receive the messages of ``groups``: ``async with subscribe("room") as messages``.

    The subscription is active when the block starts and ends with it; read
    it with ``async for message in messages``. ``queue_size`` and
    ``overflow`` ("disconnect" or "drop") override the backend's
    ``QUEUE_SIZE`` and ``OVERFLOW`` options for this subscriber. Raises
    :class:`BroadcastUnavailable` when Redis can't be reached.
    """
    return broadcasts[using].subscribe(*groups, queue_size=queue_size, overflow=overflow)


async def publish(group: str, message: Any, *, using: str = "default") -> None:
    """Send ``message`` (a JSON value) to every subscriber of ``group``, in every process.

    Raises :class:`BroadcastUnavailable` when Redis can't be reached (nothing
    is buffered), ``TypeError``/``ValueError`` when ``message`` can't be sent.
    """
    await broadcasts[using].publish(group, message)


def publish_sync(group: str, message: Any, *, using: str = "default") -> None:
    """:func:`publish` from synchronous code: Django views, signal handlers, commands.

    Thread-safe. In a server process it runs on the server's event loop; in a
    management command (no event loop) the Redis backend opens a short-lived
    connection and the memory backend raises :class:`BroadcastError`, since
    no subscriber of this process could receive it.
    """
    broadcasts[using].publish_sync(group, message)


async def close() -> None:
    """Close the broadcasts bound to the running loop (for scripts and tests).

    Servers built by ``get_aio_application()`` do this on cleanup.
    """
    await close_all()


# Documented here, where users import them from.
for _public in (Broadcast, BroadcastError, BroadcastHandler, BroadcastUnavailable, Event,
                Subscription, SubscriptionOverflow, forward_to_websocket, stream_events):
    _public.__module__ = __name__
del _public
