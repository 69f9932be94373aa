"""The pool side of the WSGI bridge: one PEP 3333 exchange, on one pool thread.

An :class:`Exchange` is run by a single pool thread from the application call
to ``close()``, as gunicorn's gthread worker runs a request: the app, every
step of its response iterable, every ``write()`` and ``close()`` happen on
that thread, so Django's per-thread state (the active language, database
connections, ``request_finished``) stays the request's own.

The thread and the event loop take turns.  The loop asks (the pool job
itself, then :data:`NEXT`, :data:`ITERATE` or :data:`CLOSE` put on
:attr:`Exchange.commands`, each with a future); the thread answers each
request with exactly one result through the loop's inbox, then waits for the
next one.  So a slow client slows the producer (back-pressure) and at most one
chunk per exchange is in flight.  A final answer (a whole response, the end
of the body, an error, or the answer to ``CLOSE``) ends the thread's work on
the exchange; the thread goes back to the pool.

It validates the status and headers before anything is sent, and builds the
aiohttp response object that the event loop then sends.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import stat
from typing import Any, Callable

from aiohttp import web

from .environ import FileWrapper

logger = logging.getLogger("aiodjango.bridge")

#: What follows the response object of the first answer.
SINGLE, STREAM, FILE = 0, 1, 2
#: What the event loop asks of an exchange waiting for it.
NEXT, ITERATE, CLOSE = "next", "iterate", "close"

_HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
     "te", "trailers", "transfer-encoding", "upgrade")
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z").match
# RFC 9110 field-value: SP, HTAB, VCHAR and obs-text; as gunicorn checks it.
_GOOD_VALUE = re.compile(r"[ \t\x21-\x7e\x80-\xff]*\Z").match
_STATUS = re.compile(r"([1-5][0-9][0-9])(?: ([ \t\x21-\x7e\x80-\xff]*))?\Z").match
_LIST_ITERATORS = (type(iter([])), type(iter(())))
#: Statuses whose responses never carry a body (RFC 9110), whatever the app returns.
EMPTY_BODY_STATUS = frozenset((204, 304, *range(100, 200)))

# Validated response header names -> lower-cased name; statuses -> (code, reason).
_NAMES: dict[str, str] = {}
_STATUSES: dict[str, tuple[int, str | None]] = {}
_WARNED_HOP_BY_HOP: set[str] = set()


class InvalidResponse(Exception):
    """The application's status or headers cannot be sent (refused with 500)."""


class ClientDisconnected(ConnectionResetError):
    """Raised by ``write()`` when the client has gone away (as a socket error would)."""


class NoContentType(web.StreamResponse):
    """A streamed response for which the app set no ``Content-Type``.

    aiohttp adds ``application/octet-stream`` to such responses; the bridge's
    ``on_response_prepare`` hook (:meth:`WSGIBridge.setup`) takes it out again,
    since a WSGI server sends the app's headers and no others.
    """


class NoContentTypeResponse(web.Response):
    """A whole response for which the app set no ``Content-Type`` (see :class:`NoContentType`)."""


def _parse_status(status: Any) -> tuple[int, str | None]:
    parsed = _STATUSES.get(status) if type(status) is str else None
    if parsed is not None:
        return parsed
    match = _STATUS(status) if type(status) is str else None
    if match is None:
        raise InvalidResponse(f"invalid status {status!r} (PEP 3333 wants '200 OK', a code in 100-599)")
    reason = match.group(2)
    parsed = (int(match.group(1)), _wire_value("status", reason) if reason else None)
    if len(_STATUSES) < 256:
        _STATUSES[status] = parsed
    return parsed


def _check_headers(headers: Any) -> tuple[list[tuple[str, str]], int | None, bool]:
    """Validate the app's headers.

    Return them as aiohttp takes them, the Content-Length, and whether a
    Content-Type is among them.  Hop-by-hop headers are dropped (PEP 3333
    forbids them; gunicorn drops them too), with a warning once per name.
    """
    if type(headers) is not list:
        raise InvalidResponse(f"headers must be a list, got {type(headers).__name__}")
    length = None
    content_type = False
    rewrite = False
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise InvalidResponse(f"header {item!r} is not a (name, value) tuple")
        name, value = item
        lower = _NAMES.get(name) if type(name) is str else None
        if lower is None:
            if type(name) is not str or not _TOKEN(name):
                raise InvalidResponse(f"invalid header name {name!r}")
            lower = name.lower()
            if len(_NAMES) < 512:
                _NAMES[name] = lower
        if type(value) is not str or not _GOOD_VALUE(value):
            raise InvalidResponse(f"invalid value for header {name!r}")
        if lower in _HOP_BY_HOP:
            if lower not in _WARNED_HOP_BY_HOP:
                _WARNED_HOP_BY_HOP.add(lower)
                logger.warning("The WSGI application set the hop-by-hop header %r, which "
                               "PEP 3333 forbids; it is dropped (logged once)", name)
            rewrite = True
        elif lower == "content-length":
            value = value.strip(" \t")
            if length is not None or not value.isascii() or not value.isdigit():
                raise InvalidResponse(f"invalid Content-Length {value!r}")
            length = int(value)
        elif lower == "content-type":
            content_type = True
        if not value.isascii() or value[:1] in (" ", "\t") or value[-1:] in (" ", "\t"):
            rewrite = True
    if rewrite:
        headers = [
            (name, _wire_value(name, value.strip(" \t")))
            for name, value in headers
            if _NAMES.get(name, name.lower()) not in _HOP_BY_HOP
        ]
    return headers, length, content_type


def _wire_value(name: str, value: str) -> str:
    """A PEP 3333 header value (bytes as latin-1) as aiohttp writes it (as UTF-8).

    aiohttp encodes header values as UTF-8, so latin-1 strings whose bytes are
    valid UTF-8 (what apps get from ``value.encode().decode("latin-1")``)
    reach the wire unchanged.  Other obs-text bytes, such as Django's
    ``response["X-Title"] = "café"`` (one byte ``\\xe9`` under gunicorn), can't be
    sent as single bytes through aiohttp: their characters go out UTF-8 encoded
    (``caf\\xc3\\xa9``), a documented difference.
    """
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return value


class Exchange:
    """One request/response, served by one pool thread."""

    __slots__ = (
        "app", "environ", "head", "status", "headers", "headers_sent", "iterable",
        "iterator", "closed", "length", "file", "spool", "running", "finished",
        "commands", "fut", "inbox", "streaming", "no_body",
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
        self.length: int | None = None
        self.file: tuple[Any, int, int] | None = None
        self.spool = spool
        self.no_body = False  # HEAD, 1xx, 204, 304: no body bytes on the wire
        self.streaming = False  # the head went out through write()
        # Loop side: an answer is awaited / the thread is done with this exchange.
        self.running = False
        self.finished = False
        # Thread side: the future to answer next, and where answers go.
        self.fut: Any = None
        self.inbox: Any = None
        # Made by the thread before its first answer that is not final (a
        # whole response, the common case, needs none).
        self.commands: queue.SimpleQueue[tuple[str, Any]] | None = None

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
        """The legacy ``write()`` callable: the data goes out now, with back-pressure.

        The first call sends the head.  Returns once the event loop has
        written the data; raises :class:`ClientDisconnected` if the client is gone.
        """
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write() takes bytes, got {type(data).__name__}")
        if not data and self.streaming:
            return
        if not self.streaming:
            response = self._response(web.StreamResponse)
            self.streaming = True
            self._answer((STREAM, response, bytes(data)))
        else:
            self._answer(bytes(data))
        if self._wait() is CLOSE:
            raise ClientDisconnected("the client went away")

    # -- the pool job -------------------------------------------------------

    def run(self) -> None:
        """Serve the exchange, answering the loop's requests until a final answer."""
        try:
            self._serve()
        except BaseException as exc:  # noqa: B036 - handed to the loop, never lost
            self.close()
            if self.fut is not None:
                self._answer(None, exc, final=True)
            elif not isinstance(exc, Exception):
                raise
            else:  # pragma: no cover - every app call happens with a question pending
                logger.error("Error in the WSGI application with no request pending", exc_info=exc)
        else:
            self.close()
            if self.fut is not None:  # the answer to CLOSE
                self._answer(None, final=True)

    def _serve(self) -> None:
        iterable = self.iterable = self.app(self.environ, self.start_response)
        if self.streaming:  # the head went out through write()
            self.iterator = iter(iterable)
            self._pump()
            return
        if type(iterable) is FileWrapper:
            self.file = self._sendfile_params(iterable.filelike)
            if self.file is not None:
                response = self._response(web.StreamResponse)
                if self.no_body:
                    self.close()
                    self._answer((SINGLE, response, None), final=True)
                    return
                self._answer((FILE, response, None))
                if self._wait() is ITERATE:  # no sendfile here: stream the file in blocks
                    self.iterator = iter(iterable)
                    self._pump()
                return
        iterator = iter(iterable)
        if type(iterator) in _LIST_ITERATORS:
            # Already in memory: one chunk, one write, with Content-Length.
            body = b"".join(iterator)
            response = self._response(web.Response, body)
            self.close()
            self._answer((SINGLE, response, None), final=True)
            return
        self.iterator = iterator
        first = None
        if self.status is None:
            # A generator app calls start_response() when first iterated.
            first = self._next_chunk()
        self._check_start()
        if self.no_body:
            # HEAD, 1xx, 204, 304: nothing of the body may reach the wire.
            response = self._response(web.StreamResponse)
            self.close()
            self._answer((SINGLE, response, None), final=True)
            return
        if first is None:
            first = self._next_chunk()
        if first is None:
            response = self._response(web.Response, b"")
            self.close()
            self._answer((SINGLE, response, None), final=True)
            return
        response = self._response(web.StreamResponse)
        self._answer((STREAM, response, first))
        self._pump()

    def _pump(self) -> None:
        """Produce the body chunk by chunk, one per :data:`NEXT` from the loop."""
        while True:
            if self.fut is None and self._wait() is CLOSE:
                return
            chunk = self._next_chunk()
            if chunk is None:
                self.close()
                self._answer(None, final=True)
                return
            self._answer(chunk)

    def _answer(self, result: Any, exc: BaseException | None = None, *, final: bool = False) -> None:
        fut, self.fut = self.fut, None
        if final:
            self.finished = True
        elif self.commands is None:
            self.commands = queue.SimpleQueue()
        self.inbox.put((fut, self, result, exc))

    def _wait(self) -> str:
        command, self.fut = self.commands.get()  # type: ignore[union-attr]
        return command

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

    def _check_start(self) -> None:
        if self.status is None:
            raise AssertionError("the WSGI application did not call start_response()")
        code, _ = _parse_status(self.status)
        self.no_body = self.head or code in EMPTY_BODY_STATUS

    def _next_chunk(self) -> bytes | None:
        for chunk in self.iterator:
            if chunk:
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(f"the WSGI iterable yielded {type(chunk).__name__}, not bytes")
                if self.status is None:
                    raise AssertionError("the WSGI iterable yielded data before start_response()")
                self.headers_sent = True
                return chunk  # type: ignore[return-value]
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
        headers, length, has_type = _check_headers(self.headers)
        self.no_body = self.head or code in EMPTY_BODY_STATUS
        self.headers_sent = True
        if cls is web.Response:
            empty = code in EMPTY_BODY_STATUS
            if empty:
                body = b""
            if not has_type:
                cls = NoContentTypeResponse
            response = cls(body=body, status=code, reason=reason, headers=headers)
            if empty:
                if length is not None and code == 304:
                    # 304 may say what a 200 would have sent (RFC 9110).
                    response.headers["Content-Length"] = str(length)
            elif length is not None and length != len(body) and not self.head:  # type: ignore[arg-type]
                if length < len(body):  # type: ignore[arg-type]
                    response.body = body[:length]  # type: ignore[index]  # never more than declared
                else:
                    logger.warning("%s %s: the WSGI application declared Content-Length %d "
                                   "but sent %d bytes; closing the connection",
                                   self.environ["REQUEST_METHOD"], self.environ["RAW_URI"],
                                   length, len(body))  # type: ignore[arg-type]
                    response.force_close()
            if 100 <= code < 200:
                # A final 1xx would leave the client waiting for the real response.
                response.force_close()
            return response
        response = (cls if has_type else NoContentType)(status=code, reason=reason, headers=headers)
        if 100 <= code < 200:
            response.force_close()
        if self.file is not None:
            filelike, offset, size = self.file
            if length is None:
                response.content_length = size
            elif length < size:
                self.file = (filelike, offset, length)
        self.length = length
        return response
