"""The thread side of the WSGI bridge: a lean pool and the way results get back.

Jobs are ``(fn, future, exchange, inbox)`` tuples; a pool thread runs ``fn``
and puts the outcome in the event loop's :class:`Inbox`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from typing import Any, Callable

logger = logging.getLogger("aiodjango.bridge")


def run_job(fn: Callable[[], Any], fut: asyncio.Future[Any], exchange: Any, inbox: Inbox) -> None:
    """Run ``fn`` in a pool thread and hand its outcome back to the event loop."""
    try:
        result, exc = fn(), None
    except BaseException as e:  # noqa: B036 - handed to the loop, never lost
        result, exc = None, e
    inbox.put((fut, exchange, result, exc))


class Inbox:
    """Outcomes of pool jobs on their way back to one event loop.

    Waking the loop (``call_soon_threadsafe``) costs a system call and a GIL
    round trip; under load the loop is awake anyway, so jobs that end while a
    wake-up is pending ride along with it instead of sending their own.
    """

    __slots__ = ("loop", "items", "scheduled", "resolve", "lock")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolve: Callable[..., None]) -> None:
        self.loop = loop
        self.items: collections.deque[tuple[Any, ...]] = collections.deque()
        self.scheduled = False  # a drain() is on its way to the loop
        self.resolve = resolve
        # Orders the flag against the deque, also without a GIL (3.13t).
        self.lock = threading.Lock()

    def put(self, item: tuple[Any, ...]) -> None:  # in a pool thread
        self.items.append(item)
        with self.lock:
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.drain)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def drain(self) -> None:  # in the event loop
        # Reset first: an item appended after this schedules a new drain.
        with self.lock:
            self.scheduled = False
        items, resolve = self.items, self.resolve
        while items:
            try:
                resolve(*items.popleft())
            except Exception:  # never strand the items behind it
                logger.exception("Error resolving a WSGI pool job")


class ThreadPool:
    """A lean pool of daemon threads fed from one queue.

    Leaner than :class:`~concurrent.futures.ThreadPoolExecutor` per job (no
    ``concurrent.futures.Future``), and daemon threads cannot keep a stopping
    process alive once :meth:`WSGIBridge.shutdown`'s grace period is over.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def submit(self, item: tuple[Any, ...]) -> None:
        self._queue.put(item)
        if len(self._threads) < self.size:
            thread = threading.Thread(
                target=self._work, name=f"aiodjango-wsgi-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            run_job(*item)
            del item

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        self._threads = []
