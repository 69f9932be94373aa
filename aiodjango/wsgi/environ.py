"""The request half of the WSGI bridge: the WSGI environ, built and checked as gunicorn does.

Framework-free (no Django import).  The environ is built the way gunicorn
builds it, so a WSGI app sees the same keys under both servers; the tests
``tests/test_bridge_gunicorn.py`` and ``tests/test_bridge_environ.py`` compare
the two side by side, under both of aiohttp's HTTP parsers.  Requests that
gunicorn refuses are refused here too (:class:`InvalidRequest`), before the
body is read and before any thread is used.  The request body is read in
:mod:`.body`.
"""

from __future__ import annotations

import re
import sys
from typing import IO, Any, Callable, Iterator
from urllib.parse import unquote_to_bytes

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

#: The environ key holding the :class:`aiohttp.web.Request` being served.
AIOHTTP_REQUEST_KEY = "aiohttp.request"

#: Most header fields a request may have (gunicorn's ``limit_request_fields``
#: default); more get ``431 Request Header Fields Too Large``.
DEFAULT_MAX_REQUEST_FIELDS = 100

# How a header name maps to its environ key; ``None`` means "drop it".  A
# cache, since the same few names come with every request; bounded so that
# clients sending random names cannot grow it without end.
_HEADER_KEYS: dict[bytes, str | None] = {}
_HEADER_KEYS_MAX = 512

# Fields that cannot be combined into a list (RFC 9110 5.3): a repeat makes
# the request ambiguous, and gunicorn refuses it with 400.
_SINGLETONS = {"HTTP_HOST": "Host", "CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}

# A request target is printable ASCII (RFC 9112 3.2, RFC 3986 2), as
# gunicorn and llhttp (aiohttp's C parser) check; aiohttp's pure-Python
# parser lets other bytes through (decoded as UTF-8 with surrogateescape).
_BAD_TARGET = re.compile(r"[^\x21-\x7e]").search

_PROTOCOLS = {(1, 1): "HTTP/1.1", (1, 0): "HTTP/1.0"}


class InvalidRequest(Exception):
    """A request the bridge refuses before calling the application.

    ``status`` and ``reason`` make the response (``reason`` is shown to the
    client); ``detail`` is for the log.
    """

    def __init__(self, status: int, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason


class FileWrapper:
    """``wsgi.file_wrapper``: iterate a file-like object in blocks.

    The bridge recognises this type and sends a real file with the OS's
    ``sendfile`` instead of iterating it.  ``close()`` is the file-like's own
    ``close`` (Django's ``FileResponse`` relies on that to close the response).
    """

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close: Callable[[], Any] = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data  # type: ignore[no-any-return]
        raise StopIteration


def header_key(name: bytes) -> str | None:
    """The environ key for a request header name, or ``None`` to drop it.

    Names holding ``_`` are dropped (as gunicorn and Django's runserver do), so
    ``X_Forwarded_For`` cannot pose as ``X-Forwarded-For`` once both become
    ``HTTP_X_FORWARDED_FOR``.  Content-Type and Content-Length become
    ``CONTENT_TYPE`` and ``CONTENT_LENGTH``.
    """
    key = _HEADER_KEYS.get(name, False)
    if key is not False:
        return key  # type: ignore[return-value]
    text = name.decode("latin-1")
    if "_" in text:
        key = None
    else:
        key = text.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
    if len(_HEADER_KEYS) < _HEADER_KEYS_MAX:
        _HEADER_KEYS[name] = key
    return key


def base_environ(*, script_name: str = "", multiprocess: bool = False) -> dict[str, Any]:
    """The keys that are the same for every request (copied per request)."""
    return {
        "SCRIPT_NAME": script_name,
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input_terminated": True,
    }


def build_environ(
    request: web.BaseRequest,
    base: dict[str, Any],
    body: IO[bytes] | None = None,
    length: int | None = None,
    *,
    max_fields: int | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """The WSGI environ for ``request`` whose body is ``body`` (``length`` bytes).

    ``length`` is ``None`` when the request has no body: ``CONTENT_LENGTH`` is
    then left out, as gunicorn does.  Otherwise it is the number of bytes
    really read, also for chunked requests.  Without ``body``, ``wsgi.input``
    and ``CONTENT_LENGTH`` are left for :func:`set_body`.

    Raises :class:`InvalidRequest` (``431``) for more than ``max_fields``
    header fields.  With ``strict`` (the bridge), also for what gunicorn
    refuses: a repeated Host, Content-Type or Content-Length (``400``), a
    request target that is not printable ASCII (``400``), and a path outside
    ``SCRIPT_NAME`` (``500``, a server misconfiguration).  Without it (the
    stand-in request of lifted views), repeats are joined, a non-ASCII target
    is given as its bytes (latin-1) and a path outside ``SCRIPT_NAME`` is kept.
    """
    raw_headers = request.raw_headers
    if max_fields is not None and len(raw_headers) > max_fields:
        # Checked first: nothing below runs for a header flood.
        raise InvalidRequest(
            431, "Too many header fields",
            f"{len(raw_headers)} header fields, more than the {max_fields} allowed "
            f"(max_request_fields; AIODJANGO_MAX_REQUEST_FIELDS under Django)",
        )
    environ = base.copy()
    target = request.raw_path
    url = request.rel_url
    raw_path = url.raw_path
    query = url.raw_query_string
    if _BAD_TARGET(target):
        if strict:
            raise InvalidRequest(400, "Invalid request target", "request target is not printable ASCII")
        # aiohttp decoded the bytes as UTF-8 with surrogateescape: undo that,
        # and give them as latin-1 (PEP 3333).
        target, raw_path, query = (
            text.encode("utf-8", "surrogateescape").decode("latin-1") for text in (target, raw_path, query)
        )
    # PEP 3333: PATH_INFO is the percent-decoded bytes, as latin-1.
    if "%" in raw_path or not raw_path.isascii():
        path_info = unquote_to_bytes(raw_path.encode("latin-1")).decode("latin-1")
    else:
        path_info = raw_path
    script_name = environ["SCRIPT_NAME"]
    outside = False
    if script_name:
        if path_info == script_name or path_info.startswith(script_name + "/"):
            path_info = path_info[len(script_name):]
        else:
            outside = strict
    environ["REQUEST_METHOD"] = request.method
    environ["PATH_INFO"] = path_info
    environ["QUERY_STRING"] = query
    environ["RAW_URI"] = environ["REQUEST_URI"] = target
    environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.version) or "HTTP/%d.%d" % request.version
    # From the connection, as gunicorn does: aiohttp < 3.11 takes the scheme of
    # an absolute-form target ("GET https://x/ HTTP/1.1" over plain TCP).
    transport = request.transport
    secure = transport is not None and transport.get_extra_info("sslcontext") is not None
    environ["wsgi.url_scheme"] = "https" if secure else "http"
    environ["wsgi.errors"] = sys.stderr
    environ[AIOHTTP_REQUEST_KEY] = request

    # Repeated headers are joined with "," once at the end, as gunicorn does:
    # joining them one by one copies the growing value each time (quadratic,
    # the pattern of CVE-2025-14550).
    repeated: dict[str, list[str]] | None = None
    for name, value in raw_headers:
        key = _HEADER_KEYS.get(name, False)
        if key is False:
            key = header_key(name)
        if key is None:
            continue
        # Optional whitespace around the value is not part of it (RFC 9110);
        # aiohttp before 3.10 kept trailing whitespace.
        text = value.strip(b" \t").decode("latin-1")
        if key not in environ:
            environ[key] = text
            continue
        if strict and key in _SINGLETONS:
            raise InvalidRequest(400, f"Repeated {_SINGLETONS[key]} header")
        if repeated is None:
            repeated = {}
        values = repeated.get(key)
        if values is None:
            repeated[key] = [environ[key], text]
        else:
            values.append(text)
    if repeated is not None:
        for key, values in repeated.items():
            environ[key] = ",".join(values)
    if outside:
        # gunicorn answers 500 too: the server is mounted where this request
        # should never have been sent (after the header checks, as there).
        raise InvalidRequest(
            500, "Internal Server Error",
            f"request path {path_info!r} is outside SCRIPT_NAME {script_name!r} (script_name)",
        )

    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple):
        environ["SERVER_NAME"] = str(sockname[0])
        environ["SERVER_PORT"] = str(sockname[1])
    else:
        # A unix socket (or no transport): name the server from Host, as
        # gunicorn does.
        name, port = _split_host(environ.get("HTTP_HOST", ""))
        environ["SERVER_NAME"] = name
        environ["SERVER_PORT"] = port or ("443" if environ["wsgi.url_scheme"] == "https" else "80")
    remote = request.remote
    if remote is not None:
        environ["REMOTE_ADDR"] = remote
    peername = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peername, tuple) and len(peername) >= 2:
        environ["REMOTE_PORT"] = str(peername[1])
    if body is not None:
        set_body(environ, body, length)
    return environ


def set_body(environ: dict[str, Any], body: IO[bytes], length: int | None) -> None:
    """Set ``wsgi.input`` and ``CONTENT_LENGTH`` (left out when ``length`` is ``None``)."""
    environ["wsgi.input"] = body
    if length is None:
        environ.pop("CONTENT_LENGTH", None)
    else:
        environ["CONTENT_LENGTH"] = str(length)


def _split_host(host: str) -> tuple[str, str]:
    """``("example.com", "8000")`` from ``"example.com:8000"``; IPv6 literals kept whole."""
    name, colon, port = host.rpartition(":")
    if not colon or "]" in port or not port.isdigit():
        return host, ""
    return name, port
