"""A subscriber's side: a bounded queue of the messages of its groups, read with ``async for``."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from .exceptions import SubscriptionOverflow

if TYPE_CHECKING:
    from .base import Broadcast

logger = logging.getLogger("aiodjango.broadcast")

#: What a full queue does: end the subscription, or drop its oldest message.
OVERFLOW_POLICIES = ("disconnect", "drop")


class Event(NamedTuple):
    """A message with the group it was published to (:meth:`Subscription.events`)."""

    group: str
    message: Any


class Delivery:
    """One published message as received by this process, shared by its local subscribers.

    ``text`` is the JSON text as published (forwarded as is to websockets and
    event streams); ``message`` the value decoded from it, once per process.
    """

    __slots__ = ("group", "text", "message")

    def __init__(self, group: str, text: str, message: Any) -> None:
        self.group = group
        self.text = text
        self.message = message


_OPEN, _CLOSED, _OVERFLOWED = 0, 1, 2


class Subscription:
    """The messages of one or more groups for one subscriber, in order.

    Made by ``subscribe()``; read it with ``async for message in
    subscription`` (the decoded JSON values) or ``async for event in
    subscription.events()`` (with their group). Iteration ends when the
    ``async with`` block exits or the broadcast closes (server shutdown), and
    raises :class:`SubscriptionOverflow` when the subscriber fell
    ``QUEUE_SIZE`` messages behind under ``OVERFLOW: "disconnect"``.
    """

    def __init__(self, broadcast: Broadcast, queue_size: int, overflow: str) -> None:
        self._broadcast = broadcast
        self._groups: set[str] = set()
        self._queue: deque[Delivery] = deque()
        self._queue_size = queue_size
        self._drop_oldest = overflow == "drop"
        self._waiter: Optional[asyncio.Future[None]] = None
        self._state = _OPEN
        #: Messages this subscriber lost because its queue was full.
        self.dropped = 0

    def __repr__(self) -> str:
        return f"<Subscription {sorted(self._groups)!r} on {self._broadcast.alias!r}>"

    @property
    def groups(self) -> frozenset[str]:
        """The groups this subscription receives."""
        return frozenset(self._groups)

    @property
    def active(self) -> bool:
        """False once the subscription ended (block exited, overflow, or broadcast closed)."""
        return self._state == _OPEN

    @property
    def pending(self) -> int:
        """Messages received and not read yet."""
        return len(self._queue)

    async def add(self, group: str) -> None:
        """Also receive ``group`` (like Channels' ``group_add``); active on return."""
        await self._broadcast._add(self, group)

    def discard(self, group: str) -> None:
        """Stop receiving ``group`` (like Channels' ``group_discard``); already queued ones stay."""
        self._broadcast._discard(self, group)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        return (await self._next()).message

    def events(self) -> _Events:
        """Iterate over :class:`Event` (group, message) pairs instead of bare messages."""
        return _Events(self)

    # -- the broadcast's side -------------------------------------------------

    def _put(self, delivery: Delivery) -> bool:
        """Queue ``delivery``; False when the queue is full and the subscriber must be disconnected."""
        queue = self._queue
        if len(queue) >= self._queue_size:
            if not self._drop_oldest:
                return False
            queue.popleft()
            self.dropped += 1
            if self.dropped == 1:
                logger.warning(
                    "A subscriber of %s on broadcast %r is %d messages behind: its oldest "
                    "messages are being dropped (OVERFLOW 'drop'; QUEUE_SIZE %d).",
                    _names(self._groups), self._broadcast.alias, self._queue_size,
                    self._queue_size,
                )
        queue.append(delivery)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def _overflow(self) -> None:
        """The queue is full under OVERFLOW 'disconnect': leave every group, log it once."""
        if self._state != _OPEN:
            return
        self.dropped += 1
        logger.warning(
            "A subscriber of %s on broadcast %r fell %d messages behind and was "
            "disconnected (OVERFLOW 'disconnect'; raise QUEUE_SIZE or read faster).",
            _names(self._groups), self._broadcast.alias, self._queue_size,
        )
        self._end(_OVERFLOWED)

    def _end(self, state: int = _CLOSED) -> None:
        """End the subscription: it leaves its groups; its reader sees the end after the queue."""
        if self._state == _OPEN:
            self._state = state
        self._broadcast._forget(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _next(self, timeout: Optional[float] = None) -> Delivery:
        """The next delivery; with ``timeout``, ``None`` after that many seconds without one."""
        while not self._queue:
            if self._state != _OPEN:
                self._raise_end()
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _wake, waiter) if timeout is not None else None
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                self._waiter = None
            if timer is not None and not self._queue:
                if self._state != _OPEN:
                    self._raise_end()
                return None  # type: ignore[return-value]
        return self._queue.popleft()

    def _drain(self) -> list[Delivery]:
        """Every queued delivery, at once (for forwarding in batches)."""
        items = list(self._queue)
        self._queue.clear()
        return items

    def _raise_end(self) -> None:
        if self._state == _OVERFLOWED:
            raise SubscriptionOverflow(
                f"The subscriber fell {self._queue_size} messages behind on broadcast "
                f"{self._broadcast.alias!r} and was disconnected; raise QUEUE_SIZE in "
                f"AIODJANGO_BROADCAST[{self._broadcast.alias!r}]['OPTIONS'] or read faster."
            )
        raise StopAsyncIteration


class _Events:
    """``async for event in subscription.events()``."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> Event:
        delivery = await self._subscription._next()
        return Event(delivery.group, delivery.message)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _names(groups: set[str]) -> str:
    names = sorted(groups)
    if len(names) == 1:
        return f"group {names[0]!r}"
    return f"groups {', '.join(repr(n) for n in names)}" if names else "no group"
