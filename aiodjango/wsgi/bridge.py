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

The other modules of :mod:`aiodjango.wsgi`: ``environ`` (request body,
environ), ``exchange`` (the pool side: ``start_response``, iteration, header
checks), ``pool`` (the threads); this one is the aiohttp side (sending,
streaming, sendfile, shutdown).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any, Callable

from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from aiohttp.hdrs import CONTENT_TYPE

from .body import (
    DEFAULT_REQUEST_BODY_MEMORY,
    BodyMemory,
    RequestBodySpoolError,
    RequestBodyTooLarge,
    read_body,
)
from .environ import (
    AIOHTTP_REQUEST_KEY,
    DEFAULT_MAX_REQUEST_FIELDS,
    FileWrapper,
    InvalidRequest,
    base_environ,
    build_environ,
    set_body,
)
from .exchange import (
    CLOSE,
    EMPTY_BODY_STATUS,
    ITERATE,
    NEXT,
    SINGLE,
    STREAM,
    Exchange,
    InvalidResponse,
    NoContentType,
    NoContentTypeResponse,
)
from .pool import Inbox, ThreadPool

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
#: Seconds allowed to receive a whole request body (``None``: no limit); a
#: trickling client is answered 408 and cut.  Generous enough for 100 MiB
#: at well under 1 MB/s.
DEFAULT_REQUEST_BODY_TIMEOUT = 300.0

_WSGI_VERSIONS = frozenset({HttpVersion10, HttpVersion11})
_BAD_VERSION = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 29\r\nConnection: close\r\n\r\n400 Unsupported HTTP version\n"
)


class WSGIBridge:
    """Serve ``application`` (any WSGI app) as an aiohttp handler.

    :param executor: run the app in this :class:`~concurrent.futures.Executor`
        (owned by the caller, never shut down here) instead of the bridge's pool.
    :param threads: size of the bridge's own pool (default :data:`DEFAULT_THREADS`).
    :param max_request_body_size: larger bodies get 413 (``None``: no limit).
    :param spool_threshold: larger bodies are spooled to a temporary file.
    :param request_body_memory: request-body bytes held in memory at once, by
        all requests together; beyond it bodies are spooled (``None``: no limit).
    :param max_request_fields: requests with more header fields get 431.
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
        request_body_memory: int | None = DEFAULT_REQUEST_BODY_MEMORY,
        max_request_fields: int = DEFAULT_MAX_REQUEST_FIELDS,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        request_body_timeout: float | None = DEFAULT_REQUEST_BODY_TIMEOUT,
        sendfile: bool = True,
        script_name: str = "",
        multiprocess: bool = False,
    ) -> None:
        if threads is not None and (type(threads) is not int or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if max_request_body_size is not None and max_request_body_size < 0:
            raise ValueError(f"max_request_body_size must be >= 0 or None, got {max_request_body_size!r}")
        if request_body_timeout is not None and not request_body_timeout > 0:
            raise ValueError(f"request_body_timeout must be > 0 or None, got {request_body_timeout!r}")
        if spool_threshold < 0:
            raise ValueError(f"spool_threshold must be >= 0, got {spool_threshold!r}")
        if script_name.endswith("/"):
            raise ValueError(f"script_name must not end with '/', got {script_name!r}")
        if type(max_request_fields) is not int or max_request_fields < 1:
            raise ValueError(f"max_request_fields must be a positive integer, got {max_request_fields!r}")
        #: The budget of request-body bytes held in memory (``.used``, ``.limit``).
        self.body_memory = BodyMemory(request_body_memory)  # checks the value
        self.max_request_fields = max_request_fields
        self.application = application
        self.executor = executor
        if threads is None and executor is None:
            threads = DEFAULT_THREADS
        #: Size of the bridge's own pool (``None`` with an ``executor`` of the caller's).
        self.threads: int | None = threads
        self.max_request_body_size = max_request_body_size
        self.spool_threshold = spool_threshold
        self.shutdown_timeout = shutdown_timeout
        self.request_body_timeout = request_body_timeout
        self.sendfile = sendfile
        self._base = base_environ(script_name=script_name, multiprocess=multiprocess)
        self._pool: ThreadPool | None = None
        self._busy = 0  # answers awaited from pool threads
        self._idle: asyncio.Future[None] | None = None
        self._inbox: Inbox | None = None
        self._closed = False  # shutdown() has run: no new pool
        self._default_expect = web.ResourceRoute("*", self.handle, None)  # type: ignore[arg-type]

    # -- pool plumbing (event loop side) --------------------------------------

    def _start(self, exchange: Exchange) -> asyncio.Future[Any]:
        """Give ``exchange`` to a pool thread; the future resolves to its first answer."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        inbox = self._inbox
        if inbox is None or inbox.loop is not loop:
            inbox = self._inbox = Inbox(loop, self._resolve)
        exchange.inbox = inbox
        exchange.fut = fut
        if self.executor is not None:
            self.executor.submit(exchange.run)
        else:
            if self._pool is None:
                self._pool = ThreadPool(self.threads or DEFAULT_THREADS)
            self._pool.submit(exchange)
        self._busy += 1
        exchange.running = True
        return fut

    def _ask(self, exchange: Exchange, command: str) -> asyncio.Future[Any]:
        """Ask the thread serving ``exchange`` for its next answer (:data:`NEXT`...)."""
        fut = asyncio.get_running_loop().create_future()
        exchange.commands.put((command, fut))  # type: ignore[union-attr]
        self._busy += 1
        exchange.running = True
        return fut

    def _resolve(self, fut: asyncio.Future[Any], exchange: Exchange, result: Any, exc: BaseException | None) -> None:
        self._busy -= 1
        exchange.running = False
        if not self._busy and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)
        if fut.cancelled():
            # The handler went away (cancelled) while the thread worked: it
            # now waits for a word from us, and only now may it close.
            if not exchange.finished:
                self._ask(exchange, CLOSE)
        elif exc is None:
            fut.set_result(result)
        elif isinstance(exc, Exception):
            fut.set_exception(exc)
        else:  # SystemExit & co. from the app must not stop the event loop
            error = RuntimeError(f"the WSGI application raised {exc!r}")
            error.__cause__ = exc
            fut.set_exception(error)

    # -- the aiohttp handler ----------------------------------------------------

    def setup(self, app: web.Application) -> None:
        """Prepare ``app`` to serve this bridge's responses exactly.

        aiohttp gives every response with a body a ``Content-Type``
        (``application/octet-stream``) when it has none; a WSGI server sends
        the app's headers only.  This registers the ``on_response_prepare``
        hook that keeps it that way, and :meth:`shutdown` on ``on_cleanup``.
        Call it when you add :meth:`handle` to an application of your own
        (``get_aio_application()`` does the same work in its own receiver).
        """
        app.on_response_prepare.append(_keep_no_content_type)
        app.on_cleanup.append(self.cleanup)

    async def cleanup(self, app: web.Application) -> None:
        """An ``on_cleanup`` receiver: :meth:`shutdown`."""
        await self.shutdown()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Serve ``request`` with the WSGI application."""
        environ = self._environ_or_refusal(request)
        if isinstance(environ, web.StreamResponse):
            return environ
        try:
            reading = read_body(request, max_size=self.max_request_body_size,
                                spool_threshold=self.spool_threshold, memory=self.body_memory)
            if self.request_body_timeout is not None and request.body_exists:
                body, length = await asyncio.wait_for(reading, self.request_body_timeout)
            else:
                body, length = await reading
        except asyncio.TimeoutError:
            # A client trickling its body (slowloris) holds no thread, but
            # would hold the connection for ever.
            logger.info(
                "%s %s: request body not received within %s s",
                request.method, request.raw_path, self.request_body_timeout,
            )
            return _refuse(408, "Request body timeout")
        except RequestBodyTooLarge as exc:
            return _too_large(request, exc.limit)
        except RequestBodySpoolError as exc:
            logger.error("%s %s: %s", request.method, request.raw_path, exc)
            return _refuse(507, "Request body could not be stored")
        except (ConnectionError, HttpProcessingError, RequestPayloadError) as exc:
            # The client went away or sent a broken body (e.g. bad chunks).
            logger.info("%s %s: request body not received: %r", request.method, request.raw_path, exc)
            return _refuse(400, "Incomplete request body")
        set_body(environ, body, length)
        # Closed with the exchange, whatever it is: a spooled file (also a small
        # body spooled because the memory budget was spent), or an in-memory
        # body whose bytes go back to the budget.
        exchange = Exchange(self.application, environ, body)
        if self._closed:  # shutdown() ran while the body was read
            exchange.close()
            return _shutting_down()
        try:
            kind, response, first = await self._start(exchange)
        except InvalidResponse as exc:
            logger.error("%s %s: response refused: %s", request.method, request.raw_path, exc)
            return _error_response()
        except Exception as exc:
            logger.error("%s %s: error in the WSGI application", request.method, request.raw_path, exc_info=exc)
            return _error_response()
        if kind == SINGLE:
            return response  # type: ignore[no-any-return]
        try:
            if kind == STREAM:
                await self._stream(request, exchange, response, first)
            else:
                await self._send_file(request, exchange, response)
        except asyncio.CancelledError:
            # An answer still awaited is followed by CLOSE in _resolve.
            if not exchange.finished and not exchange.running:
                self._ask(exchange, CLOSE)  # not awaited: we are cancelled
            raise
        if not exchange.finished:
            # Stopped early (client gone, Content-Length reached, error): the
            # thread closes the iterable, on the thread that ran the app.
            try:
                await self._ask(exchange, CLOSE)
            except Exception as exc:
                logger.debug("%s %s: the WSGI application stopped with %r",
                             request.method, request.raw_path, exc)
        return response  # type: ignore[no-any-return]

    async def _stream(self, request: web.BaseRequest, exchange: Exchange,
                      response: web.StreamResponse, chunk: bytes | None) -> None:
        remaining = exchange.length
        try:
            await response.prepare(request)
            if exchange.no_body:  # HEAD (or 204...) of an app using write()
                while chunk is not None:
                    chunk = await self._ask(exchange, NEXT)
                await response.write_eof()
                return
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
                chunk = await self._ask(exchange, NEXT)
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

    async def _send_file(self, request: web.BaseRequest, exchange: Exchange,
                         response: web.StreamResponse) -> None:
        assert exchange.file is not None
        filelike, offset, count = exchange.file
        try:
            await response.prepare(request)
            if count and not exchange.head and response.status not in EMPTY_BODY_STATUS:
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
                    # No sendfile (e.g. uvloop): the thread streams the file in blocks.
                    if exchange.length is None:
                        exchange.length = count
                    chunk = await self._ask(exchange, ITERATE)
                    await self._stream(request, exchange, response, chunk)
                    return
                if exchange.length is not None and exchange.length > count:
                    logger.warning("%s %s: the file is shorter than the Content-Length; "
                                   "closing the connection", request.method, request.raw_path)
                    _abort(request)
                    return
            await response.write_eof()
        except ConnectionError:
            logger.debug("%s %s: client disconnected", request.method, request.raw_path)
        except Exception as exc:
            logger.error("%s %s: sending the file failed after the response started; "
                         "closing the connection", request.method, request.raw_path, exc_info=exc)
            _abort(request)

    def _environ_or_refusal(self, request: web.BaseRequest) -> dict[str, Any] | web.Response:
        """The request's environ, or the refusal of a request the bridge won't serve.

        Before the body is read: a header flood, an ambiguous request or an
        HTTP version WSGI doesn't speak costs no body and no thread (answered
        as gunicorn answers it).
        """
        if self._closed:
            return _shutting_down()
        if request.version not in _WSGI_VERSIONS:
            # HTTP/0.9 and HTTP/2.0 request lines get through llhttp; WSGI apps
            # expect HTTP/1.x, and gunicorn refuses anything else too.  aiohttp
            # would answer in the request's version ("HTTP/2.0 400"), so the
            # refusal is written here, as HTTP/1.1, and the connection closed;
            # aiohttp then finds it closed and only logs the access.
            transport = request.transport
            if transport is not None:
                transport.write(_BAD_VERSION)
                transport.close()
            return _refuse(400, "Unsupported HTTP version")
        try:
            return build_environ(request, self._base, max_fields=self.max_request_fields, strict=True)
        except InvalidRequest as exc:
            logger.warning("%s %.200r from %s: refused with %d: %s",
                           request.method, request.raw_path, request.remote, exc.status, exc.detail)
            return _refuse(exc.status, exc.reason)

    async def expect_handler(self, request: web.Request) -> web.StreamResponse | None:
        """An aiohttp ``expect_handler``: refuse before ``100 Continue`` what :meth:`handle` refuses.

        Give it to the route of :meth:`handle` (``add_route(...,
        expect_handler=bridge.expect_handler)``) so that a client asking
        ``Expect: 100-continue`` is told 413 (an oversized body), 431 or 400
        (a header flood, an ambiguous request) before it sends the body.
        """
        refusal = self._environ_or_refusal(request)
        if isinstance(refusal, web.StreamResponse):
            return refusal
        limit = self.max_request_body_size
        length = request.content_length
        if limit is not None and length is not None and length > limit:
            return _too_large(request, limit)
        # aiohttp's own answer (100 Continue, or 417 for another expectation)
        # is reached through a route's public handle_expect_header().
        return await self._default_expect.handle_expect_header(request)

    # -- lifecycle ----------------------------------------------------------------

    async def shutdown(self) -> None:
        """Wait up to ``shutdown_timeout`` for running requests, then stop the pool.

        The bridge is then closed for good: later requests get 503.
        """
        self._closed = True
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


#: The bridge's response classes for apps that set no Content-Type (aiohttp invents one).
NO_CONTENT_TYPE = (NoContentType, NoContentTypeResponse)


def strip_invented_content_type(response: web.StreamResponse) -> None:
    """Take out the Content-Type aiohttp gave a bridge response that had none.

    For ``on_response_prepare`` (:meth:`WSGIBridge.setup` registers it).
    """
    # type(), not isinstance(): responses are ABCs, whose isinstance() is slow.
    if type(response) in NO_CONTENT_TYPE:
        response.headers.popall(CONTENT_TYPE, None)


async def _keep_no_content_type(request: web.BaseRequest, response: web.StreamResponse) -> None:
    strip_invented_content_type(response)


def _too_large(request: web.BaseRequest, limit: int) -> web.Response:
    logger.warning("%s %s: request body refused, larger than %d bytes",
                   request.method, request.raw_path, limit)
    return _refuse(413, f"Request body larger than {limit} bytes")


def _shutting_down() -> web.Response:
    # After shutdown() no thread may start (the pool is gone for good): refuse,
    # and let the client retry elsewhere.
    return _refuse(503, "Server shutting down")


def _refuse(status: int, reason: str) -> web.Response:
    """A refusal before the app is called: ``"<status> <reason>"``, connection closed."""
    response = web.Response(status=status, text=f"{status} {reason}\n")
    response.force_close()
    return response


def _error_response() -> web.Response:
    return web.Response(status=500, text="500 Internal Server Error\n")


def _abort(request: web.BaseRequest) -> None:
    """Close the connection so that a broken response cannot look complete."""
    transport = request.transport
    if transport is not None:
        transport.close()
