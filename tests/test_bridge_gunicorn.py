"""Side by side with gunicorn: the same requests give the same PEP 3333 environ.

``tests.wsgi_apps.echo_app`` runs under gunicorn's sync worker (a real
subprocess) and under the bridge; every request below is sent as raw bytes to
both, and the environ keys the app reports are compared.

Intended differences (asserted, not hidden):

- ``wsgi.multithread`` is True under the bridge (a thread pool), False under
  gunicorn's sync worker.
- ``REQUEST_URI``: the bridge sets it (same value as ``RAW_URI``); gunicorn
  sets only ``RAW_URI``.
- ``CONTENT_LENGTH`` of a chunked request: the bridge reads the whole body
  before calling the app and gives its real length; gunicorn leaves the key out
  and streams ``wsgi.input``.
- ``SERVER_PORT`` and ``REMOTE_PORT`` differ because they are different
  sockets; each is checked against its own server/client.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from aiodjango.wsgi import WSGIBridge

from .wsgi_apps import echo_app

ROOT = Path(__file__).resolve().parent.parent
WAIT = 15.0

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn_port():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--no-control-socket", "--worker-class", "sync",
         "--workers", "1", "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT),
         "--log-level", "warning", "tests.wsgi_apps:echo_app"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "FORWARDED_ALLOW_IPS": ""},
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(WAIT)
        proc.stderr.close()  # type: ignore[union-attr]


async def exchange(port: int, request: bytes) -> tuple[dict, int]:
    """Send ``request``; return the echoed environ and the client's own port."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        client_port = writer.get_extra_info("sockname")[1]
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")), data
    return json.loads(body), client_port


def req(target: bytes, *headers: bytes, method: bytes = b"GET", body: bytes = b"", version: bytes = b"1.1") -> bytes:
    lines = [method + b" " + target + b" HTTP/" + version, b"Host: example.test:8000", *headers,
             b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


REQUESTS = {
    "simple": req(b"/"),
    "non-ascii-path": req(b"/caf%C3%A9/na%C3%AFve?q=caf%C3%A9"),
    "latin-1-path": req(b"/%E9t%E9"),
    "encoded-slash-and-dots": req(b"/a%2Fb/../c//d;p=1/%25?x"),
    "double-slash": req(b"//double//"),
    "spaces-and-plus": req(b"/sp%20ace+plus?a=%2F+b&c=&d"),
    "empty-query": req(b"/path?"),
    "absolute-form": req(b"http://other.test/abs/p?q=1"),
    "repeated-headers": req(b"/h", b"X-A: 1", b"X-A: 2", b"X-A: three", b"Accept: a", b"Accept: b"),
    "underscore-headers": req(b"/h", b"X_Forwarded_For: evil", b"X-Forwarded-For: good", b"Under_Score: x"),
    "header-bytes": req(b"/h", b"X-Latin: caf\xc3\xa9 \xe9", b"X-Space:   padded   ", b"X-Empty:"),
    "cookies": req(b"/h", b"Cookie: a=1", b"Cookie: b=2"),
    "post-body": req(b"/p", b"Content-Type: application/x-www-form-urlencoded", b"Content-Length: 7",
                     method=b"POST", body=b"a=1&b=2"),
    "put-binary": req(b"/p", b"Content-Type: application/octet-stream", b"Content-Length: 4",
                      method=b"PUT", body=b"\x00\xff\x80\n"),
    "http-1.0": req(b"/old?x=1", version=b"1.0"),
    "options": req(b"/opt", method=b"OPTIONS"),
    "chunked": req(b"/c", b"Transfer-Encoding: chunked", b"Content-Type: text/plain",
                   method=b"POST", body=b"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("name", REQUESTS)
async def test_same_environ_as_gunicorn(aiohttp_client, gunicorn_port, name):
    bridge = WSGIBridge(echo_app)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bridge.handle)
    app.on_cleanup.append(lambda app: bridge.shutdown())
    client = await aiohttp_client(app)

    ours, our_client_port = await exchange(client.port, REQUESTS[name])
    theirs, their_client_port = await exchange(gunicorn_port, REQUESTS[name])

    # Intended differences (see the module docstring).
    assert ours.pop("wsgi.multithread") is True and theirs.pop("wsgi.multithread") is False
    assert ours.pop("REQUEST_URI") == ours["RAW_URI"]
    assert ours.pop("SERVER_PORT") == str(client.port)
    assert theirs.pop("SERVER_PORT") == str(gunicorn_port)
    assert ours.pop("REMOTE_PORT") == str(our_client_port)
    assert theirs.pop("REMOTE_PORT") == str(their_client_port)
    if name == "chunked":
        assert ours.pop("CONTENT_LENGTH") == str(len(ours["body"])) == "7"
        assert "CONTENT_LENGTH" not in theirs

    assert ours == theirs
