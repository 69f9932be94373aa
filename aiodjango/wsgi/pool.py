"""The thread side of the WSGI bridge: a lean pool and the way answers get back.

A pool job is an :class:`~aiodjango.wsgi.exchange.Exchange`: the thread that
takes it runs it to the end (:meth:`Exchange.run`), putting each answer in
the event loop's :class:`Inbox`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from typing import Any, Callable

logger = logging.getLogger("aiodjango.bridge")


class Inbox:
    """Answers of pool threads on their way back to one event loop.

    Waking the loop (``call_soon_threadsafe``) costs a system call and a GIL
    round trip; under load the loop is awake anyway, so answers that come
    while a wake-up is pending ride along with it instead of sending their own.
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
                logger.exception("Error resolving a WSGI pool answer")


class ThreadPool:
    """A lean pool of daemon threads fed from one queue of exchanges.

    Leaner than :class:`~concurrent.futures.ThreadPoolExecutor` per job (no
    ``concurrent.futures.Future``), and daemon threads cannot keep a stopping
    process alive once :meth:`WSGIBridge.shutdown`'s grace period is over.
    Threads are started as jobs come, up to ``size``.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job
        self._pending = 0  # jobs queued and not taken yet
        self._lock = threading.Lock()

    def submit(self, exchange: Any) -> None:
        with self._lock:
            self._pending += 1
            start = self._pending > self._idle and len(self._threads) < self.size
            if start:
                thread = threading.Thread(
                    target=self._work, name=f"aiodjango-wsgi-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                self._idle += 1
        self._queue.put(exchange)
        if start:
            thread.start()

    def _work(self) -> None:
        get, lock = self._queue.get, self._lock
        while True:
            exchange = get()
            if exchange is None:
                return
            with lock:
                self._pending -= 1
                self._idle -= 1
            exchange.run()
            del exchange
            with lock:
                self._idle += 1

    def shutdown(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
