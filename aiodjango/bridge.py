"""The WSGI bridge: serves a WSGI application from aiohttp through a thread pool.

Framework-free: it could serve any WSGI app; ``aiodjango.application`` reads
the ``AIODJANGO_*`` settings and passes them in as keyword arguments.

How a request goes through (see ``docs/bridge.rst``):

1. The body is read whole in the event loop (a slow client never holds a
   thread), spooled to a temporary file above ``spool_threshold``, refused
   with 413 above ``max_request_body_size`` before any thread is used.
2. One pool job calls the app and, when the iterable is already in memory
   (a list or tuple, as Django's ``HttpResponse`` gives), joins it and closes
   it: a plain response costs exactly one thread hop and goes out with
   Content-Length in one write.
3. Otherwise each further chunk is produced by its own pool job and written
   with ``await`` (back-pressure); ``wsgi.file_wrapper`` on a real file is
   sent with ``loop.sendfile``.  The iterable is closed exactly once, in the
   pool, on every path.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import queue
import re
import stat
import threading
from concurrent.futures import Executor
from typing import Any, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .environ import (
    AIOHTTP_REQUEST_KEY,
    FileWrapper,
    RequestBodyTooLarge,
    base_environ,
    build_environ,
    read_body,
)

__all__ = [
    "AIOHTTP_REQUEST_KEY",
    "DEFAULT_MAX_REQUEST_BODY_SIZE",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_SPOOL_THRESHOLD",
    "DEFAULT_THREADS",
    "FileWrapper",
    "WSGIBridge",
]

logger = logging.getLogger("aiodjango.bridge")

#: Pool size.  Python runs one thread at a time (the GIL), so threads beyond
#: the CPU's share only help while views wait on I/O (database, cache, HTTP
#: APIs).  8 overlaps such waits well for typical views while holding at most
#: 8 database connections per process; raise it for views that mostly wait.
DEFAULT_THREADS = 8
#: Largest request body accepted (100 MiB); larger ones get 413.
DEFAULT_MAX_REQUEST_BODY_SIZE = 100 * 1024 * 1024
#: Bodies larger than this (1 MiB) are spooled to a temporary file.
DEFAULT_SPOOL_THRESHOLD = 1024 * 1024
#: Seconds :meth:`WSGIBridge.shutdown` waits for running requests.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0

_HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
     "te", "trailers", "transfer-encoding", "upgrade")
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z").match
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]").search
_STATUS = re.compile(r"([2-9][0-9][0-9])(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?\Z").match
_LIST_ITERATORS = (type(iter([])), type(iter(())))
_EMPTY_BODY_STATUS = frozenset((204, 304))

# Validated response header names -> lower-cased name; statuses -> (code, reason).
_NAMES: dict[str, str] = {}
_STATUSES: dict[str, tuple[int, str | None]] = {}

_SINGLE, _STREAM, _FILE = 0, 1, 2


class InvalidResponse(Exception):
    """The application's status or headers cannot be sent (refused with 500)."""


def _parse_status(status: Any) -> tuple[int, str | None]:
    parsed = _STATUSES.get(status) if type(status) is str else None
    if parsed is not None:
        return parsed
    match = _STATUS(status) if type(status) is str else None
    if match is None:
        raise InvalidResponse(f"invalid status {status!r}")
    parsed = (int(match.group(1)), match.group(2) or None)
    if len(_STATUSES) < 256:
        _STATUSES[status] = parsed
    return parsed


def _check_headers(headers: Any) -> int | None:
    """Validate the app's headers; return the Content-Length it set, if any."""
    if type(headers) is not list:
        raise InvalidResponse(f"headers must be a list, got {type(headers).__name__}")
    length = None
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise InvalidResponse(f"header {item!r} is not a (name, value) tuple")
        name, value = item
        lower = _NAMES.get(name) if type(name) is str else None
        if lower is None:
            if type(name) is not str or not _TOKEN(name):
                raise InvalidResponse(f"invalid header name {name!r}")
            lower = name.lower()
            if lower in _HOP_BY_HOP:
                raise InvalidResponse(f"hop-by-hop header {name!r} is not allowed (PEP 3333)")
            if len(_NAMES) < 512:
                _NAMES[name] = lower
        if type(value) is not str or _BAD_VALUE(value):
            raise InvalidResponse(f"invalid value for header {name!r}")
        if lower == "content-length":
            if length is not None or not value.isdigit() or not value.isascii():
                raise InvalidResponse(f"invalid Content-Length {value!r}")
            length = int(value)
    return length


class _Exchange:
    """One request/response, as seen from the pool threads."""

    __slots__ = (
        "app", "environ", "head", "status", "headers", "headers_sent",
        "iterable", "iterator", "closed", "written", "length", "file", "spool", "running",
    )

    def __init__(self, app: Callable[..., Any], environ: dict[str, Any], spool: Any) -> None:
        self.app = app
        self.environ = environ
        self.head = environ["REQUEST_METHOD"] == "HEAD"
        self.status: Any = None
        self.headers: Any = None
        self.headers_sent = False
        self.iterable: Any = None
        self.iterator: Any = None
        self.closed = False
        self.written: list[bytes] | None = None
        self.length: int | None = None
        self.file: tuple[Any, int, int] | None = None
        self.spool = spool
        self.running = False  # a pool job for this exchange is in flight

    # -- called by the application --------------------------------------

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: buffered, sent before the next chunk."""
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write() takes bytes, got {type(data).__name__}")
        if data:
            if self.written is None:
                self.written = []
            self.written.append(bytes(data))

    # -- pool jobs --------------------------------------------------------

    def start(self) -> tuple[int, web.StreamResponse, bytes | None]:
        """Call the app; return the response and what kind of body follows."""
        try:
            iterable = self.iterable = self.app(self.environ, self.start_response)
            if type(iterable) is FileWrapper and not self.written:
                self.file = self._sendfile_params(iterable.filelike)
                if self.file is not None:
                    return _FILE, self._response(web.StreamResponse), None
            iterator = iter(iterable)
            if type(iterator) in _LIST_ITERATORS:
                # Already in memory: one chunk, one write, with Content-Length.
                body = b"".join(iterator)
                if self.written:
                    body = b"".join(self.written) + body
                response = self._response(web.Response, body)
                self.close()
                return _SINGLE, response, None
            self.iterator = iterator
            first = self._next_chunk()
            if first is None:
                response = self._response(web.Response, b"")
                self.close()
                return _SINGLE, response, None
            response = self._response(web.StreamResponse)
            if self.head:
                self.close()
                return _SINGLE, response, None
            return _STREAM, response, first
        except BaseException:
            self.close()
            raise

    def next_chunk(self) -> bytes | None:
        """The next non-empty chunk, or ``None`` (and closed) at the end."""
        try:
            chunk = self._next_chunk()
        except BaseException:
            self.close()
            raise
        if chunk is None:
            self.close()
        return chunk

    def close(self) -> None:
        """Close the iterable (once) and a spooled request body."""
        if self.closed:
            return
        self.closed = True
        iterable, self.iterable, self.iterator = self.iterable, None, None
        close = getattr(iterable, "close", None)
        try:
            if close is not None:
                close()
        except Exception:
            logger.exception("Error closing the WSGI response iterable of %s %s",
                             self.environ["REQUEST_METHOD"], self.environ["RAW_URI"])
        finally:
            if self.spool is not None:
                self.spool.close()

    # -- helpers (pool side) ------------------------------------------------

    def _next_chunk(self) -> bytes | None:
        for chunk in self.iterator:
            if chunk:
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(f"the WSGI iterable yielded {type(chunk).__name__}, not bytes")
                if self.status is None:
                    raise AssertionError("the WSGI iterable yielded data before start_response()")
                if self.written:
                    chunk = b"".join(self.written) + chunk
                    self.written = None
                self.headers_sent = True
                return chunk  # type: ignore[return-value]
        if self.written:
            chunk = b"".join(self.written)
            self.written = None
            self.headers_sent = True
            return chunk
        return None

    def _sendfile_params(self, filelike: Any) -> tuple[Any, int, int] | None:
        """``(file, offset, size)`` when ``filelike`` is a regular file opened in binary mode."""
        try:
            fileno = filelike.fileno()
            if "b" not in getattr(filelike, "mode", "b"):
                return None
            st = os.fstat(fileno)
            if not stat.S_ISREG(st.st_mode):
                return None
            offset = filelike.tell() if hasattr(filelike, "tell") else os.lseek(fileno, 0, os.SEEK_CUR)
        except (AttributeError, OSError, ValueError):
            return None
        return filelike, offset, max(st.st_size - offset, 0)

    def _response(self, cls: type, body: bytes | None = None) -> Any:
        if self.status is None:
            raise AssertionError("the WSGI application did not call start_response()")
        code, reason = _parse_status(self.status)
        length = _check_headers(self.headers)
        self.headers_sent = True
        if cls is web.Response:
            response = web.Response(body=body, status=code, reason=reason, headers=self.headers)
            if (length is not None and length != len(body) and not self.head
                    and code not in _EMPTY_BODY_STATUS):
                if length < len(body):
                    response.body = body[:length]  # never send more than declared
                else:
                    logger.warning("%s %s: the WSGI application declared Content-Length %d "
                                   "but sent %d bytes; closing the connection",
                                   self.environ["REQUEST_METHOD"], self.environ["RAW_URI"],
                                   length, len(body))
                    response.force_close()
            return response
        response = web.StreamResponse(status=code, reason=reason, headers=self.headers)
        if self.file is not None:
            filelike, offset, size = self.file
            if length is None:
                response.content_length = size
            elif length < size:
                self.file = (filelike, offset, length)
        self.length = length
        return response


def _run_job(fn: Callable[[], Any], fut: asyncio.Future[Any], exchange: _Exchange, inbox: _Inbox) -> None:
    """Run ``fn`` in a pool thread and hand its outcome back to the event loop."""
    try:
        result, exc = fn(), None
    except BaseException as e:  # noqa: B036 - handed to the loop, never lost
        result, exc = None, e
    inbox.put((fut, exchange, result, exc))


class _Inbox:
    """Outcomes of pool jobs on their way back to one event loop.

    Waking the loop (``call_soon_threadsafe``) costs a system call and a GIL
    round trip; under load the loop is awake anyway, so jobs that end while a
    wake-up is pending ride along with it instead of sending their own.
    """

    __slots__ = ("loop", "items", "scheduled", "resolve")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolve: Callable[..., None]) -> None:
        self.loop = loop
        self.items: collections.deque[tuple[Any, ...]] = collections.deque()
        self.scheduled = False
        self.resolve = resolve

    def put(self, item: tuple[Any, ...]) -> None:  # in a pool thread
        self.items.append(item)
        if not self.scheduled:
            self.scheduled = True
            try:
                self.loop.call_soon_threadsafe(self.drain)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def drain(self) -> None:  # in the event loop
        # Reset first: an item appended after this line schedules a new drain.
        self.scheduled = False
        items, resolve = self.items, self.resolve
        while items:
            resolve(*items.popleft())


class _ThreadPool:
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
            _run_job(*item)
            del item

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        self._threads = []


class WSGIBridge:
    """Serve ``application`` (any WSGI app) as an aiohttp handler.

    :param executor: run the app in this :class:`~concurrent.futures.Executor`
        (owned by the caller, never shut down here) instead of the bridge's pool.
    :param threads: size of the bridge's own pool (default :data:`DEFAULT_THREADS`).
    :param max_request_body_size: larger bodies get 413 (``None``: no limit).
    :param spool_threshold: larger bodies are spooled to a temporary file.
    :param shutdown_timeout: seconds :meth:`shutdown` waits for running requests.
    :param sendfile: send ``wsgi.file_wrapper`` files with ``loop.sendfile``.
    :param script_name: ``SCRIPT_NAME``, stripped from the front of ``PATH_INFO``.
    :param multiprocess: the value of ``wsgi.multiprocess``.
    """

    def __init__(
        self,
        application: Callable[..., Any],
        *,
        executor: Executor | None = None,
        threads: int | None = None,
        max_request_body_size: int | None = DEFAULT_MAX_REQUEST_BODY_SIZE,
        spool_threshold: int = DEFAULT_SPOOL_THRESHOLD,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        sendfile: bool = True,
        script_name: str = "",
        multiprocess: bool = False,
    ) -> None:
        if threads is not None and (type(threads) is not int or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if max_request_body_size is not None and max_request_body_size < 0:
            raise ValueError(f"max_request_body_size must be >= 0 or None, got {max_request_body_size!r}")
        if spool_threshold < 0:
            raise ValueError(f"spool_threshold must be >= 0, got {spool_threshold!r}")
        if script_name.endswith("/"):
            raise ValueError(f"script_name must not end with '/', got {script_name!r}")
        self.application = application
        self.executor = executor
        if threads is None:
            threads = getattr(executor, "_max_workers", None) or DEFAULT_THREADS
        self.threads: int = threads
        self.max_request_body_size = max_request_body_size
        self.spool_threshold = spool_threshold
        self.shutdown_timeout = shutdown_timeout
        self.sendfile = sendfile
        self._base = base_environ(script_name=script_name, multiprocess=multiprocess)
        self._pool: _ThreadPool | None = None
        self._busy = 0  # pool jobs submitted and not yet resolved
        self._idle: asyncio.Future[None] | None = None
        self._inbox: _Inbox | None = None

    # -- pool plumbing (event loop side) --------------------------------------

    def _call(self, fn: Callable[[], Any], exchange: _Exchange) -> asyncio.Future[Any]:
        """Run ``fn`` in the pool; the returned future resolves in the loop."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        inbox = self._inbox
        if inbox is None or inbox.loop is not loop:
            inbox = self._inbox = _Inbox(loop, self._resolve)
        if self.executor is not None:
            self.executor.submit(_run_job, fn, fut, exchange, inbox)
        else:
            if self._pool is None:
                self._pool = _ThreadPool(self.threads)
            self._pool.submit((fn, fut, exchange, inbox))
        self._busy += 1
        exchange.running = True
        return fut

    def _resolve(self, fut: asyncio.Future[Any], exchange: _Exchange, result: Any, exc: BaseException | None) -> None:
        self._busy -= 1
        exchange.running = False
        if not self._busy and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)
        if fut.cancelled():
            # The handler went away (cancelled) while this job ran: the
            # iterable may be open, and only now may it be closed.
            if not exchange.closed and exchange.iterable is not None:
                self._call(exchange.close, exchange)
        elif exc is None:
            fut.set_result(result)
        elif isinstance(exc, Exception):
            fut.set_exception(exc)
        else:  # SystemExit & co. from the app must not stop the event loop
            error = RuntimeError(f"the WSGI application raised {exc!r}")
            error.__cause__ = exc
            fut.set_exception(error)

    # -- the aiohttp handler ----------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Serve ``request`` with the WSGI application."""
        try:
            body, length = await read_body(
                request, max_size=self.max_request_body_size, spool_threshold=self.spool_threshold
            )
        except RequestBodyTooLarge as exc:
            logger.warning("%s %s: request body refused, larger than %d bytes",
                           request.method, request.raw_path, exc.limit)
            response = web.Response(status=413, text=f"413 Request body larger than {exc.limit} bytes\n")
            response.force_close()
            return response
        except (ConnectionError, HttpProcessingError, web.RequestPayloadError) as exc:
            # The client went away or sent a broken body (e.g. bad chunks).
            logger.info("%s %s: request body not received: %r", request.method, request.raw_path, exc)
            response = web.Response(status=400, text="400 Incomplete request body\n")
            response.force_close()
            return response
        environ = build_environ(request, self._base, body, length)
        exchange = _Exchange(self.application, environ, body if length and length > self.spool_threshold else None)
        try:
            kind, response, first = await self._call(exchange.start, exchange)
        except InvalidResponse as exc:
            logger.error("%s %s: response refused: %s", request.method, request.raw_path, exc)
            return _error_response()
        except Exception as exc:
            logger.error("%s %s: error in the WSGI application", request.method, request.raw_path, exc_info=exc)
            return _error_response()
        if kind == _SINGLE:
            return response  # type: ignore[no-any-return]
        try:
            if kind == _STREAM:
                await self._stream(request, exchange, response, first)
            else:
                await self._send_file(request, exchange, response)
        except asyncio.CancelledError:
            # A job still running is closed by _resolve once it ends.
            if not exchange.closed and not exchange.running:
                self._call(exchange.close, exchange)  # not awaited: we are cancelled
            raise
        if not exchange.closed:
            await self._call(exchange.close, exchange)
        return response  # type: ignore[no-any-return]

    async def _stream(self, request: web.BaseRequest, exchange: _Exchange,
                      response: web.StreamResponse, chunk: bytes | None) -> None:
        remaining = exchange.length
        try:
            await response.prepare(request)
            if chunk is None:  # the first chunk is still to be produced
                chunk = await self._call(exchange.next_chunk, exchange)
            while chunk is not None:
                if remaining is not None:
                    if len(chunk) >= remaining:
                        await response.write(chunk if len(chunk) == remaining else chunk[:remaining])
                        remaining = 0
                        break  # PEP 3333: stop iterating once Content-Length is sent
                    remaining -= len(chunk)
                await response.write(chunk)
                transport = request.transport
                if transport is None or transport.is_closing():
                    raise ConnectionResetError("client disconnected")
                chunk = await self._call(exchange.next_chunk, exchange)
            if remaining:
                logger.warning("%s %s: the WSGI application sent %d bytes less than its "
                               "Content-Length; closing the connection",
                               request.method, request.raw_path, remaining)
                _abort(request)
            else:
                await response.write_eof()
        except ConnectionError:
            logger.debug("%s %s: client disconnected", request.method, request.raw_path)
        except Exception as exc:
            logger.error("%s %s: error in the WSGI application after the response started; "
                         "closing the connection", request.method, request.raw_path, exc_info=exc)
            _abort(request)

    async def _send_file(self, request: web.BaseRequest, exchange: _Exchange,
                         response: web.StreamResponse) -> None:
        assert exchange.file is not None
        filelike, offset, count = exchange.file
        try:
            await response.prepare(request)
            if count and not exchange.head and response.status not in _EMPTY_BODY_STATUS:
                transport = request.transport
                if transport is None:
                    raise ConnectionResetError("client disconnected")
                sent = False
                if self.sendfile:
                    try:
                        await asyncio.get_running_loop().sendfile(transport, filelike, offset, count)
                        sent = True
                    except NotImplementedError:  # e.g. uvloop
                        pass
                    except RuntimeError:
                        if transport.is_closing():  # "Transport is closing"
                            raise ConnectionResetError("client disconnected") from None
                        raise
                if not sent:
                    # No sendfile (e.g. uvloop): stream the file in blocks.
                    exchange.iterator = iter(exchange.iterable)
                    if exchange.length is None:
                        exchange.length = count
                    await self._stream(request, exchange, response, None)
                    return
                if exchange.length is not None and exchange.length > count:
                    logger.warning("%s %s: the file is shorter than the Content-Length; "
                                   "closing the connection", request.method, request.raw_path)
                    _abort(request)
                    return
            await response.write_eof()
        except ConnectionError:
            logger.debug("%s %s: client disconnected", request.method, request.raw_path)

    # -- lifecycle ----------------------------------------------------------------

    async def shutdown(self) -> None:
        """Wait up to ``shutdown_timeout`` for running requests, then stop the pool."""
        if self._busy:
            self._idle = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._idle), self.shutdown_timeout)
            except asyncio.TimeoutError:
                logger.warning("%d WSGI requests still running %s s after shutdown started; "
                               "stopping the thread pool anyway", self._busy, self.shutdown_timeout)
            finally:
                self._idle = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _error_response() -> web.Response:
    return web.Response(status=500, text="500 Internal Server Error\n")


def _abort(request: web.BaseRequest) -> None:
    """Close the connection so that a broken response cannot look complete."""
    transport = request.transport
    if transport is not None:
        transport.close()
