"""Database connections of lifted views: Django's request cycle, in bounded threads.

Django's async ORM (``aget``, ``acount``, ``asave``, ...) and
``sync_to_async(thread_sensitive=True)`` run the ORM in a thread, and Django's
connections belong to the thread that opened them.  For each request to a
lifted view, aiodjango enters a thread-sensitive context whose calls run in
the threads of one pool: at most ``AIODJANGO_DB_THREADS`` per process, so at
most that many connections per database alias.

* Until its response starts, a request keeps one thread from its first
  thread-sensitive call to its end, as in Django's request cycle:
  ``request_started`` is sent in that thread before the first call and
  ``request_finished`` after the view (so ``close_old_connections`` closes
  what ``CONN_MAX_AGE`` says to close).
* Once its response has started (a websocket after its handshake, a stream:
  aiohttp's ``on_response_prepare``, see :meth:`RequestContext.response_started`), the
  thread is finished (``request_finished``) and given back as soon as no call
  is in flight; later calls each borrow a thread for the call only, with
  Django's ``close_old_connections()`` before and after, as Django Channels'
  ``database_sync_to_async`` does.  An idle websocket holds no thread, hence
  no connection.
* Threads go back to the pool with their connections: persistent connections
  (``CONN_MAX_AGE > 0`` or ``None``) are reused by later requests.
* When every thread is in use, a call waits for one (first come, first
  served) at most ``AIODJANGO_DB_TIMEOUT`` seconds, then raises
  :class:`DatabaseThreadsBusy`, a 503 logged through ``django.request``.  No
  thread beyond the bound is ever started.

A request that makes no thread-sensitive call pays for a context variable and
a weak reference: no thread, no signal.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import threading
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Callable, Optional

from aiohttp import web
from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.db import close_old_connections as _django_close_old_connections
from django.db import connections

from .conf import conf

__all__ = [
    "DatabaseThreadsBusy",
    "LiftedHandler",
    "RequestContext",
    "close_idle_threads",
    "close_old_connections",
    "current_context",
]

logger = logging.getLogger("aiodjango.db")
request_logger = logging.getLogger("django.request")

# Private asgiref API (checked by tests/test_upstream_internals.py): asgiref
# takes the executor of a thread-sensitive call from the context in
# ``SyncToAsync.thread_sensitive_context``, looked up in
# ``SyncToAsync.context_to_thread_executor``.  asgiref 3.13 added a public way
# to choose it, ``ThreadSensitiveContext(executor=...)`` entered with ``async
# with``; aiodjango can't rely on it yet: asgiref 3.13 needs Python 3.11
# (aiodjango supports 3.10, where the newest asgiref is 3.12), and entering it
# costs ~5.5 us per request (its ``Local``), ~7% of a lifted "hello", for
# every lifted request, database or not; this costs two context variables.
_CONTEXT_VAR = SyncToAsync.thread_sensitive_context
_EXECUTORS = SyncToAsync.context_to_thread_executor

#: The :class:`RequestContext` of the request being served.  asgiref sees one
#: thread-sensitive context for them all (:data:`_KEY`, registered once with
#: :class:`_Dispatch` as its executor), which hands each call to the current
#: request's context: a context variable per request, no per-request entry in
#: asgiref's executor map.
_REQUEST: "contextvars.ContextVar[Optional[RequestContext]]" = contextvars.ContextVar(
    "aiodjango_request_context", default=None
)


class LiftedHandler:
    """The ``sender`` of ``request_started`` / ``request_finished`` for lifted views.

    The signals carry the aiohttp request as ``request``.
    """


class DatabaseThreadsBusy(Exception):
    """No database thread became free within ``AIODJANGO_DB_TIMEOUT`` seconds.

    Raised by a thread-sensitive call (the async ORM, ``sync_to_async``) of a
    lifted view when all ``AIODJANGO_DB_THREADS`` threads stayed in use, and
    logged through ``django.request`` when it happens.  Before the response
    has started it is also an ``aiohttp.web.HTTPServiceUnavailable``: unless
    the view catches it, the client gets ``503 Service Unavailable``.  After
    (a websocket), it is an error of the view's, which may catch it.
    """


class _Unavailable(DatabaseThreadsBusy, web.HTTPServiceUnavailable):
    """:class:`DatabaseThreadsBusy` before the response started: aiohttp answers 503."""

    def __init__(self, message: str) -> None:
        web.HTTPServiceUnavailable.__init__(self, text="503 Service Unavailable\n")
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


# The two settings, checked: read once (a missing setting costs a raised
# AttributeError in Django's settings on every read), emptied when a test
# changes them (Django's setting_changed).
_checked: dict[str, Any] = {}


def max_threads() -> int:
    """``AIODJANGO_DB_THREADS``, checked (system check aiodjango.E010)."""
    value = _checked.get("AIODJANGO_DB_THREADS")
    if value is None:
        value = conf.AIODJANGO_DB_THREADS
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ImproperlyConfigured(
                f"AIODJANGO_DB_THREADS must be a positive integer (the most database threads, "
                f"hence connections per database, that lifted views use at once), got {value!r}."
            )
        _checked["AIODJANGO_DB_THREADS"] = value
    return value  # type: ignore[no-any-return]


def wait_timeout() -> float:
    """``AIODJANGO_DB_TIMEOUT``, checked (system check aiodjango.E011)."""
    value = _checked.get("AIODJANGO_DB_TIMEOUT")
    if value is None:
        value = conf.AIODJANGO_DB_TIMEOUT
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ImproperlyConfigured(
                f"AIODJANGO_DB_TIMEOUT must be a finite number of seconds (>= 0) that a lifted "
                f"view waits for a database thread, got {value!r}."
            )
        value = _checked["AIODJANGO_DB_TIMEOUT"] = float(value)
    return value  # type: ignore[no-any-return]


@receiver(setting_changed)
def _setting_changed(setting: str, **kwargs: Any) -> None:
    _checked.pop(setting, None)


# -- In the database threads


def _started_then(request: Any, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """The request's first call: ``request_started`` first (its errors are the call's)."""
    signals.request_started.send(sender=LiftedHandler, request=request)
    return fn(*args, **kwargs)


def _request_finished(request: Any) -> None:
    signals.request_finished.send(sender=LiftedHandler, request=request)


def _closing(fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """One call after the response started: obsolete connections closed around it."""
    _django_close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        _django_close_old_connections()


def _run_into(future: "Future[Any]", fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
    """Run a call that waited for a thread (``future`` is running), into its future."""
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # as ThreadPoolExecutor does
        future.set_exception(exc)
    else:
        future.set_result(result)


def _start_batch(request: Any, batch: list[Any]) -> None:
    """In the thread: the calls that waited for it, ``request_started`` before the first."""
    first = True
    for future, fn, args, kwargs in batch:
        if not future.set_running_or_notify_cancel():
            continue  # its caller stopped waiting
        if first:
            first = False
            _run_into(future, _started_then, (request, fn, args, kwargs), {})
        else:
            _run_into(future, fn, args, kwargs)


def _close_all() -> None:
    connections.close_all()


def _finish_then_release(request: Any, worker: "_Thread") -> None:
    """End the request's cycle in its thread, then give the thread back."""
    try:
        _request_finished(request)
    except Exception:
        # The response is made (or started); as a WSGI server would, log and go on.
        logger.exception("Error in a request_finished receiver (lifted view).")
    finally:
        _pool.release(worker)


# -- The pool


class _Thread(ThreadPoolExecutor):
    """One database thread: a single-thread executor that keeps its connections."""

    def __init__(self, generation: int) -> None:
        super().__init__(1, thread_name_prefix="aiodjango-db")
        self.generation = generation  # threads of an older generation close when released


def _end(worker: _Thread) -> None:
    """Close the thread's connections; the thread then ends."""
    worker.submit(_close_all)
    worker.shutdown(wait=False)


_WAITING, _HANDED, _EXPIRED, _GONE = range(4)


class _Waiter:
    """A request waiting for a thread, on its event loop."""

    __slots__ = ("loop", "context", "state", "timer", "worker")

    def __init__(self, loop: asyncio.AbstractEventLoop, context: "RequestContext") -> None:
        self.loop = loop
        self.context = context
        self.state = _WAITING
        self.timer: Optional[asyncio.TimerHandle] = None
        self.worker: Optional[_Thread] = None  # handed, not yet delivered

    def hand(self, worker: _Thread) -> bool:
        """Deliver ``worker`` on the waiter's loop (the pool's lock is held)."""
        try:
            self.loop.call_soon_threadsafe(self.context._got, worker)
        except RuntimeError:  # its loop is closed
            self.state = _GONE
            return False
        self.state = _HANDED
        self.worker = worker
        return True

    def expire(self) -> None:
        """On the loop, ``AIODJANGO_DB_TIMEOUT`` after the wait began."""
        with _pool.lock:
            if self.state != _WAITING:
                return  # a thread is on its way
            self.state = _EXPIRED
            _pool.waiters.remove(self)
        self.context._expired()


class _Pool:
    """At most ``AIODJANGO_DB_THREADS`` threads; the requests waiting for one, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Thread] = []  # last in, first out: warm connections first
        self.size = 0  # threads started and not ended: idle + lent
        # Lent threads, referenced here: a thread must outlive a request that
        # vanished holding it (see _HoldingContext.__del__).
        self.lent: set[_Thread] = set()
        self.waiters: deque[_Waiter] = deque()
        self.generation = 0

    def checkout(self, context: "RequestContext") -> Optional[_Thread]:
        """A free thread now, or ``None`` and ``context`` waits (its ``waiter`` set)."""
        limit = max_threads()
        with self.lock:
            if not self.waiters:
                if self.idle:
                    worker = self.idle.pop()
                    self.lent.add(worker)
                    return worker
                if self.size < limit:
                    self.size += 1
                    worker = _Thread(self.generation)
                    self.lent.add(worker)
                    return worker
            waiter = context.waiter = _Waiter(asyncio.get_running_loop(), context)
            self.waiters.append(waiter)
            self._serve(limit)  # only if the limit was raised meanwhile
        return None

    def release(self, worker: _Thread) -> None:
        """Take a thread back: to the first waiter, to the idle list, or ended."""
        try:
            limit = max_threads()
        except ImproperlyConfigured:
            limit = 0
        with self.lock:
            self.lent.discard(worker)
            ending = worker.generation != self.generation or self.size > limit
            if ending:
                self.size -= 1
            else:
                self.idle.append(worker)
            self._serve(limit)
        if ending:
            _end(worker)

    def _serve(self, limit: int) -> None:
        """Hand free threads to waiters, in order (the lock is held)."""
        waiters = self.waiters
        while waiters:
            if self.idle:
                worker = self.idle.pop()
            elif self.size < limit:
                self.size += 1
                worker = _Thread(self.generation)
            else:
                return
            if waiters.popleft().hand(worker):
                self.lent.add(worker)
            else:
                self.idle.append(worker)

    def close_idle(self) -> list[_Thread]:
        """Take the idle threads out; the threads lent now end when released."""
        with self.lock:
            self.generation += 1
            idle, self.idle = self.idle, []
            self.size -= len(idle)
        return idle


_pool = _Pool()
_lock = threading.Lock()  # a request's per-call state, shared with its thread


# -- One request


class RequestContext:
    """The thread-sensitive context of one request to a lifted view.

    ``sync_to_async`` calls made while it is current run in a database
    thread of the pool, as the module docstring says.  Entered and left with
    :meth:`enter` / :meth:`leave` (+ :meth:`finish` if :attr:`worker` is set);
    :meth:`response_started` when the response starts.
    """

    # Per-request state; class-level defaults keep a request that makes no
    # thread-sensitive call cheap.
    auth: Any = None  # the request's aiodjango.django_request state, if used
    worker: Optional[_Thread] = None  # the thread held
    per_call = False  # the response started (or the view returned): a thread per call
    left = False
    running = 0  # per call: tasks on ``worker`` not finished
    queue: Optional[list[Any]] = None  # calls waiting for a thread
    waiter: Optional[_Waiter] = None
    _token: Any = None
    _key_token: Any = None

    def __init__(self, request: Any) -> None:
        self.request = request

    def enter(self) -> "RequestContext":
        # Tasks the view starts copy both variables: once the request has
        # left, their calls find this context, which refuses them.
        self._key_token = _CONTEXT_VAR.set(_KEY or _register_key())
        self._token = _REQUEST.set(self)
        return self

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "Future[Any]":
        """Run ``fn`` in the request's thread; called by asgiref, on the event loop."""
        worker = self.worker
        if worker is not None and not self.per_call:
            return worker.submit(fn, *args, **kwargs)
        if self.__class__ is RequestContext:
            # From its first call on, the context may hold or be handed a
            # thread, which it must give back if it vanishes: a finaliser
            # (_HoldingContext.__del__), which a request that makes no call
            # doesn't pay for.
            self.__class__ = _HoldingContext
        if self.left:
            raise RuntimeError(
                "The request of this lifted view has finished: a task it started "
                "can't run thread-sensitive code (sync_to_async, the async ORM) "
                "any more. Await such tasks before the view returns."
            )
        if self.per_call:
            with _lock:
                worker = self.worker
                if worker is not None:  # calls in flight: this one follows them
                    self.running += 1
                    return self._call_soon(worker, fn, args, kwargs)
        if self.waiter is None:
            timeout = wait_timeout()  # checked before a thread is taken
            worker = _pool.checkout(self)
            if worker is not None:
                if self.per_call:
                    with _lock:
                        self.worker = worker
                        self.running = 1
                    return self._call_soon(worker, fn, args, kwargs)
                self.worker = worker
                return worker.submit(_started_then, self.request, fn, args, kwargs)
            waiter = self.waiter
            if waiter is not None and waiter.state == _WAITING:
                waiter.timer = asyncio.get_running_loop().call_later(timeout, waiter.expire)
        future: "Future[Any]" = Future()
        if self.queue is None:
            self.queue = []
        self.queue.append((future, fn, args, kwargs))
        return future

    def _got(self, worker: _Thread) -> None:
        """On the loop: the thread this request waited for."""
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter.worker = None
            if waiter.timer is not None:
                waiter.timer.cancel()
        batch, self.queue = self.queue or [], None
        if self.per_call or self.left:
            self.per_call = True
            with _lock:
                self.worker = worker
                self.running += 1
            worker.submit(self._call_batch, worker, batch)
        else:
            self.worker = worker
            worker.submit(_start_batch, self.request, batch)

    def _expired(self) -> None:
        """On the loop: no thread within ``AIODJANGO_DB_TIMEOUT``; the waiting calls fail."""
        from .django_request import log_escaped, log_request

        self.waiter = None
        batch, self.queue = self.queue or [], None
        request = self.request
        path = log_escaped(request.path) if request is not None else "?"
        message = (
            f"No database thread for the lifted view at {path} within "
            f"AIODJANGO_DB_TIMEOUT ({conf.AIODJANGO_DB_TIMEOUT!r} s): all "
            f"AIODJANGO_DB_THREADS ({conf.AIODJANGO_DB_THREADS!r}) threads stayed in use. "
            f"Raise AIODJANGO_DB_THREADS (within what the database accepts), or make "
            f"lifted views hold them for less time."
        )
        error = DatabaseThreadsBusy if self.per_call else _Unavailable
        for future, *_ in batch:
            if future.set_running_or_notify_cancel():
                future.set_exception(error(message))
        # Logged in a thread, as aiodjango.handlers logs errors: a handler
        # sending mail (AdminEmailHandler) must not stop the event loop.
        log = functools.partial(
            request_logger.error,
            "Service Unavailable: %s: %s",
            path,
            message,
            extra={"status_code": 503, "request": log_request(request) if request else None},
        )
        try:
            asyncio.get_running_loop().run_in_executor(None, log)
        except RuntimeError:  # the loop's executor is shut down: the loop is stopping
            log()

    def _call_soon(
        self, worker: _Thread, fn: Callable[..., Any], args: Any, kwargs: Any
    ) -> "Future[Any]":
        """One call after the response started, queued on ``worker`` (counted in ``running``).

        asgiref gets a future of its own: cancelling it must not cancel the
        work item, which gives the thread back after the call.
        """
        future: "Future[Any]" = Future()
        worker.submit(self._call_batch, worker, [(future, fn, args, kwargs)])
        return future

    def _call_batch(self, worker: _Thread, batch: list[Any]) -> None:
        """In the thread: calls after the response started; then maybe give the thread back."""
        try:
            for future, fn, args, kwargs in batch:
                if future.set_running_or_notify_cancel():
                    _run_into(future, _closing, (fn, args, kwargs), {})
        finally:
            self._done(worker)

    def _done(self, worker: _Thread) -> None:
        """In the thread, after a call: the last one in flight gives the thread back."""
        with _lock:
            self.running -= 1
            if self.running or self.worker is not worker:
                return
            self.worker = None
        _pool.release(worker)

    def response_started(self) -> None:
        """On the loop: the response started; from now on, a thread per call."""
        if self.per_call:
            return
        self.per_call = True
        with _lock:
            worker = self.worker
            if worker is None:
                return
            self.running += 1
        # After the calls in flight (one thread, in order): request_finished;
        # the thread goes back once the calls queued behind it are done too.
        worker.submit(self._end_cycle, worker)

    def _end_cycle(self, worker: _Thread) -> None:
        """In the thread: Django's end of request, once the response started."""
        try:
            _request_finished(self.request)
        except Exception:
            logger.exception("Error in a request_finished receiver (lifted view).")
        finally:
            self._done(worker)

    def leave(self) -> None:
        """Leave the context; then :meth:`finish` if :attr:`worker` is set."""
        token, key_token = self._token, self._key_token
        if token is not None:
            self._token = self._key_token = None
            try:
                _REQUEST.reset(token)
                _CONTEXT_VAR.reset(key_token)
            except ValueError:  # left from another context (a task switch): let it be
                pass
        self.left = True

    async def finish(self) -> None:
        """End the request in its thread (``request_finished``), give the thread back."""
        worker = self.worker
        if worker is None or self.per_call:
            return  # none held, or given back after its last call
        self.worker = None
        # Shielded: even if the handler is cancelled, Django's end of request
        # runs before the thread serves another request.
        done = worker.submit(_finish_then_release, self.request, worker)
        await asyncio.shield(asyncio.wrap_future(done))


class _HoldingContext(RequestContext):
    """A :class:`RequestContext` that made a thread-sensitive call (see :meth:`RequestContext.submit`)."""

    def __del__(self) -> None:
        # A request that vanished without finishing (its event loop closed
        # under it) gives back the thread it held or was handed: the bound
        # is process-wide, it must not shrink.
        try:
            worker = self.worker
            if worker is not None and not self.per_call:
                self.worker = None
                worker.submit(_finish_then_release, self.request, worker)
            waiter = self.waiter
            if waiter is not None and waiter.worker is not None:
                worker, waiter.worker = waiter.worker, None
                worker.submit(_pool.release, worker)
        except RuntimeError:  # the interpreter is shutting down
            pass


class _Dispatch(Executor):
    """The executor asgiref finds for every :class:`RequestContext`: the current one's."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "Future[Any]":
        context = _REQUEST.get()
        if context is None:  # pragma: no cover - asgiref found _KEY, set with a context
            raise RuntimeError("No aiodjango request context is current.")
        return context.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """asgiref never shuts a context's executor down; the pool does."""


_DISPATCH = _Dispatch()
#: The thread-sensitive context asgiref sees during every lifted request: a
#: plain asgiref context never entered with ``async with`` (so it never
#: exits), registered on first use (nothing at import time) and kept alive
#: here, as asgiref's map holds it weakly.
_KEY: Optional[ThreadSensitiveContext] = None


def _register_key() -> ThreadSensitiveContext:
    global _KEY
    with _lock:
        if _KEY is None:
            key = ThreadSensitiveContext()
            _EXECUTORS[key] = _DISPATCH
            _KEY = key
    return _KEY


#: ``current_context()``: the :class:`RequestContext` of the lifted view being
#: served, if any.  (The variable's own ``get``: called for every response.)
current_context: Callable[[], Optional[RequestContext]] = _REQUEST.get


async def close_old_connections() -> None:
    """Close the current thread-sensitive thread's obsolete or broken connections.

    Django does this at the start and the end of each request, and aiodjango
    around each call a lifted view makes after its response started.  Other
    long-running code may call it between units of work.
    """
    await sync_to_async(_django_close_old_connections, thread_sensitive=True)()


async def close_idle_threads(app: Any = None) -> None:
    """Close the idle threads' connections and end them (the application's cleanup).

    Threads in use at that moment are closed when their request gives them back.
    """
    workers = _pool.close_idle()
    if not workers:
        return
    futures = [asyncio.wrap_future(worker.submit(_close_all)) for worker in workers]
    try:
        await asyncio.gather(*futures, return_exceptions=True)
    finally:
        for worker in workers:
            worker.shutdown(wait=False)
