"""HTTP/1.1 over a bare socket: send exactly these bytes, read what comes back."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int | None  # None: the server closed without answering
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw: bytes = b""
    closed: bool = False  # the server closed the connection after answering
    elapsed: float = 0.0
    interim: list[bytes] = field(default_factory=list)  # 1xx heads before the answer

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Hang(AssertionError):
    """The server neither answered nor closed within the time allowed."""


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return status, headers


def exchange(
    port: int,
    data: bytes | list[bytes],
    *,
    timeout: float = 5.0,
    half_close: bool = False,
    pause: float = 0.0,
) -> Reply:
    """Send ``data`` (a list is sent piece by piece, ``pause`` apart) and read
    one response: until its body is complete, the server closes, or
    ``timeout`` seconds pass (:class:`Hang`)."""
    started = time.monotonic()
    deadline = started + timeout
    pieces = data if isinstance(data, list) else [data]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for index, piece in enumerate(pieces):
                if index and pause:
                    time.sleep(pause)
                sock.sendall(piece)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early: read what it said
        buffer = b""
        interim: list[bytes] = []
        status = None
        headers: dict[str, str] = {}
        closed = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Hang(f"no complete answer within {timeout} s; got {buffer[:200]!r}")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
            buffer += chunk
            while status is None and b"\r\n\r\n" in buffer:
                head, _, rest = buffer.partition(b"\r\n\r\n")
                status, headers = _parse_head(head)
                if status == 100:  # interim: the final answer follows
                    interim.append(head)
                    buffer, status, headers = rest, None, {}
            if status is not None:
                head, _, rest = buffer.partition(b"\r\n\r\n")
                if "content-length" in headers and len(rest) >= int(headers["content-length"]):
                    break
                if headers.get("transfer-encoding") == "chunked" and rest.endswith(b"0\r\n\r\n"):
                    break
                if status in (101, 204, 304):
                    break
        if status is None and b"\r\n\r\n" in buffer:
            status, headers = _parse_head(buffer.partition(b"\r\n\r\n")[0])
        body = buffer.partition(b"\r\n\r\n")[2] if status is not None else b""
        if not closed and status is not None and headers.get("connection", "").lower() == "close":
            # Wait (bounded) for the close the server announced.
            sock.settimeout(max(0.0, min(1.0, deadline - time.monotonic())))
            try:
                closed = sock.recv(1) == b""
            except (socket.timeout, ConnectionResetError):
                pass
    return Reply(status, headers, body, buffer, closed, time.monotonic() - started, interim)
