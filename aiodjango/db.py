"""Database connections of lifted views: Django's request cycle, per request.

Django's async ORM (``aget``, ``acount``, ``asave``, ...) and
``sync_to_async(thread_sensitive=True)`` run the ORM in a thread, and Django's
connections belong to the thread that opened them.  For each request to a
lifted view, aiodjango enters a thread-sensitive context whose thread is
borrowed from a small pool on the request's first thread-sensitive call:

* before that first call, ``request_started`` is sent in that thread, and
  after the view, ``request_finished`` (so ``close_old_connections`` closes
  what ``CONN_MAX_AGE`` says to close, exactly as in Django's request cycle);
* the thread then goes back to the pool with its connections, so persistent
  connections (``CONN_MAX_AGE > 0`` or ``None``) are reused by later requests;
  at most ``AIODJANGO_DB_THREADS`` threads wait in the pool, the others close
  their connections and end.

A request that makes no thread-sensitive call pays for setting a context
variable and nothing else: no thread, no signal.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Callable, Optional

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.db import close_old_connections as _django_close_old_connections
from django.db import connections

from .conf import conf

__all__ = ["LiftedHandler", "RequestContext", "close_idle_threads", "close_old_connections"]

logger = logging.getLogger("aiodjango.db")

_CONTEXT_VAR = SyncToAsync.thread_sensitive_context
_EXECUTORS = SyncToAsync.context_to_thread_executor


class LiftedHandler:
    """The ``sender`` of ``request_started`` / ``request_finished`` for lifted views.

    The signals carry the aiohttp request as ``request``.
    """


def _started_then(request: Any, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """The request's first call: ``request_started`` first (its errors are the call's)."""
    signals.request_started.send(sender=LiftedHandler, request=request)
    return fn(*args, **kwargs)


def _request_finished(request: Any) -> None:
    signals.request_finished.send(sender=LiftedHandler, request=request)


def _close_all() -> None:
    connections.close_all()


class _Workers:
    """Single-thread executors, each keeping its thread's connections between requests."""

    def __init__(self) -> None:
        self.idle: list[ThreadPoolExecutor] = []
        self.lock = threading.Lock()

    def checkout(self) -> ThreadPoolExecutor:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return ThreadPoolExecutor(1, thread_name_prefix="aiodjango-db")

    def release(self, worker: ThreadPoolExecutor) -> None:
        with self.lock:
            keep = conf.AIODJANGO_DB_THREADS  # checked by aiodjango.E010
            if isinstance(keep, int) and len(self.idle) < keep:
                self.idle.append(worker)
                return
        worker.submit(_close_all)
        worker.shutdown(wait=False)

    def drain(self) -> list[ThreadPoolExecutor]:
        with self.lock:
            idle, self.idle = self.idle, []
        return idle


_workers = _Workers()


class RequestContext(ThreadSensitiveContext):
    """The thread-sensitive context of one request to a lifted view.

    ``sync_to_async`` calls made while it is current run in one thread,
    borrowed from the pool on the first call.  Entered and left with
    :meth:`enter` / :meth:`leave` (+ :meth:`finish` if a thread was used),
    which cost a context variable, not asgiref's ``async with``.

    How asgiref finds the executor: it looks the current context up in
    ``SyncToAsync.context_to_thread_executor``, a weak-key dict.  Adding and
    removing a key per request costs more than the rest of this together, so
    every ``RequestContext`` is *equal* to one key registered once, whose
    executor (:class:`_Dispatch`) hands each call to the current context.
    asgiref (3.10+) still sees each request's own ``_exited`` flag, and
    refuses calls from tasks that outlive their request.
    """

    def __init__(self, request: Any) -> None:  # no super(): see the class docstring
        self.request = request
        self.worker: Optional[ThreadPoolExecutor] = None
        self.auth: Any = None  # the request's aiodjango.django_request state, if used
        self._exited = False
        self._token: Any = None
        self.token = None  # asgiref's own ``async with`` bookkeeping: unused
        self._executor = None

    def __hash__(self) -> int:
        return _KEY_HASH

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestContext)

    def enter(self) -> "RequestContext":
        if _registered is None:
            _register()
        self._token = _CONTEXT_VAR.set(self)
        return self

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "Future[Any]":
        worker = self.worker
        if worker is None:
            if self._exited:
                raise RuntimeError(
                    "The request of this lifted view has finished: a task it started "
                    "can't run thread-sensitive code (sync_to_async, the async ORM) "
                    "any more. Await such tasks before the view returns."
                )
            worker = self.worker = _workers.checkout()
            return worker.submit(_started_then, self.request, fn, args, kwargs)
        return worker.submit(fn, *args, **kwargs)

    def leave(self) -> None:
        """Leave the context; then :meth:`finish` if :attr:`worker` is set."""
        token = self._token
        if token is not None:
            self._token = None
            try:
                _CONTEXT_VAR.reset(token)
            except ValueError:  # left from another context (a task switch): let it be
                pass
        self._exited = True

    async def finish(self) -> None:
        """End the request in its thread (``request_finished``), give the thread back."""
        worker = self.worker
        if worker is None:
            return
        try:
            # Shielded: even if the handler is cancelled, Django's end of
            # request runs before the thread serves another request.
            await asyncio.shield(asyncio.wrap_future(worker.submit(_request_finished, self.request)))
        except Exception:
            # The response is made; as a WSGI server would, log and go on.
            logger.exception("Error in a request_finished receiver (lifted view).")
        finally:
            self.worker = None
            _workers.release(worker)


_KEY_HASH = hash("aiodjango.db.RequestContext")


class _Dispatch(Executor):
    """The executor asgiref finds for every :class:`RequestContext`."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "Future[Any]":
        context = _CONTEXT_VAR.get(None)
        if not isinstance(context, RequestContext):  # pragma: no cover - asgiref found it there
            raise RuntimeError("No aiodjango request context is current.")
        return context.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """asgiref never shuts a context's executor down; the pool does."""


_registered: Optional[RequestContext] = None
_register_lock = threading.Lock()


def _register() -> None:
    global _registered
    with _register_lock:
        if _registered is None:
            key = RequestContext(None)
            key._exited = False
            _EXECUTORS[key] = _Dispatch()
            _registered = key  # kept alive: the dict holds it weakly


def current_context() -> Optional[RequestContext]:
    """The :class:`RequestContext` of the lifted view being served, if any."""
    context = _CONTEXT_VAR.get(None)
    return context if isinstance(context, RequestContext) else None


async def close_old_connections() -> None:
    """Close the current thread-sensitive thread's obsolete or broken connections.

    Django does this at the start and the end of each request.  A long-lived
    lifted view (a websocket) may call it between messages, as Django
    Channels' ``database_sync_to_async`` does around each call.
    """
    await sync_to_async(_django_close_old_connections, thread_sensitive=True)()


async def close_idle_threads(app: Any = None) -> None:
    """Close the connections of the pooled threads and end them (on app cleanup)."""
    workers = _workers.drain()
    if not workers:
        return
    futures = [asyncio.wrap_future(worker.submit(_close_all)) for worker in workers]
    try:
        await asyncio.gather(*futures, return_exceptions=True)
    finally:
        for worker in workers:
            worker.shutdown(wait=False)
