"""What every broadcast backend shares: groups of local subscribers, encoding, the event loop.

A :class:`Broadcast` is one ``AIODJANGO_BROADCAST`` entry in one process. It
keeps, for each group, the set of this process's subscriptions, and fans each
message received for a group out to their bounded queues (one JSON decode
per message and process). Backends decide how a published message arrives:
:class:`~aiodjango.broadcast.backends.memory.MemoryBroadcast` hands it
straight to the local subscribers, ``RedisBroadcast`` through Redis pub/sub.

It is bound to one event loop at a time: the loop of the aiohttp application
(``get_aio_application()`` binds it on start-up and closes it on cleanup), or
the first loop that uses it. ``publish_sync()`` called from another thread
runs on that loop; with no loop of this process serving it, it is up to the
backend (Redis opens a short-lived connection, memory raises).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from typing import Any, Optional

from .exceptions import BroadcastError
from .options import COMMON_OPTIONS, Option, Settings, settings_for, where
from .subscription import _CLOSED, _OPEN, OVERFLOW_POLICIES, Delivery, Subscription

#: Longest group name, in characters.
MAX_GROUP_LENGTH = 200


def check_group(group: Any) -> str:
    """``group`` if it is a valid group name; ``ValueError``/``TypeError`` naming it if not."""
    if not isinstance(group, str):
        raise TypeError(f"A broadcast group name must be a str, got {group!r}.")
    if not group or len(group) > MAX_GROUP_LENGTH or not group.isprintable() or any(
        c.isspace() for c in group
    ):
        raise ValueError(
            f"Invalid broadcast group name {group!r}: it must be 1 to {MAX_GROUP_LENGTH} "
            f"printable characters without spaces."
        )
    return group


class Broadcast:
    """One configured broadcast in this process (subclass it for a backend)."""

    def __init__(self, alias: str, entry: dict) -> None:
        self.settings: Settings = settings_for(alias, entry, type(self))
        self.alias = alias
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._groups: dict[str, set[Subscription]] = {}
        self._apps = 0
        self._bind_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.alias!r}>"

    # -- configuration (class level, used by the system checks) -------------

    @classmethod
    def option_specs(cls) -> dict[str, Option]:
        """The ``OPTIONS`` this backend takes, with their defaults."""
        return dict(COMMON_OPTIONS)

    @classmethod
    def location_problems(cls, alias: str, location: Any) -> list[tuple[str, str]]:
        """What is wrong with ``LOCATION`` for this backend: (message, hint) pairs."""
        if location not in (None, ""):
            return [
                (
                    f"{where(alias, 'LOCATION')} is set, but {cls.__name__} takes none.",
                    "Remove LOCATION, or use the Redis backend for a LOCATION such as "
                    "'redis://127.0.0.1:6379/0'.",
                )
            ]
        return []

    # -- the public API -------------------------------------------------------

    def subscribe(
        self,
        *groups: str,
        queue_size: Optional[int] = None,
        overflow: Optional[str] = None,
    ) -> _Subscribing:
        """``async with broadcast.subscribe("room") as messages: async for message in messages``.

        When the block starts, the subscription is active: every message
        published to one of ``groups`` from then on reaches it (at most once).
        ``queue_size`` and ``overflow`` override ``QUEUE_SIZE``/``OVERFLOW``.
        """
        for group in groups:
            check_group(group)
        if queue_size is None:
            queue_size = self.settings["QUEUE_SIZE"]
        elif isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"subscribe(queue_size=) must be a positive integer, got {queue_size!r}.")
        if overflow is None:
            overflow = self.settings["OVERFLOW"]
        elif overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"subscribe(overflow=) must be 'disconnect' or 'drop', got {overflow!r}.")
        return _Subscribing(self, groups, queue_size, overflow)

    async def publish(self, group: str, message: Any) -> None:
        """Send ``message`` (a JSON-serialisable value) to every subscriber of ``group``.

        Returns once the message is on its way: handed to this process's
        subscribers (memory) or accepted by Redis. Raises
        :class:`~aiodjango.broadcast.BroadcastUnavailable` when Redis can't be
        reached; ``TypeError``/``ValueError`` for a message that can't be sent.
        """
        text = self.encode(check_group(group), message)
        self._bind()
        await self._publish(group, text)

    def publish_sync(self, group: str, message: Any) -> None:
        """:meth:`publish` for synchronous code: Django views, signal handlers, commands.

        Thread-safe. From a thread of a process whose event loop serves this
        broadcast, the message goes through that loop (in order, per thread);
        elsewhere the backend decides. Never call it on the event loop's own
        thread: ``await publish()`` there.
        """
        text = self.encode(check_group(group), message)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                f"publish_sync() to group {group!r} was called from a running event loop's "
                f"thread, which it would block; use 'await publish(...)' in async code."
            )
        loop = self._loop
        if loop is not None and loop.is_running() and not loop.is_closed():
            self._publish_threadsafe(loop, group, text)
        else:
            self._publish_without_loop(group, text)

    def subscribers(self, group: str) -> int:
        """How many subscriptions of this process receive ``group``."""
        return len(self._groups.get(group, ()))

    def groups(self) -> list[str]:
        """The groups with at least one subscription in this process."""
        return list(self._groups)

    def end_subscriptions(self) -> None:
        """End every subscription of this process (server shutdown); publishing still works.

        Their iteration stops once their queue is read: ``forward_to_websocket``
        closes its socket with 1001 and ``stream_events`` ends, so the clients
        reconnect elsewhere instead of holding the worker until its graceful
        timeout.
        """
        subscriptions = {s for members in self._groups.values() for s in members}
        for subscription in subscriptions:
            subscription._end()

    async def close(self) -> None:
        """End every subscription and release connections; using it again reopens them."""
        loop = self._loop
        if loop is not None and loop is not asyncio.get_running_loop() and not loop.is_closed():
            raise RuntimeError(
                f"Broadcast {self.alias!r} belongs to another event loop; close it there."
            )
        self.end_subscriptions()
        self._groups.clear()
        try:
            await self._close()
        finally:
            self._loop = None

    def encode(self, group: str, message: Any) -> str:
        """The JSON text of ``message``; ``TypeError``/``ValueError`` naming what to change."""
        try:
            text = json.dumps(
                message,
                cls=self.settings["ENCODER"],
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
            )
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"The message for broadcast group {group!r} is not JSON-serialisable: {exc}. "
                f"Send JSON values (dict, list, str, int, float, bool, None), or set "
                f"{where(self.alias, 'OPTIONS', 'ENCODER')} to an encoder that knows this type "
                f"(e.g. 'django.core.serializers.json.DjangoJSONEncoder')."
            ) from exc
        limit = self.settings["MAX_MESSAGE_SIZE"]
        if len(text) > limit // 4 and len(text.encode("utf-8")) > limit:
            raise ValueError(
                f"The message for broadcast group {group!r} is {len(text.encode('utf-8'))} bytes "
                f"of JSON, more than {where(self.alias, 'OPTIONS', 'MAX_MESSAGE_SIZE')} "
                f"({limit}). Send less (an id to fetch, say) or raise the limit."
            )
        return text

    # -- the event loop -------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop (the first one, or again once the previous one is gone)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        with self._bind_lock:
            current = self._loop
            if current is not None and current is not loop:
                if current.is_running() and not current.is_closed():
                    raise RuntimeError(
                        f"Broadcast {self.alias!r} is in use by another running event loop; "
                        f"one process serves a broadcast from one loop at a time."
                    )
                self._abandon()
            self._loop = loop
        return loop

    def _abandon(self) -> None:
        """Forget the state of a loop that stopped without closing the broadcast."""
        for members in self._groups.values():
            for subscription in members:
                if subscription._state == _OPEN:
                    subscription._state = _CLOSED
                subscription._groups.clear()
        self._groups.clear()

    # -- groups ------------------------------------------------------------------

    async def _add(self, subscription: Subscription, group: str) -> None:
        check_group(group)
        if not subscription.active:
            raise RuntimeError("This subscription has ended; subscribe again.")
        self._bind()
        if group in subscription._groups:
            return
        members = self._groups.get(group)
        if members is None:
            members = self._groups[group] = set()
        members.add(subscription)
        subscription._groups.add(group)
        try:
            await self._join(group)
        except BaseException:
            self._discard(subscription, group)
            raise

    def _discard(self, subscription: Subscription, group: str) -> None:
        subscription._groups.discard(group)
        members = self._groups.get(group)
        if members is None or subscription not in members:
            return
        members.discard(subscription)
        if not members:
            del self._groups[group]
            self._leave(group)

    def _forget(self, subscription: Subscription) -> None:
        for group in list(subscription._groups):
            self._discard(subscription, group)

    def _deliver(self, group: str, text: str, message: Any) -> None:
        """Hand a received message to this process's subscribers of ``group``."""
        members = self._groups.get(group)
        if not members:
            return
        delivery = Delivery(group, text, message)
        full = None
        for subscription in members:
            if not subscription._put(delivery):
                if full is None:
                    full = []
                full.append(subscription)
        if full:
            for subscription in full:
                subscription._overflow()

    # -- for backends -----------------------------------------------------------

    async def _publish(self, group: str, text: str) -> None:
        """Send ``text`` to every subscriber of ``group``, on the bound loop."""
        raise NotImplementedError

    def _publish_threadsafe(self, loop: asyncio.AbstractEventLoop, group: str, text: str) -> None:
        """``publish_sync()`` from a thread other than the running ``loop``'s."""
        future = asyncio.run_coroutine_threadsafe(self._publish(group, text), loop)
        timeout = self.settings["TIMEOUT"]
        try:
            future.result(timeout + 1.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BroadcastError(
                f"publish_sync() to group {group!r} on broadcast {self.alias!r} got no answer "
                f"from the event loop within {timeout + 1.0:g} s."
            ) from None

    def _publish_without_loop(self, group: str, text: str) -> None:
        """``publish_sync()`` when no event loop of this process serves the broadcast."""
        raise NotImplementedError

    async def _join(self, group: str) -> None:
        """``group`` got its first local subscriber: return once its messages arrive."""

    def _leave(self, group: str) -> None:
        """``group`` lost its last local subscriber (synchronous: called from cleanups)."""

    async def _close(self) -> None:
        """Release the backend's connections and tasks."""


class _Subscribing:
    """The ``async with`` of :meth:`Broadcast.subscribe`."""

    def __init__(self, broadcast: Broadcast, groups: tuple[str, ...], queue_size: int, overflow: str) -> None:
        self._broadcast = broadcast
        self._groups = groups
        self._subscription = Subscription(broadcast, queue_size, overflow)

    async def __aenter__(self) -> Subscription:
        subscription = self._subscription
        try:
            for group in self._groups:
                await self._broadcast._add(subscription, group)
        except BaseException:
            subscription._end()
            raise
        return subscription

    async def __aexit__(self, *exc_info: Any) -> None:
        self._subscription._end()
