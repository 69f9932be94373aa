"""The request half of the WSGI bridge: the request body and the WSGI environ.

Framework-free (no Django import).  The environ is built the way gunicorn
builds it, so a WSGI app sees the same keys under both servers; the test
``tests/test_bridge_gunicorn.py`` compares the two side by side.
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
from typing import IO, Any, Callable, Iterator
from urllib.parse import unquote_to_bytes

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

#: The environ key holding the :class:`aiohttp.web.Request` being served.
AIOHTTP_REQUEST_KEY = "aiohttp.request"

# How a header name maps to its environ key; ``None`` means "drop it".  A
# cache, since the same few names come with every request; bounded so that
# clients sending random names cannot grow it without end.
_HEADER_KEYS: dict[bytes, str | None] = {}
_HEADER_KEYS_MAX = 512

_PROTOCOLS = {(1, 1): "HTTP/1.1", (1, 0): "HTTP/1.0"}


class RequestBodyTooLarge(Exception):
    """The request body is larger than ``max_request_body_size``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class RequestBodySpoolError(Exception):
    """The request body could not be written to its temporary file (disk full...)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(f"request body could not be spooled to a temporary file: {error}")
        self.error = error


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
    ``CONTENT_TYPE`` and ``CONTENT_LENGTH`` (the latter set by the bridge).
    """
    key = _HEADER_KEYS.get(name, False)
    if key is not False:
        return key  # type: ignore[return-value]
    text = name.decode("latin-1")
    if "_" in text:
        key = None
    else:
        key = text.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            pass
        elif key == "CONTENT_LENGTH":
            key = None
        else:
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
    body: IO[bytes],
    length: int | None,
) -> dict[str, Any]:
    """The WSGI environ for ``request`` whose body is ``body`` (``length`` bytes).

    ``length`` is ``None`` when the request has no body: ``CONTENT_LENGTH`` is
    then left out, as gunicorn does.  Otherwise it is the number of bytes
    really read, also for chunked requests.
    """
    environ = base.copy()
    url = request.rel_url
    raw_path = url.raw_path
    # PEP 3333: PATH_INFO is the percent-decoded bytes, as latin-1.
    if "%" in raw_path or not raw_path.isascii():
        path_info = unquote_to_bytes(raw_path).decode("latin-1")
    else:
        path_info = raw_path
    script_name = environ["SCRIPT_NAME"]
    if script_name and (path_info == script_name or path_info.startswith(script_name + "/")):
        path_info = path_info[len(script_name):]
    environ["REQUEST_METHOD"] = request.method
    environ["PATH_INFO"] = path_info
    environ["QUERY_STRING"] = url.raw_query_string
    environ["RAW_URI"] = environ["REQUEST_URI"] = request.raw_path
    environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.version) or "HTTP/%d.%d" % request.version
    environ["wsgi.url_scheme"] = request.scheme
    environ["wsgi.input"] = body
    environ["wsgi.errors"] = sys.stderr
    environ[AIOHTTP_REQUEST_KEY] = request
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)

    host = None
    for name, value in request.raw_headers:
        key = _HEADER_KEYS.get(name, False)
        if key is False:
            key = header_key(name)
        if key is None:
            continue
        # Optional whitespace around the value is not part of it (RFC 9110);
        # aiohttp before 3.10 kept trailing whitespace.
        text = value.strip(b" \t").decode("latin-1")
        if key in environ:
            # Repeated header: join with ",", as gunicorn does.
            environ[key] = environ[key] + "," + text
        else:
            environ[key] = text
        if key == "HTTP_HOST":
            host = text

    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple):
        environ["SERVER_NAME"] = str(sockname[0])
        environ["SERVER_PORT"] = str(sockname[1])
    else:
        # A unix socket (or no transport): name the server from Host, as
        # gunicorn does.
        name, port = _split_host(host or "")
        environ["SERVER_NAME"] = name
        environ["SERVER_PORT"] = port or ("443" if environ["wsgi.url_scheme"] == "https" else "80")
    remote = request.remote
    if remote is not None:
        environ["REMOTE_ADDR"] = remote
    peername = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peername, tuple) and len(peername) >= 2:
        environ["REMOTE_PORT"] = str(peername[1])
    return environ


def _split_host(host: str) -> tuple[str, str]:
    """``("example.com", "8000")`` from ``"example.com:8000"``; IPv6 literals kept whole."""
    name, colon, port = host.rpartition(":")
    if not colon or "]" in port or not port.isdigit():
        return host, ""
    return name, port


async def read_body(
    request: web.BaseRequest, *, max_size: int | None, spool_threshold: int
) -> tuple[IO[bytes], int | None]:
    """Read the whole request body; return ``(wsgi.input, length)``.

    A body over ``spool_threshold`` bytes goes to a temporary file (written in
    the event loop's default executor, never in the WSGI pool); ``length`` is
    ``None`` when the request has no body at all.  Raises
    :class:`RequestBodyTooLarge` as soon as the declared or the read length
    passes ``max_size``, before the rest is read, and
    :class:`RequestBodySpoolError` when the temporary file cannot be written.
    """
    if not request.body_exists:
        return io.BytesIO(), None
    declared = request.content_length
    if max_size is not None and declared is not None and declared > max_size:
        raise RequestBodyTooLarge(max_size)

    content = request.content
    chunks: list[bytes] = []
    pending = 0  # bytes in ``chunks``
    size = 0
    spool: IO[bytes] | None = None
    loop = asyncio.get_running_loop()
    try:
        while True:
            chunk = await content.readany()
            if not chunk:
                break
            size += len(chunk)
            if max_size is not None and size > max_size:
                raise RequestBodyTooLarge(max_size)
            chunks.append(chunk)
            pending += len(chunk)
            if pending > spool_threshold:
                try:
                    if spool is None:
                        spool = await loop.run_in_executor(None, tempfile.TemporaryFile)
                    await loop.run_in_executor(None, _write_blocks, spool, chunks, False)
                except OSError as exc:
                    raise RequestBodySpoolError(exc) from exc
                chunks = []
                pending = 0
        if spool is None:
            if len(chunks) == 1:
                return io.BytesIO(chunks[0]), size
            return io.BytesIO(b"".join(chunks)), size
        try:
            await loop.run_in_executor(None, _write_blocks, spool, chunks, True)
        except OSError as exc:
            raise RequestBodySpoolError(exc) from exc
        return spool, size
    except BaseException:
        if spool is not None:
            spool.close()
        raise


def _write_blocks(file: IO[bytes], blocks: list[bytes], rewind: bool) -> None:
    file.writelines(blocks)
    if rewind:
        file.flush()
        file.seek(0)
