"""The pool side of the WSGI bridge: one PEP 3333 exchange, run in pool threads.

``Exchange`` calls the application, gives it ``start_response`` and
``write``, produces the body chunk by chunk and closes the iterable exactly
once.  It validates the status and headers before anything is sent, and builds
the aiohttp response object that the event loop then sends.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from typing import Any, Callable

from aiohttp import web

from .environ import FileWrapper

logger = logging.getLogger("aiodjango.bridge")

#: What follows the response object :meth:`Exchange.start` returns.
SINGLE, STREAM, FILE = 0, 1, 2

_HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
     "te", "trailers", "transfer-encoding", "upgrade")
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z").match
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]").search
_STATUS = re.compile(r"([2-9][0-9][0-9])(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?\Z").match
_LIST_ITERATORS = (type(iter([])), type(iter(())))
EMPTY_BODY_STATUS = frozenset((204, 304))

# Validated response header names -> lower-cased name; statuses -> (code, reason).
_NAMES: dict[str, str] = {}
_STATUSES: dict[str, tuple[int, str | None]] = {}


class InvalidResponse(Exception):
    """The application's status or headers cannot be sent (refused with 500)."""


def _parse_status(status: Any) -> tuple[int, str | None]:
    parsed = _STATUSES.get(status) if type(status) is str else None
    if parsed is not None:
        return parsed
    match = _STATUS(status) if type(status) is str else None
    if match is None:
        raise InvalidResponse(f"invalid status {status!r}")
    reason = match.group(2)
    parsed = (int(match.group(1)), _wire_value("status", reason) if reason else None)
    if len(_STATUSES) < 256:
        _STATUSES[status] = parsed
    return parsed


def _check_headers(headers: Any) -> tuple[list[tuple[str, str]], int | None]:
    """Validate the app's headers; return them as aiohttp takes them and the Content-Length."""
    if type(headers) is not list:
        raise InvalidResponse(f"headers must be a list, got {type(headers).__name__}")
    length = None
    non_ascii = False
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
            if length is not None or not value.isascii() or not value.isdigit():
                raise InvalidResponse(f"invalid Content-Length {value!r}")
            length = int(value)
        elif not value.isascii():
            non_ascii = True
    if non_ascii:
        return [(name, _wire_value(name, value)) for name, value in headers], length
    return headers, length


def _wire_value(name: str, value: str) -> str:
    """A PEP 3333 header value (bytes as latin-1) as aiohttp writes it (as UTF-8).

    aiohttp encodes header values as UTF-8, so only latin-1 strings whose bytes
    are valid UTF-8 (what apps get from ``value.encode().decode("latin-1")``)
    can reach the wire unchanged; other obs-text bytes are refused.
    """
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeEncodeError:
        raise InvalidResponse(f"header {name!r} is not latin-1 (PEP 3333 wants bytes as latin-1)") from None
    except UnicodeDecodeError:
        raise InvalidResponse(f"header {name!r} holds bytes that are not UTF-8, which aiohttp "
                              f"cannot send as they are") from None

class Exchange:
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
                    return FILE, self._response(web.StreamResponse), None
            iterator = iter(iterable)
            if type(iterator) in _LIST_ITERATORS:
                # Already in memory: one chunk, one write, with Content-Length.
                body = b"".join(iterator)
                if self.written:
                    body = b"".join(self.written) + body
                response = self._response(web.Response, body)
                self.close()
                return SINGLE, response, None
            self.iterator = iterator
            first = self._next_chunk()
            if first is None:
                response = self._response(web.Response, b"")
                self.close()
                return SINGLE, response, None
            response = self._response(web.StreamResponse)
            if self.head:
                self.close()
                return SINGLE, response, None
            return STREAM, response, first
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
        headers, length = _check_headers(self.headers)
        self.headers_sent = True
        if cls is web.Response:
            response = web.Response(body=body, status=code, reason=reason, headers=headers)
            if (length is not None and length != len(body) and not self.head
                    and code not in EMPTY_BODY_STATUS):
                if length < len(body):
                    response.body = body[:length]  # never send more than declared
                else:
                    logger.warning("%s %s: the WSGI application declared Content-Length %d "
                                   "but sent %d bytes; closing the connection",
                                   self.environ["REQUEST_METHOD"], self.environ["RAW_URI"],
                                   length, len(body))
                    response.force_close()
            return response
        response = web.StreamResponse(status=code, reason=reason, headers=headers)
        if self.file is not None:
            filelike, offset, size = self.file
            if length is None:
                response.content_length = size
            elif length < size:
                self.file = (filelike, offset, length)
        self.length = length
        return response
