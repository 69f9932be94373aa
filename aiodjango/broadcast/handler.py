"""This process's broadcasts, one per ``AIODJANGO_BROADCAST`` alias, and their lifetime.

``broadcasts[alias]`` builds an alias's backend on first use (from any
thread) and keeps it for the process: unlike ``caches[alias]`` it is not
per thread, since its subscribers live on the server's event loop.
:func:`broadcast_context` is the ``cleanup_ctx`` that ``get_aio_application()``
installs: on start-up it binds every configured broadcast to the
application's loop (so that ``publish_sync()`` from the bridge's threads
finds it), on cleanup it closes them (subscriptions end, connections close).
:func:`end_subscriptions`, its ``on_shutdown``, ends the subscriptions first,
so that subscribed websockets and event streams end when the server stops
instead of at its graceful timeout.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, AsyncIterator

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .base import Broadcast
from .options import MEMORY_BACKEND, SETTING, configured, describe, entry_problems, problems

logger = logging.getLogger("aiodjango.broadcast")


class BroadcastHandler:
    """``broadcasts["default"]``: the process's backend of each alias, built lazily."""

    def __init__(self) -> None:
        self._instances: dict[str, Broadcast] = {}
        self._lock = threading.Lock()
        self._listening = False
        self._closing: set[Any] = set()

    def __getitem__(self, alias: str) -> Broadcast:
        broadcast = self._instances.get(alias)
        if broadcast is not None:
            return broadcast
        with self._lock:
            if not self._listening:
                setting_changed.connect(self._setting_changed, dispatch_uid=id(self))
                self._listening = True
            broadcast = self._instances.get(alias)
            if broadcast is None:
                broadcast = self._instances[alias] = self._create(alias)
        return broadcast

    def __iter__(self):
        return iter(self.all())

    def all(self) -> list[Broadcast]:
        """The backend of every configured alias."""
        value = configured()
        return [self[alias] for alias in value] if isinstance(value, dict) else [self["default"]]

    def _create(self, alias: str) -> Broadcast:
        value = configured()
        if not isinstance(value, dict) or not value:
            raise ImproperlyConfigured(describe(problems(value)[0]))
        if alias not in value:
            raise ImproperlyConfigured(
                f"There is no broadcast {alias!r} in {SETTING} (it has "
                f"{', '.join(map(repr, value))})."
            )
        wrong = entry_problems(alias, value[alias])
        if wrong:
            raise ImproperlyConfigured(describe(wrong[0]))
        entry = value[alias]
        cls = import_string(entry.get("BACKEND", MEMORY_BACKEND))
        return cls(alias, entry)

    def _setting_changed(self, setting: str = "", **kwargs: Any) -> None:
        if setting != SETTING:
            return
        with self._lock:
            instances, self._instances = self._instances, {}
        for broadcast in instances.values():
            self._retire(broadcast)

    def _retire(self, broadcast: Broadcast) -> None:
        """Close a broadcast replaced by a settings change, on its own loop."""
        loop = broadcast._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            broadcast._abandon()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(broadcast.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        else:
            asyncio.run_coroutine_threadsafe(broadcast.close(), loop)


#: This process's broadcasts: ``broadcasts["default"]``.
broadcasts = BroadcastHandler()


async def broadcast_context(app: Any) -> AsyncIterator[None]:
    """``cleanup_ctx`` of ``get_aio_application()``: bind the broadcasts to the app's loop."""
    bound = []
    for broadcast in broadcasts.all():
        try:
            broadcast._bind()
        except RuntimeError as exc:  # another loop of this process serves it
            logger.debug("%s", exc)
            continue
        broadcast._apps += 1
        bound.append(broadcast)
    try:
        yield
    finally:
        loop = asyncio.get_running_loop()
        for broadcast in bound:
            broadcast._apps -= 1
            if broadcast._apps <= 0 and broadcast._loop is loop:
                await broadcast.close()


async def end_subscriptions(app: Any) -> None:
    """``on_shutdown`` of ``get_aio_application()``: subscribed clients are told to go at once."""
    loop = asyncio.get_running_loop()
    for broadcast in list(broadcasts._instances.values()):
        if broadcast._loop is loop:
            broadcast.end_subscriptions()


async def close_all() -> None:
    """Close every broadcast bound to the running loop (scripts and tests that use them directly)."""
    loop = asyncio.get_running_loop()
    for broadcast in list(broadcasts._instances.values()):
        if broadcast._loop is loop:
            await broadcast.close()
