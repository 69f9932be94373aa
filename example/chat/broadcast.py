"""The chat's broadcast channel: delivers each room's messages to every listener.

A channel fans messages out to the websockets and event streams of *this*
process. ``LocalChannel`` stops there, which is enough for one server
process. ``RedisChannel`` publishes through Redis pub/sub instead, so every
process subscribed to the room (other gunicorn workers, other machines)
receives the message too.

The backend is chosen by the ``CHAT_CHANNEL`` setting, in the shape of
Django's ``CACHES``::

    CHAT_CHANNEL = {"BACKEND": "chat.broadcast.RedisChannel",
                    "OPTIONS": {"url": "redis://127.0.0.1:6379/0"}}

Writing another backend (RabbitMQ, PostgreSQL LISTEN/NOTIFY, ...) means
subclassing ``Channel`` and implementing ``publish`` and, if the room needs a
connection of its own, ``open_room`` and ``close_room``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, AsyncIterator

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

Message = dict[str, Any]

#: Messages queued for one slow listener before it starts losing them.
QUEUE_SIZE = 100


class _Room:
    """A room as seen by one process: its local listeners and backend state."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.listeners: set[asyncio.Queue[Message]] = set()
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.state: Any = None


class Subscription:
    """The messages of one room for one listener, in order: ``async for``."""

    def __init__(self, queue: asyncio.Queue[Message]) -> None:
        self._queue = queue

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        return await self._queue.get()


class Channel:
    """In-process fan-out; subclasses decide how a published message arrives."""

    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}

    async def publish(self, room: str, message: Message) -> None:
        raise NotImplementedError

    async def open_room(self, room: _Room) -> None:
        """Start receiving ``room``'s messages (its first local listener arrived)."""

    async def close_room(self, room: _Room) -> None:
        """Stop receiving ``room``'s messages (its last local listener left)."""

    def listeners(self, room: str) -> int:
        """How many listeners ``room`` has in this process."""
        state = self._rooms.get(room)
        return len(state.listeners) if state is not None else 0

    @contextlib.asynccontextmanager
    async def subscribe(self, room: str) -> AsyncIterator[Subscription]:
        """Listen to ``room``: ``async with channel.subscribe(room) as messages``.

        When the ``async with`` body starts, the subscription is active: every
        message published from then on is delivered.
        """
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_SIZE)
        state = self._rooms.get(room)
        opener = state is None
        if state is None:
            state = self._rooms[room] = _Room(room)
        state.listeners.add(queue)
        try:
            if opener:
                try:
                    await self.open_room(state)
                except BaseException:
                    state.ready.set_result(False)
                    if self._rooms.get(room) is state:
                        del self._rooms[room]
                    raise
                state.ready.set_result(True)
            elif not await asyncio.shield(state.ready):
                raise ConnectionError(f"Could not open chat room {room!r}.")
            yield Subscription(queue)
        finally:
            state.listeners.discard(queue)
            if not state.listeners and state.ready.done() and state.ready.result():
                if self._rooms.get(room) is state:
                    del self._rooms[room]
                await self.close_room(state)

    def deliver(self, room: str, message: Message) -> None:
        """Hand ``message`` to every local listener of ``room``."""
        state = self._rooms.get(room)
        if state is not None:
            self._fan_out(state, message)

    def _fan_out(self, room: _Room, message: Message) -> None:
        for queue in room.listeners:
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                logger.warning("Chat listener in room %r is too slow; message dropped.", room.name)


class LocalChannel(Channel):
    """Rooms shared by the listeners of one process only."""

    async def publish(self, room: str, message: Message) -> None:
        self.deliver(room, message)


class RedisChannel(Channel):
    """Rooms shared by every process that uses the same Redis server.

    Each room open in this process holds one Redis connection subscribed to
    ``<prefix><room>``; publishing uses a pooled connection. Connections are
    released when the last local listener leaves.
    """

    def __init__(self, url: str, prefix: str = "chat:") -> None:
        super().__init__()
        try:
            import redis.asyncio  # noqa: F401
        except ImportError as exc:
            raise ImproperlyConfigured(
                "CHAT_CHANNEL uses chat.broadcast.RedisChannel, which needs redis-py: "
                "pip install redis (or unset REDIS_URL)."
            ) from exc
        self.url = url
        self.prefix = prefix
        self._client: Any = None
        self._users = 0

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """The shared client, closed once no room and no publish needs it."""
        import redis.asyncio as redis

        if self._client is None:
            self._client = redis.Redis.from_url(self.url)
        client = self._client
        self._users += 1
        try:
            yield client
        finally:
            self._users -= 1
            if not self._users and self._client is client:
                self._client = None
                await client.aclose()

    async def publish(self, room: str, message: Message) -> None:
        async with self._connection() as client:
            await client.publish(self.prefix + room, json.dumps(message))

    async def open_room(self, room: _Room) -> None:
        stack = contextlib.AsyncExitStack()
        try:
            client = await stack.enter_async_context(self._connection())
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            stack.push_async_callback(pubsub.aclose)
            await pubsub.subscribe(self.prefix + room.name)
        except BaseException:
            await stack.aclose()
            raise
        reader = asyncio.create_task(self._read(room, pubsub))
        room.state = (stack, reader)

    async def close_room(self, room: _Room) -> None:
        stack, reader = room.state
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await stack.aclose()

    async def _read(self, room: _Room, pubsub: Any) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Lost the Redis subscription of chat room %r.", room.name)
                return
            if message is None or message["type"] != "message":
                continue
            try:
                self._fan_out(room, json.loads(message["data"]))
            except ValueError:
                logger.warning("Ignored a malformed message in chat room %r.", room.name)


_channel: Channel | None = None


def get_channel() -> Channel:
    """This process's channel, built from the ``CHAT_CHANNEL`` setting."""
    global _channel
    if _channel is None:
        config = getattr(settings, "CHAT_CHANNEL", None) or {}
        backend = config.get("BACKEND", "chat.broadcast.LocalChannel")
        try:
            cls = import_string(backend)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"CHAT_CHANNEL['BACKEND'] = {backend!r} cannot be imported: {exc}"
            ) from exc
        _channel = cls(**config.get("OPTIONS", {}))
    return _channel
