"""The in-process backend: messages reach the subscribers of this process only.

The default: nothing to install, right for one server process (``runserver``,
gunicorn with ``--workers 1``) and for tests. With several worker processes
each one only reaches its own subscribers: use the Redis backend.
"""

from __future__ import annotations

import asyncio
import json

from ..base import Broadcast
from ..exceptions import BroadcastError
from ..options import REDIS_BACKEND, where


class MemoryBroadcast(Broadcast):
    """Fan-out inside this process: ``await publish()`` has queued the message for every
    local subscriber when it returns."""

    async def _publish(self, group: str, text: str) -> None:
        if group in self._groups:
            self._deliver(group, text, json.loads(text))
            # Let the subscribers run: a burst from one coroutine must not
            # overflow every queue before any reader had a turn.
            await asyncio.sleep(0)

    def _publish_threadsafe(self, loop: asyncio.AbstractEventLoop, group: str, text: str) -> None:
        # Nothing can fail on the loop's side: hand it over without waiting.
        try:
            loop.call_soon_threadsafe(self._deliver_on, loop, group, text)
        except RuntimeError as exc:  # the loop closed meanwhile
            raise BroadcastError(
                f"publish_sync() to group {group!r}: the event loop serving broadcast "
                f"{self.alias!r} has stopped."
            ) from exc

    def _deliver_on(self, loop: asyncio.AbstractEventLoop, group: str, text: str) -> None:
        if self._loop is loop and group in self._groups:
            self._deliver(group, text, json.loads(text))

    def _publish_without_loop(self, group: str, text: str) -> None:
        raise BroadcastError(
            f"publish_sync() to group {group!r}: broadcast {self.alias!r} uses the in-memory "
            f"backend, which reaches subscribers of this process only, and no event loop of "
            f"this process serves it (a management command, a plain WSGI server, a test "
            f"without the aiohttp application?). Set {where(self.alias, 'BACKEND')} to "
            f"{REDIS_BACKEND!r} to publish across processes."
        )
