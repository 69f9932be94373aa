"""The WSGI bridge with plain WSGI apps, over real HTTP (aiohttp's test server)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import aiohttp
import pytest
from aiohttp import ClientPayloadError, ServerDisconnectedError, web

from aiodjango.wsgi import AIOHTTP_REQUEST_KEY, DEFAULT_THREADS, WSGIBridge

from .wsgi_apps import Closing, Ticker, echo_app

WAIT = 10.0  # upper bound of every wait in this module (never reached when passing)
BRIDGE = web.AppKey("bridge", WSGIBridge)


def make_app(wsgi: Callable[..., Any], **options: Any) -> web.Application:
    bridge = WSGIBridge(wsgi, **options)
    app = web.Application()
    app[BRIDGE] = bridge

    async def lifted(request: web.Request) -> web.Response:
        return web.Response(text="async answer")

    app.router.add_get("/async", lifted)
    app.router.add_route("*", "/{tail:.*}", bridge.handle)
    bridge.setup(app)
    return app


def simple(body: bytes = b"ok", status: str = "200 OK", headers: list | None = None):
    def app(environ, start_response):
        start_response(status, headers if headers is not None else [("Content-Type", "text/plain")])
        return [body]
    return app


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Served:
    """``app`` on 127.0.0.1, port 0, with aiohttp's production defaults.

    (aiohttp's TestServer always turns handler cancellation on; web.run_app
    and AppRunner leave it off.)
    """

    def __init__(self, app: web.Application, **runner_kwargs: Any) -> None:
        self.app = app
        self.runner = web.AppRunner(app, **runner_kwargs)
        self.host = "127.0.0.1"
        self.port = 0

    async def __aenter__(self) -> "Served":
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.runner.cleanup()

    @property
    def connections(self) -> list:
        return self.runner.server.connections  # type: ignore[union-attr]


async def raw(client, data: bytes) -> bytes:
    """Send raw bytes on a new connection; return everything until it closes."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
        await writer.wait_closed()


# -- environ -----------------------------------------------------------------


async def test_environ_basics(aiohttp_client):
    client = await aiohttp_client(make_app(echo_app))
    resp = await client.post("/caf%C3%A9/a%2Fb?x=%20y&z", data=b"hello",
                             headers={"Content-Type": "text/plain", "X-Thing": "1"})
    env = await resp.json()
    assert resp.status == 200
    assert env["PATH_INFO"] == "/café/a/b".encode().decode("latin-1")
    assert env["PATH_INFO"].encode("latin-1").decode() == "/café/a/b"
    assert env["QUERY_STRING"] == "x=%20y&z"
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/caf%C3%A9/a%2Fb?x=%20y&z"
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "5"
    assert env["body"] == "hello"
    assert env["HTTP_X_THING"] == "1"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(client.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"].isdigit()
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True and env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["has_file_wrapper"] is True


async def test_headers_repeated_joined_underscore_dropped(aiohttp_client):
    client = await aiohttp_client(make_app(echo_app))
    data = await raw(client, b"GET /h HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\n"
                             b"X_Forwarded_For: evil\r\nX-Forwarded-For: good\r\n"
                             b"X-Latin: caf\xc3\xa9\r\nConnection: close\r\n\r\n")
    env = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert env["HTTP_X_A"] == "1,2"
    assert env["HTTP_X_FORWARDED_FOR"] == "good"
    # Header bytes reach the app as latin-1, as PEP 3333 says.
    assert env["HTTP_X_LATIN"] == "café".encode().decode("latin-1")
    assert "CONTENT_LENGTH" not in env


async def test_request_key_and_script_name(aiohttp_client):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return []

    client = await aiohttp_client(make_app(app, script_name="/mount"))
    resp = await client.get("/mount/page/")
    assert resp.status == 200
    assert isinstance(seen[AIOHTTP_REQUEST_KEY], web.BaseRequest)
    assert seen["SCRIPT_NAME"] == "/mount" and seen["PATH_INFO"] == "/page/"


async def test_unix_socket_names_the_server_from_host(tmp_path):
    app = make_app(echo_app)
    runner = web.AppRunner(app)
    await runner.setup()
    path = str(tmp_path / "s.sock")
    await web.UnixSite(runner, path).start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session:
            async with session.get("http://example.test:8080/x") as resp:
                env = await resp.json()
    finally:
        await runner.cleanup()
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.test", "8080")
    assert env["PATH_INFO"] == "/x" and "REMOTE_PORT" not in env


@pytest.fixture
def tls_context(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_tls_gives_https_scheme_and_files_still_arrive(tls_context, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 2000)

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/file":
            start_response("200 OK", [])
            return environ["wsgi.file_wrapper"](open(path, "rb"))
        return echo_app(environ, start_response)

    runner = web.AppRunner(make_app(app))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/", ssl=False) as resp:
                env = await resp.json()
            async with session.get(f"https://127.0.0.1:{port}/file", ssl=False) as resp:
                content = await resp.read()
    finally:
        await runner.cleanup()
    assert env["wsgi.url_scheme"] == "https"
    assert content == path.read_bytes()


# -- request bodies ------------------------------------------------------------


async def test_chunked_body_gets_real_content_length(aiohttp_client):
    client = await aiohttp_client(make_app(echo_app))

    async def gen():
        for part in (b"abc", b"defg", b"h"):
            yield part

    resp = await client.post("/", data=gen())
    env = await resp.json()
    assert env["HTTP_TRANSFER_ENCODING"] == "chunked"
    assert env["CONTENT_LENGTH"] == "8" and env["body"] == "abcdefgh"


async def test_large_body_is_spooled_to_a_file(aiohttp_client):
    seen = {}

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        seen["fileno"] = stream.fileno()
        seen["digest"] = hashlib.sha256(stream.read()).hexdigest()
        seen["length"] = environ["CONTENT_LENGTH"]
        start_response("200 OK", [])
        return []

    client = await aiohttp_client(make_app(app, spool_threshold=64 * 1024))
    payload = bytes(range(256)) * 4096 * 3  # 3 MiB
    resp = await client.post("/", data=io.BytesIO(payload))
    assert resp.status == 200
    assert isinstance(seen["fileno"], int)
    assert seen["digest"] == hashlib.sha256(payload).hexdigest()
    assert seen["length"] == str(len(payload))


async def test_413_by_content_length_before_any_thread(aiohttp_client, caplog):
    calls = []

    def app(environ, start_response):
        calls.append(1)
        return simple()(environ, start_response)

    client = await aiohttp_client(make_app(app, max_request_body_size=1000))
    resp = await client.post("/", data=b"x" * 1001)
    assert resp.status == 413
    assert calls == []
    assert client.app[BRIDGE]._pool is None  # no thread was ever started
    assert any("larger than 1000" in r.getMessage() for r in caplog.records)
    resp = await client.post("/", data=b"x" * 1000)
    assert resp.status == 200 and calls == [1]


def expecting_app(app, **options):
    """``app`` behind a bridge whose route has the bridge's expect_handler."""
    bridge = WSGIBridge(app, **options)
    aio = web.Application()
    aio.router.add_route("*", "/{tail:.*}", bridge.handle, expect_handler=bridge.expect_handler)
    aio.on_cleanup.append(lambda app: bridge.shutdown())
    return aio


async def test_413_before_100_continue(aiohttp_client):
    calls = []

    def app(environ, start_response):
        calls.append(1)
        return simple()(environ, start_response)

    client = await aiohttp_client(expecting_app(app, max_request_body_size=1000))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 413")  # no "100 Continue" first
    finally:
        writer.close()
        await writer.wait_closed()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
        await writer.wait_closed()
    assert calls == [1]


async def test_header_flood_refused_before_100_continue(aiohttp_client):
    """A client asking ``Expect: 100-continue`` is refused before sending its body
    for what the bridge refuses anyway (as gunicorn, which reads no body first)."""
    calls = []

    def app(environ, start_response):
        calls.append(1)
        return simple()(environ, start_response)

    client = await aiohttp_client(expecting_app(app, max_request_fields=20))
    flood = b"".join(b"X-Field-%d: v\r\n" % n for n in range(25))
    # (The bridge's 400s for ambiguous requests are aiohttp 3.14's own parser errors.)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n" + flood + b"\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 431"), head  # no "100 Continue" first
    finally:
        writer.close()
        await writer.wait_closed()
    assert calls == []


async def test_413_chunked_body_too_big_while_reading(aiohttp_client):
    calls = []

    def app(environ, start_response):
        calls.append(1)
        return simple()(environ, start_response)

    client = await aiohttp_client(make_app(app, max_request_body_size=1000))

    async def gen():
        for _ in range(5):
            yield b"y" * 300

    resp = await client.post("/", data=gen())
    assert resp.status == 413
    assert calls == []
    resp = await client.get("/")
    assert resp.status == 200 and await resp.read() == b"ok"


async def test_client_gone_while_sending_body(caplog):
    calls = []

    def app(environ, start_response):
        calls.append(1)
        return simple()(environ, start_response)

    caplog.set_level(logging.INFO, logger="aiodjango.bridge")
    async with Served(make_app(app)) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        await writer.wait_closed()
        await wait_for(lambda: any("not received" in r.getMessage() for r in caplog.records), "the log")
        assert calls == []
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        data = await raw(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok")


# -- responses ---------------------------------------------------------------------


async def test_single_chunk_has_content_length_and_one_hop(aiohttp_client):
    threads = []
    body = Closing([b"hello ", b"world"])

    def app(environ, start_response):
        threads.append(threading.get_ident())
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-A", "1"), ("X-A", "2")])
        return body

    client = await aiohttp_client(make_app(app))
    resp = await client.get("/")
    assert resp.status == 201 and resp.reason == "Created"
    assert resp.headers["Content-Length"] == "11"
    assert resp.headers.getall("X-A") == ["1", "2"]
    assert "Transfer-Encoding" not in resp.headers
    assert await resp.read() == b"hello world"
    assert body.closes == 1
    assert threads and threads[0] != threading.get_ident()


async def test_streaming_first_chunk_before_generator_finishes(aiohttp_client):
    ticker = Ticker(chunks=3)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ticker

    client = await aiohttp_client(make_app(app))
    async with client.get("/") as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        first = await asyncio.wait_for(resp.content.readline(), WAIT)
        assert first == b"tick 1\n"
        assert ticker.produced == 1  # the generator is still blocked on chunk 2
        ticker.go.set()
        assert await asyncio.wait_for(resp.content.readline(), WAIT) == b"tick 2\n"
        ticker.go.set()
        assert await asyncio.wait_for(resp.read(), WAIT) == b"tick 3\n"
    await wait_for(lambda: ticker.closes == 1, "close()")
    assert ticker.closes == 1


@pytest.mark.parametrize("cancellation", [False, True], ids=["write-fails", "handler-cancelled"])
async def test_client_disconnect_closes_iterable_once(cancellation):
    # Without handler cancellation (aiohttp's default) the next write fails;
    # with it, the handler is cancelled while the pool produces chunk 2.
    ticker = Ticker()
    requests = []

    def app(environ, start_response):
        requests.append(environ[AIOHTTP_REQUEST_KEY])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ticker

    async with Served(make_app(app), handler_cancellation=cancellation) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"tick 1\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()
        # The server has seen the disconnect (and cancelled the handler, if so
        # configured) while chunk 2 is still being produced.
        await wait_for(lambda: requests[0].transport is None, "the server to see the disconnect")
        ticker.go.set()  # chunk 2 comes, cannot be written: close(), no chunk 3
        await wait_for(lambda: ticker.closes, "close()")
        await asyncio.sleep(0.05)  # a second close() or chunk 3 would show up now
    assert ticker.closes == 1
    assert ticker.produced == 2


async def test_declared_content_length_truncates_and_stops_iterating(aiohttp_client):
    ticker = Ticker()
    ticker.go.set()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "3")])
        return ticker

    client = await aiohttp_client(make_app(app))
    resp = await client.get("/")
    assert await resp.read() == b"tic"
    await wait_for(lambda: ticker.closes, "close()")
    assert ticker.produced == 1 and ticker.closes == 1


async def test_declared_content_length_too_long_closes_connection(aiohttp_client, caplog):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/short":
            return simple(b"short", headers=[("Content-Length", "100")])(environ, start_response)
        return simple()(environ, start_response)

    client = await aiohttp_client(make_app(app))
    with pytest.raises(ClientPayloadError):
        resp = await client.get("/short")
        await resp.read()
    assert any("Content-Length" in r.getMessage() for r in caplog.records)
    assert await (await client.get("/")).read() == b"ok"


async def test_head_has_headers_and_no_body(aiohttp_client):
    ticker = Ticker()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/gen":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return ticker
        return simple(b"0123456789")(environ, start_response)

    client = await aiohttp_client(make_app(app))
    data = await raw(client, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"HEAD /gen HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, second = data.split(b"\r\n\r\n")[:2]
    assert b"Content-Length: 10" in first
    assert second.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\n")
    assert b"0123456789" not in data and b"tick" not in data
    # A generator body of a HEAD response is not iterated, but it is closed.
    assert ticker.produced == 0 and ticker.closes == 1


async def test_write_callable(aiohttp_client):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"returned"]

    client = await aiohttp_client(make_app(app))
    assert await (await client.get("/")).read() == b"written returned"


async def test_file_wrapper_real_file_and_head(aiohttp_client, tmp_path):
    path = tmp_path / "data.bin"
    content = bytes(range(256)) * 1000
    path.write_bytes(content)
    files = []

    def app(environ, start_response):
        f = open(path, "rb")
        files.append(f)
        f.seek(56)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 4096)

    client = await aiohttp_client(make_app(app))
    resp = await client.get("/")
    assert resp.headers["Content-Length"] == str(len(content) - 56)
    assert await resp.read() == content[56:]
    resp = await client.head("/")
    assert resp.headers["Content-Length"] == str(len(content) - 56)
    assert await resp.read() == b""
    await wait_for(lambda: all(f.closed for f in files), "files closed")


async def test_write_before_a_file_wrapper_is_kept(aiohttp_client, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"from the file")

    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"written, then ")
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    client = await aiohttp_client(make_app(app))
    assert await (await client.get("/")).read() == b"written, then from the file"


async def test_file_wrapper_respects_content_length(aiohttp_client, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"abcdefghij")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "4")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    client = await aiohttp_client(make_app(app))
    resp = await client.get("/")
    assert await resp.read() == b"abcd"


async def test_file_wrapper_on_a_file_like_streams_blocks(aiohttp_client):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 10000), 1000)

    client = await aiohttp_client(make_app(app))
    resp = await client.get("/")
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert await resp.read() == b"x" * 10000


async def test_sendfile_disabled_streams_the_file(aiohttp_client, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"z" * 100_000)

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    client = await aiohttp_client(make_app(app, sendfile=False))
    resp = await client.get("/")
    assert resp.headers["Content-Length"] == "100000"
    assert await resp.read() == b"z" * 100_000


# -- errors and refusals -----------------------------------------------------------

BAD_HEADERS = {
    "crlf-in-value": [("X-A", "1\r\nSet-Cookie: evil=1")],
    "lf-in-value": [("X-A", "1\nX-B: 2")],
    "crlf-in-name": [("X-A\r\nX-B", "1")],
    "colon-in-name": [("X-A:", "1")],
    "bytes-value": [("X-A", b"1")],
    "bad-content-length": [("Content-Length", "12x")],
}


@pytest.mark.parametrize("headers", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
async def test_bad_headers_refused_with_500(aiohttp_client, caplog, headers):
    client = await aiohttp_client(make_app(simple(headers=headers)))
    resp = await client.get("/bad")
    assert resp.status == 500
    body = await resp.read()
    assert b"evil" not in body and "Set-Cookie" not in resp.headers and "X-B" not in resp.headers
    assert any(r.name == "aiodjango.bridge" and "refused" in r.getMessage() for r in caplog.records)
    # The same connection keeps serving.
    client.app[BRIDGE].application = simple(b"fine")
    resp = await client.get("/")
    assert resp.status == 200 and await resp.read() == b"fine"


async def test_utf8_header_bytes_reach_the_wire_unchanged(aiohttp_client):
    # PEP 3333: header values are bytes as latin-1; these bytes are UTF-8.
    value = "café ☕".encode().decode("latin-1")
    status = "200 Très bien".encode().decode("latin-1")
    client = await aiohttp_client(make_app(simple(headers=[("X-Obs", value)], status=status)))
    data = await raw(client, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith("HTTP/1.1 200 Très bien\r\n".encode())
    assert "\r\nX-Obs: café ☕\r\n".encode() in data


async def test_latin1_header_bytes_that_are_not_utf8_are_sent_as_utf8(aiohttp_client):
    # Django's response["X-Title"] = "café" is the byte \xe9 under gunicorn;
    # aiohttp writes header values as UTF-8, so the characters go out as
    # UTF-8 (a documented difference), never a 500.
    client = await aiohttp_client(make_app(simple(headers=[("X-Obs", "caf\xe9")])))
    data = await raw(client, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and b"\r\nX-Obs: caf\xc3\xa9\r\n" in data


@pytest.mark.parametrize("value", ["euro €"], ids=["not-latin-1"])
async def test_header_bytes_aiohttp_cannot_send_are_refused(aiohttp_client, caplog, value):
    # aiohttp writes header values as UTF-8: a lone latin-1 byte (obs-text)
    # cannot be sent as it is, and "€" is no latin-1 at all.
    client = await aiohttp_client(make_app(simple(headers=[("X-Obs", value)])))
    resp = await client.get("/")
    assert resp.status == 500 and "X-Obs" not in resp.headers
    assert any("'X-Obs'" in r.getMessage() for r in caplog.records)


async def test_spool_failure_gives_507(aiohttp_client, caplog, tmp_path, monkeypatch):
    calls = []

    def app(environ, start_response):
        calls.append(1)
        return simple()(environ, start_response)

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    client = await aiohttp_client(make_app(app, spool_threshold=1000))
    resp = await client.post("/", data=b"x" * 5000)
    assert resp.status == 507
    assert calls == []
    assert any("spooled" in r.getMessage() for r in caplog.records)
    resp = await client.post("/", data=b"x" * 500)
    assert resp.status == 200 and calls == [1]


@pytest.mark.parametrize("status", ["OK", "99 Low", "600 High", "2000 OK", "200 OK\r\nX: y", 200, "abc"])
async def test_bad_status_refused(aiohttp_client, caplog, status):
    client = await aiohttp_client(make_app(simple(status=status)))
    resp = await client.get("/")
    assert resp.status == 500
    assert any(r.name == "aiodjango.bridge" and "invalid status" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified", "150 Info"])
@pytest.mark.parametrize("body", ["list", "generator"])
async def test_no_body_statuses_send_no_body_bytes(aiohttp_client, status, body):
    # Whatever the app returns, no body bytes follow the head: the next
    # response on the connection must parse cleanly (1xx: connection closed).
    closed = []

    class Body:
        def __init__(self):
            self.items = iter([b"leaked body"])

        def __iter__(self):
            return self.items if body == "generator" else iter([b"leaked body"])

        def close(self):
            closed.append(1)

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/next":
            return simple(b"next")(environ, start_response)
        start_response(status, [("Content-Type", "text/plain")])
        return [b"leaked body"] if body == "list" else Body()

    client = await aiohttp_client(make_app(app))
    data = await raw(client, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(f"HTTP/1.1 {status}\r\n".encode())
    assert b"leaked" not in data
    if status.startswith("1"):
        assert b"next" not in data  # closed after a final 1xx
    else:
        head, rest = data.split(b"\r\n\r\n", 1)
        assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"next")
    if body == "generator":
        assert closed == [1]


@pytest.mark.parametrize("name", ["Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade"])
async def test_hop_by_hop_headers_are_dropped_with_a_warning(aiohttp_client, caplog, name, monkeypatch):
    from aiodjango.wsgi import exchange

    monkeypatch.setattr(exchange, "_WARNED_HOP_BY_HOP", set())
    client = await aiohttp_client(make_app(simple(b"fine", headers=[("Content-Type", "text/plain"), (name, "x")])))
    for _ in range(2):
        data = await raw(client, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"fine")
        assert f"{name}: x".encode() not in data
    warnings = [r for r in caplog.records if r.name == "aiodjango.bridge" and name in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


async def test_no_content_type_is_invented(aiohttp_client):
    def app(environ, start_response):
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/stream":
            return (chunk for chunk in [b"a", b"b"])
        return [b"ab"]

    client = await aiohttp_client(make_app(app))
    for path in (b"/", b"/stream"):
        data = await raw(client, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = data.split(b"\r\n\r\n", 1)[0].lower()
        assert data.startswith(b"HTTP/1.1 200 OK") and b"content-type" not in head


async def test_status_without_reason_is_fine(aiohttp_client):
    client = await aiohttp_client(make_app(simple(status="299 ")))
    resp = await client.get("/")
    assert resp.status == 299


async def test_exception_before_headers_gives_500_and_traceback(aiohttp_client, caplog):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/boom":
            raise ValueError("kaboom")
        return simple()(environ, start_response)

    client = await aiohttp_client(make_app(app))
    resp = await client.get("/boom")
    assert resp.status == 500
    body = await resp.read()
    assert b"kaboom" not in body and len(body) < 100
    (record,) = [r for r in caplog.records if r.name == "aiodjango.bridge"]
    assert record.exc_info and record.exc_info[0] is ValueError
    assert (await client.get("/")).status == 200


async def test_exception_after_headers_closes_connection(aiohttp_client, caplog):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/":
            return [b"fine"]

        def gen():
            yield b"partial"
            raise ValueError("midway")
        return gen()

    client = await aiohttp_client(make_app(app))
    with pytest.raises((ClientPayloadError, ServerDisconnectedError)):
        resp = await client.get("/boom")
        await resp.read()
    (record,) = [r for r in caplog.records if r.name == "aiodjango.bridge"]
    assert record.exc_info[0] is ValueError and "closing the connection" in record.getMessage()
    assert await (await client.get("/")).read() == b"fine"


async def test_exc_info_before_headers_replaces_the_response(aiohttp_client):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("503 Busy", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"sorry"]

    client = await aiohttp_client(make_app(app))
    resp = await client.get("/")
    assert resp.status == 503 and await resp.read() == b"sorry"


async def test_exc_info_after_headers_reraises(aiohttp_client, caplog):
    reraised = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen():
            yield b"first"
            try:
                raise KeyError("late")
            except KeyError:
                try:
                    start_response("500 Oops", [], sys.exc_info())
                except KeyError:
                    reraised.append(True)
                    raise
        return gen()

    client = await aiohttp_client(make_app(app))
    with pytest.raises((ClientPayloadError, ServerDisconnectedError)):
        resp = await client.get("/")
        await resp.read()
    assert reraised == [True]


async def test_start_response_twice_is_an_error(aiohttp_client):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"x"]

    client = await aiohttp_client(make_app(app))
    assert (await client.get("/")).status == 500


async def test_str_chunk_is_an_error(aiohttp_client):
    client = await aiohttp_client(make_app(simple(body="text")))  # type: ignore[arg-type]
    assert (await client.get("/")).status == 500


async def test_close_error_is_logged_response_still_sent(aiohttp_client, caplog):
    class Body:
        def __iter__(self):
            return iter([b"body"])

        def close(self):
            raise RuntimeError("close failed")

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    client = await aiohttp_client(make_app(app))
    assert await (await client.get("/")).read() == b"body"
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


async def test_system_exit_in_app_is_a_500(aiohttp_client):
    def app(environ, start_response):
        raise SystemExit(3)

    client = await aiohttp_client(make_app(app))
    assert (await client.get("/")).status == 500


# -- the pool --------------------------------------------------------------------


async def test_async_route_answers_while_every_thread_is_busy(aiohttp_client):
    release = threading.Event()
    entered = []

    def app(environ, start_response):
        entered.append(1)
        if not release.wait(WAIT):
            raise RuntimeError("never released")
        return simple(b"slow")(environ, start_response)

    client = await aiohttp_client(make_app(app, threads=2))
    slow = [asyncio.ensure_future(client.get(f"/slow/{i}")) for i in range(3)]
    await wait_for(lambda: len(entered) == 2, "both threads to be busy")
    resp = await asyncio.wait_for(client.get("/async"), WAIT)
    assert await resp.text() == "async answer"
    assert not release.is_set() and len(entered) == 2  # the third sync request is queued
    assert not any(task.done() for task in slow)
    release.set()
    for task in slow:
        resp = await asyncio.wait_for(task, WAIT)
        assert await resp.read() == b"slow"


async def test_injected_executor_is_used_and_not_shut_down(aiohttp_client):
    names = []

    def app(environ, start_response):
        names.append(threading.current_thread().name)
        return simple()(environ, start_response)

    with ThreadPoolExecutor(3, thread_name_prefix="injected") as executor:
        app_ = make_app(app, executor=executor)
        assert app_[BRIDGE].threads is None  # the executor's own size rules
        client = await aiohttp_client(app_)
        assert (await client.get("/")).status == 200
        await app_[BRIDGE].shutdown()
        assert executor.submit(lambda: 42).result(WAIT) == 42
    assert names[0].startswith("injected")


def test_default_threads():
    assert WSGIBridge(echo_app).threads == DEFAULT_THREADS == 8
    assert WSGIBridge(echo_app, threads=3).threads == 3


@pytest.mark.parametrize("options", [{"threads": 0}, {"threads": "4"}, {"max_request_body_size": -1},
                                     {"spool_threshold": -1}, {"script_name": "/x/"}])
def test_bad_options(options):
    with pytest.raises(ValueError):
        WSGIBridge(echo_app, **options)


async def test_shutdown_waits_for_running_requests(aiohttp_client):
    release = threading.Event()

    def app(environ, start_response):
        release.wait(WAIT)
        return simple()(environ, start_response)

    client = await aiohttp_client(make_app(app, shutdown_timeout=WAIT))
    bridge = client.app[BRIDGE]
    task = asyncio.ensure_future(client.get("/"))
    await wait_for(lambda: bridge._busy == 1, "the request to start")
    shutdown = asyncio.ensure_future(bridge.shutdown())
    await asyncio.sleep(0.05)
    assert not shutdown.done()
    release.set()
    await asyncio.wait_for(shutdown, WAIT)
    assert (await asyncio.wait_for(task, WAIT)).status == 200


async def test_shutdown_grace_period_is_bounded(aiohttp_client, caplog):
    release = threading.Event()

    def app(environ, start_response):
        release.wait(WAIT)
        return simple()(environ, start_response)

    client = await aiohttp_client(make_app(app, shutdown_timeout=0.05))
    bridge = client.app[BRIDGE]
    task = asyncio.ensure_future(client.get("/"))
    try:
        await wait_for(lambda: bridge._busy == 1, "the request to start")
        await asyncio.wait_for(bridge.shutdown(), WAIT)
        assert any("still running" in r.getMessage() for r in caplog.records)
    finally:
        release.set()
    assert (await asyncio.wait_for(task, WAIT)).status == 200


# -- one thread per exchange -------------------------------------------------------


async def test_app_call_every_chunk_and_close_run_on_one_thread(aiohttp_client):
    # 16 streams at once on 4 threads: each exchange keeps its thread from the
    # app call to close(), as gunicorn's gthread worker does.
    seen: dict[str, list[int]] = {}

    class Stream:
        def __init__(self, name):
            self.name = name
            self.count = 0

        def __iter__(self):
            return self

        def __next__(self):
            seen[self.name].append(threading.get_ident())
            self.count += 1
            if self.count > 5:
                raise StopIteration
            return f"{self.name}:{threading.get_ident()};".encode()

        def close(self):
            seen[self.name].append(threading.get_ident())

    def app(environ, start_response):
        name = environ["PATH_INFO"]
        seen[name] = [threading.get_ident()]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Stream(name)

    client = await aiohttp_client(make_app(app, threads=4))

    async def fetch(i):
        async with client.get(f"/s{i}") as resp:
            return await resp.read()

    bodies = await asyncio.wait_for(asyncio.gather(*(fetch(i) for i in range(16))), WAIT)
    await wait_for(lambda: all(len(ids) == 8 for ids in seen.values()), "every close()")
    assert len(seen) == 16
    used = set()
    for name, ids in seen.items():
        assert len(set(ids)) == 1, f"{name} hopped between threads: {ids}"
        used.add(ids[0])
    assert len(used) <= 4
    for i, body in enumerate(bodies):
        assert body.count(f"/s{i}:".encode()) == 5


async def test_write_sends_each_chunk_before_the_app_returns(aiohttp_client):
    go = threading.Event()
    threads = []

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        threads.append(threading.get_ident())
        write(b"first\n")
        # The client has the first chunk before the app goes on.
        assert go.wait(WAIT), "the first chunk never reached the client"
        write(b"second\n")
        threads.append(threading.get_ident())
        body = Closing([b"last\n"])
        body.close = lambda: threads.append(threading.get_ident())
        return body

    client = await aiohttp_client(make_app(app))
    async with client.get("/") as resp:
        assert await asyncio.wait_for(resp.content.readline(), WAIT) == b"first\n"
        go.set()
        assert await asyncio.wait_for(resp.read(), WAIT) == b"second\nlast\n"
    await wait_for(lambda: len(threads) == 3, "close()")
    assert len(set(threads)) == 1


async def test_write_after_the_client_left_raises_in_the_app(aiohttp_client):
    errors = []
    go = threading.Event()

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first\n")
        go.wait(WAIT)
        try:
            for _ in range(100):
                write(b"x" * 65536)
        except ConnectionError as exc:
            errors.append(exc)
        return []

    async with Served(make_app(app)) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"first\n"), WAIT)
        writer.close()
        await writer.wait_closed()
        go.set()
        await wait_for(lambda: errors, "write() to raise")
    assert isinstance(errors[0], ConnectionError)


async def test_generator_app_calling_start_response_when_iterated(aiohttp_client):
    def app(environ, start_response):  # PEP 3333 allows start_response in the first next()
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"lazy "
        yield b"start"

    client = await aiohttp_client(make_app(app))
    resp = await client.get("/")
    assert resp.status == 200 and await resp.read() == b"lazy start"
    resp = await client.head("/")
    assert resp.status == 200 and await resp.read() == b""
