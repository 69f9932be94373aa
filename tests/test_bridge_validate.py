"""Conformance: apps wrapped in ``wsgiref.validate.validator`` run through the bridge.

The validator checks both sides of PEP 3333: what the server hands the app
(environ, ``wsgi.input``, ``wsgi.errors``, ``start_response``) and how the server
treats the result (iterated properly, ``close()`` called before the iterable is
garbage collected).  A server-side violation raises ``AssertionError`` inside
the app (a 500 here, so every request below must answer 2xx), and the
validator's warnings are turned into errors.
"""

from __future__ import annotations

import gc
import io
import sys
from wsgiref.validate import validator

import pytest
from aiohttp import web

from aiodjango.wsgi import WSGIBridge

pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")

failures: list[BaseException] = []


def battery(environ, start_response):
    """Exercises every input method and every kind of response body."""
    path = environ["PATH_INFO"]
    stream = environ["wsgi.input"]
    environ["wsgi.errors"].write("")
    environ["wsgi.errors"].flush()
    headers = [("Content-Type", "text/plain")]
    if path == "/read":
        body = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", headers)
        return [b"read:", body]
    if path == "/readline":
        lines = []
        while True:
            line = stream.readline()
            if not line:
                break
            lines.append(line)
        lines.extend(stream.readlines())
        start_response("200 OK", headers)
        return [b"|".join(lines)]
    if path == "/iter":
        start_response("200 OK", headers)
        return [b"".join(stream)]
    if path == "/stream":
        start_response("200 OK", headers)
        return (b"chunk %d\n" % i for i in range(50))
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/file":
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](open(__file__, "rb"), 1024)
    if path == "/bytesio":
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](io.BytesIO(b"b" * 5000), 1024)
    if path == "/error":
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("500 Internal Server Error", headers, sys.exc_info())
        return [b"handled error"]
    if path == "/write":
        write = start_response("200 OK", headers)
        write(b"via write")
        return []
    start_response("200 OK", headers)
    return [b"ok"]


def checked(environ, start_response):
    try:
        return validator(battery)(environ, start_response)
    except BaseException as exc:  # recorded: the test fails on any
        failures.append(exc)
        raise


@pytest.fixture
async def client(aiohttp_client):
    failures.clear()
    bridge = WSGIBridge(checked, spool_threshold=1024)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bridge.handle)
    app.on_cleanup.append(lambda app: bridge.shutdown())
    yield await aiohttp_client(app)
    gc.collect()  # an unclosed iterable's validator wrapper complains when collected
    assert failures == []


LARGE = b"line\n" * 100_000


async def chunked(data: bytes):
    for i in range(0, len(data), 7000):
        yield data[i:i + 7000]


@pytest.mark.parametrize(
    "method, path, body, expected",
    [
        ("GET", "/", None, b"ok"),
        ("GET", "/?a=1&b=%20", None, b"ok"),
        ("GET", "/caf%C3%A9/%2F", None, b"ok"),
        ("DELETE", "/", None, b"ok"),
        ("OPTIONS", "/", None, b"ok"),
        ("POST", "/read", b"small body", b"read:small body"),
        ("PUT", "/read", LARGE, b"read:" + LARGE),
        ("POST", "/readline", b"a\nb\nc", b"a\n|b\n|c"),
        ("POST", "/readline", LARGE, b"|".join([b"line\n"] * 100_000)),
        ("POST", "/iter", b"x\ny\n", b"x\ny\n"),
        ("POST", "/read", "chunked", b"read:" + LARGE),
        ("GET", "/stream", None, b"".join(b"chunk %d\n" % i for i in range(50))),
        ("GET", "/empty", None, b""),
        ("GET", "/bytesio", None, b"b" * 5000),
        ("GET", "/write", None, b"via write"),
    ],
)
async def test_battery(client, method, path, body, expected):
    data = chunked(LARGE) if body == "chunked" else body
    resp = await client.request(method, path, data=data)
    assert resp.status in (200, 204), await resp.text()
    assert await resp.read() == expected


async def test_head(client):
    for path in ("/", "/stream", "/file", "/write"):
        resp = await client.head(path)
        assert resp.status == 200 and await resp.read() == b""


async def test_file(client):
    resp = await client.get("/file")
    with open(__file__, "rb") as f:
        assert await resp.read() == f.read()


async def test_handled_error(client):
    resp = await client.get("/error")
    assert resp.status == 500 and await resp.read() == b"handled error"


async def test_many_on_one_connection(client):
    for _ in range(20):
        for path in ("/", "/stream", "/file", "/empty"):
            resp = await client.get(path)
            assert resp.status in (200, 204)
            await resp.read()
