"""HTTP/1.x responses read off a bare socket, kept byte for byte.

For tests that compare what two servers put on the wire: the head as sent,
the body as framed (Content-Length, chunked, or until close) and decoded,
several responses on one keep-alive connection, and what follows them.
Every read is bounded; a server that neither answers nor closes raises
:class:`Hang`.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

#: Headers a server adds or frames by itself; the app's headers are the rest.
SERVER_HEADERS = frozenset((b"date", b"server", b"connection", b"keep-alive", b"transfer-encoding"))


class Hang(AssertionError):
    """The server neither answered nor closed within the time allowed."""


class Malformed(AssertionError):
    """What the server sent is not an HTTP/1.x response."""


@dataclass
class Response:
    version: bytes  # b"HTTP/1.1"
    status: int
    reason: bytes
    head: bytes  # status line and header lines as sent, without the final CRLFCRLF
    headers: list[tuple[bytes, bytes]]  # (name, value) as sent, in order
    body: bytes = b""  # de-chunked
    wire_body: bytes = b""  # as framed on the wire
    framing: str = "none"  # "none", "length", "chunked" or "close"
    complete: bool = True  # False: the connection ended inside the body

    def header(self, name: str) -> bytes | None:
        """The value of the (last) header ``name``, or ``None``."""
        wanted = name.lower().encode()
        values = [value for key, value in self.headers if key.lower() == wanted]
        return values[-1] if values else None

    def header_lines(self) -> list[bytes]:
        return self.head.split(b"\r\n")[1:]

    def app_headers(self, ignore: frozenset[bytes] = SERVER_HEADERS) -> list[tuple[bytes, bytes]]:
        """The headers minus those the server adds (Date, Server, framing), sorted."""
        return sorted((name.lower(), value) for name, value in self.headers if name.lower() not in ignore)


@dataclass
class Read:
    responses: list[Response] = field(default_factory=list)
    rest: bytes = b""  # bytes after the last complete response
    closed: bool = False  # the server closed the connection


def _parse_head(head: bytes) -> Response:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise Malformed(f"not a status line: {lines[0][:200]!r}")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise Malformed(f"not a header line: {line[:200]!r}")
        headers.append((name, value.strip(b" \t")))
    return Response(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else b"", head, headers)


def _dechunk(data: bytes) -> tuple[bytes, int] | None:
    """``(body, bytes used)`` of a complete chunked body, ``None`` if incomplete."""
    body = b""
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return None
        size_text = data[pos:end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise Malformed(f"bad chunk size {data[pos:end][:100]!r}") from None
        pos = end + 2
        if size == 0:
            # Trailers, then an empty line.
            while True:
                end = data.find(b"\r\n", pos)
                if end < 0:
                    return None
                line, pos = data[pos:end], end + 2
                if not line:
                    return body, pos
        if len(data) < pos + size + 2:
            return None
        if data[pos + size:pos + size + 2] != b"\r\n":
            raise Malformed("chunk not followed by CRLF")
        body += data[pos:pos + size]
        pos += size + 2


def parse(data: bytes, methods: list[str], closed: bool) -> Read:
    """Split ``data`` into responses to requests made with ``methods``, in order.

    ``closed``: the connection has ended, so a body framed by the close is
    complete and a partial one is reported with ``complete=False``.
    """
    read = Read(closed=closed)
    pos = 0
    index = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        response = _parse_head(data[pos:end])
        body_start = end + 4
        method = methods[index] if index < len(methods) else "GET"
        length = response.header("content-length")
        te = response.header("transfer-encoding")
        # A 2xx to CONNECT opens a tunnel (RFC 9110 section 9.3.6); a server
        # that frames a body all the same (gunicorn) gets it read as framed.
        tunnel = method == "CONNECT" and 200 <= response.status < 300 and length is None and te is None
        if method == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200 or tunnel:
            response.framing = "none"
            pos = body_start
        elif te is not None and te.lower().endswith(b"chunked"):
            response.framing = "chunked"
            dechunked = _dechunk(data[body_start:])
            if dechunked is None:
                if not closed:
                    break
                response.complete = False
                response.wire_body = data[body_start:]
                pos = len(data)
            else:
                response.body, used = dechunked
                response.wire_body = data[body_start:body_start + used]
                pos = body_start + used
        elif length is not None:
            response.framing = "length"
            size = int(length)
            if len(data) - body_start < size:
                if not closed:
                    break
                response.complete = False
                response.body = response.wire_body = data[body_start:]
                pos = len(data)
            else:
                response.body = response.wire_body = data[body_start:body_start + size]
                pos = body_start + size
        else:
            response.framing = "close"
            if not closed:
                break
            response.body = response.wire_body = data[body_start:]
            pos = len(data)
        read.responses.append(response)
        index += 1
    read.rest = data[pos:]
    return read


class Connection:
    """One client connection to ``127.0.0.1:port``; every read is bounded."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.data = b""
        self.closed = False
        self.methods: list[str] = []
        self.used = 0  # bytes of ``data`` taken by responses already returned

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes, method: str | None = None) -> None:
        """Send ``data``; ``method``: the request's method, for framing its response."""
        if method is not None:
            self.methods.append(method)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early: read what it said

    def half_close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def read_some(self, deadline: float) -> bool:
        """Read what comes before ``deadline``; False when nothing came in time."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.closed:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return True
        self.data += chunk
        return True

    def responses(self, count: int, timeout: float | None = None) -> Read:
        """Read until ``count`` responses are complete or the server closes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            read = parse(self.data, self.methods, self.closed)
            if len(read.responses) >= count or self.closed:
                return read
            if not self.read_some(deadline):
                raise Hang(f"{len(read.responses)} of {count} responses within the time allowed; "
                           f"got {self.data[:300]!r}")

    def response(self, timeout: float | None = None) -> Response:
        """The next response (after those already returned by this method)."""
        index = len(self.methods) - 1 if self.methods else 0
        read = self.responses(index + 1, timeout)
        if len(read.responses) <= index:
            raise Malformed(f"the connection closed without response {index + 1}; got {self.data[:300]!r}")
        return read.responses[index]

    def until_close(self, timeout: float = 5.0) -> bytes:
        """Read until the server closes (:class:`Hang` after ``timeout``); return all data."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            if not self.read_some(deadline):
                raise Hang(f"not closed within {timeout} s; got {self.data[:300]!r}")
        return self.data

    def quiet_for(self, seconds: float) -> bool:
        """True if nothing more arrives for ``seconds`` (or the server closed)."""
        before = len(self.data)
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            self.read_some(deadline)
        return len(self.data) == before


def request(method: str, target: str, *headers: str, body: bytes = b"", version: str = "1.1",
            host: str = "127.0.0.1") -> bytes:
    """The bytes of a simple request (Host first, then ``headers``)."""
    lines = [f"{method} {target} HTTP/{version}", f"Host: {host}", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(port: int, data: bytes, method: str = "GET", timeout: float = 10.0) -> Response:
    """Send one request on a fresh connection and return its response."""
    with Connection(port, timeout) as conn:
        conn.send(data, method)
        return conn.response()
