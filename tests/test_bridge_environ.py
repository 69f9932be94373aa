"""The request side of the bridge: a bounded, exact environ, under both of aiohttp's parsers.

* A header flood (thousands of repeated fields) is answered ``431`` before
  any work, in linear time, while the event loop keeps serving others; the
  field count is capped whatever aiohttp version runs (``max_request_fields``).
* A repeated Host, Content-Type or Content-Length is ``400``, as gunicorn
  answers, never ``HTTP_HOST="a,b"``.
* A request target that is not printable ASCII is ``400`` under aiohttp's C
  parser (llhttp refuses it), its pure-Python parser (the bridge refuses it)
  and gunicorn alike; never a 500.
* A path outside ``script_name`` is refused with ``500`` as gunicorn does.

The side-by-side part runs every request against the bridge under aiohttp's
C parser, the bridge under its pure-Python parser (``AIOHTTP_NO_EXTENSIONS=1``,
chosen when aiohttp is imported) and gunicorn's sync worker, each a server
subprocess (``tests/bridge_echo.py``), and compares the environ the app
reports (the differences by design are those of
``tests/test_bridge_gunicorn.py``), or the status of a refusal.  The other
tests run the bridge in this process (aiohttp's test server).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiohttp import http_parser, web
from aiohttp.test_utils import make_mocked_request
from django.test import override_settings

from aiodjango.application import APP_KEY, get_aio_application
from aiodjango.checks import check_bridge_settings
from aiodjango.conf import conf
from aiodjango.wsgi import WSGIBridge
from aiodjango.wsgi.environ import DEFAULT_MAX_REQUEST_FIELDS, InvalidRequest, base_environ, build_environ

from .support.servers import clean_env, free_port, stop
from .test_bridge_gunicorn import REQUESTS as GUNICORN_REQUESTS
from .test_bridge_gunicorn import req
from .wsgi_apps import echo_app

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # upper bound of every wait here (never reached when passing)
KB = b"v" * 1000


# -- servers -------------------------------------------------------------------


class Server:
    """A server subprocess on 127.0.0.1, its output in a log file; stopped by PID."""

    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process = process
        self.log = log
        self.port = 0
        self.parser = ""

    def stop(self) -> None:
        stop(self.process)

    def wait_until(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"{what} exited: {self.log.read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not start: {self.log.read_text()}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def tmp_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("environ")


def spawn(command: list[str], env: dict[str, str], log: Path) -> Server:
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return Server(process, log)


def start_bridge(folder: Path, name: str, *, pure_python: bool, **options: Any) -> Server:
    """``tests.bridge_echo`` in a subprocess; with aiohttp's pure-Python parser if asked."""
    port_file = folder / f"{name}.json"
    env = clean_env()
    env.pop("AIOHTTP_NO_EXTENSIONS", None)
    if pure_python:
        env["AIOHTTP_NO_EXTENSIONS"] = "1"  # read when aiohttp is imported
    server = spawn([sys.executable, "-m", "tests.bridge_echo", str(port_file), json.dumps(options)],
                   env, folder / f"{name}.log")
    try:
        server.wait_until(port_file.exists, f"the bridge server {name}")
    except BaseException:
        server.stop()
        raise
    info = json.loads(port_file.read_text())
    server.port, server.parser = info["port"], info["parser"]
    return server


def answers(port: int) -> bool:
    try:
        asyncio.run(exchange(port, req(b"/")))
        return True
    except (OSError, ValueError, IndexError):
        return False


def start_gunicorn(folder: Path, name: str, script_name: str = "") -> Server:
    """gunicorn's sync worker serving ``echo_app``; ``SCRIPT_NAME`` from its environment."""
    port = free_port()
    env = clean_env({"FORWARDED_ALLOW_IPS": ""})
    env.pop("SCRIPT_NAME", None)
    if script_name:
        env["SCRIPT_NAME"] = script_name
    server = spawn(
        [sys.executable, "-m", "gunicorn", "--no-control-socket", "--worker-class", "sync",
         "--workers", "1", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
         "tests.wsgi_apps:echo_app"],
        env, folder / f"{name}.log",
    )
    server.port = port
    try:
        server.wait_until(lambda: answers(port), f"gunicorn {name}")
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def servers(tmp_module: Path) -> Iterator[dict[str, Server]]:
    """The bridge under both parsers, and gunicorn; plain and under ``SCRIPT_NAME=/foo``."""
    started: dict[str, Server] = {}
    try:
        for name, python in (("python", True), ("c", False)):
            started[name] = start_bridge(tmp_module, name, pure_python=python)
            started[f"{name}-foo"] = start_bridge(tmp_module, f"{name}-foo", pure_python=python,
                                                  script_name="/foo")
        started["gunicorn"] = start_gunicorn(tmp_module, "gunicorn")
        started["gunicorn-foo"] = start_gunicorn(tmp_module, "gunicorn-foo", "/foo")
        yield started
    finally:
        for server in started.values():
            server.stop()


async def exchange(port: int, request: bytes) -> tuple[int, Any]:
    """Send ``request`` on a new connection; return the status and the JSON body (or raw bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"application/json" in head:
        return status, json.loads(body)
    return status, body


def comparable(env: dict[str, Any]) -> dict[str, Any]:
    """The environ without what differs by design (see tests/test_bridge_gunicorn.py)."""
    env = dict(env)
    for key in ("wsgi.multithread", "REQUEST_URI", "SERVER_PORT", "REMOTE_PORT"):
        env.pop(key, None)
    return env


# -- side by side: C parser, pure-Python parser, gunicorn --------------------------

SAME = {
    **GUNICORN_REQUESTS,
    "content-length-zero": req(b"/z", b"Content-Length: 0", method=b"POST"),
    "question-marks": req(b"/a?b?c=d"),
    "fragment": req(b"/x?y#frag"),
    "bad-percent": req(b"/%zz%4/%"),
    "semicolon-and-star": req(b"/a;b*c?x=*"),
    "fifty-repeats": req(b"/h", *[b"X-A: " + b"%d" % i for i in range(50)]),
    "fields-100": req(b"/h", *[b"X-F%d: 1" % i for i in range(98)]),  # + Host + Connection
}
CHUNKED = {"chunked"}

REFUSED = {
    "raw-latin-1-path": (req(b"/\xe9t\xe9"), 400),
    "raw-utf-8-path": (req(b"/caf\xc3\xa9"), 400),
    "raw-utf-8-query": (req(b"/a?x=\xc3\xa9"), 400),
    "raw-byte-in-query": (req(b"/a?x=\xe9"), 400),
    "fields-101": (req(b"/h", *[b"X-F%d: 1" % i for i in range(99)]), 431),
    "repeated-x-a-flood": (req(b"/h", *[b"X-A: " + KB] * 300), 431),
    "repeated-host": (req(b"/h", b"Host: evil.example.com"), 400),
    "repeated-content-type": (req(b"/h", b"Content-Type: a/b", b"content-type: c/d"), 400),
    "repeated-content-length": (req(b"/h", b"Content-Length: 1", b"Content-Length: 1",
                                    method=b"POST", body=b"x"), 400),
}


def test_the_subprocess_uses_the_pure_python_parser(servers):
    assert servers["python"].parser == servers["python-foo"].parser == "aiohttp.http_parser"
    # The C parser wherever aiohttp has its extensions (as in this process).
    assert servers["c"].parser == servers["c-foo"].parser == http_parser.HttpRequestParser.__module__


@pytest.mark.parametrize("name", SAME)
@pytest.mark.parametrize("parser", ["c", "python"])
def test_same_environ_as_gunicorn_under_both_parsers(servers, parser, name):
    status, ours = asyncio.run(exchange(servers[parser].port, SAME[name]))
    their_status, theirs = asyncio.run(exchange(servers["gunicorn"].port, SAME[name]))
    assert (status, their_status) == (200, 200), (ours, theirs)
    ours, theirs = comparable(ours), comparable(theirs)
    if name in CHUNKED:
        assert ours.pop("CONTENT_LENGTH") == str(len(ours["body"]))
    assert ours == theirs


@pytest.mark.parametrize("name", REFUSED)
@pytest.mark.parametrize("parser", ["c", "python"])
def test_same_refusals_as_gunicorn_under_both_parsers(servers, parser, name):
    request, expected = REFUSED[name]
    their_status, _ = asyncio.run(exchange(servers["gunicorn"].port, request))
    assert their_status == expected
    try:
        status, body = asyncio.run(exchange(servers[parser].port, request))
    except ConnectionResetError:
        # aiohttp >= 3.14 refuses more than 128 fields itself, as soon as it
        # has read them: closing while the rest comes in may reset the
        # connection before its 400 is read.
        assert name == "repeated-x-a-flood"
        return
    if expected == 431 and status == 400 and b"Too many headers" in body:
        assert name == "repeated-x-a-flood"  # aiohttp >= 3.14's own refusal, as above
        return
    assert status == expected, body


@pytest.mark.parametrize("target, status", [
    (b"/foo/x?q=1", 200), (b"/foo", 200), (b"/foo/", 200), (b"/other", 500), (b"/", 500),
])
@pytest.mark.parametrize("parser", ["c", "python"])
def test_script_name_as_gunicorn(servers, parser, target, status):
    ours_status, ours = asyncio.run(exchange(servers[f"{parser}-foo"].port, req(target)))
    their_status, theirs = asyncio.run(exchange(servers["gunicorn-foo"].port, req(target)))
    assert ours_status == their_status == status
    if status == 200:
        assert comparable(ours) == comparable(theirs)
        assert ours["SCRIPT_NAME"] == "/foo"


def test_script_name_prefix_of_a_segment_is_refused_unlike_gunicorn(servers):
    # gunicorn compares the raw strings: /foobar is served as SCRIPT_NAME=/foo,
    # PATH_INFO=bar.  The bridge refuses a path outside its mount point.
    status, theirs = asyncio.run(exchange(servers["gunicorn-foo"].port, req(b"/foobar")))
    assert status == 200 and theirs["PATH_INFO"] == "bar"
    for parser in ("c-foo", "python-foo"):
        status, _ = asyncio.run(exchange(servers[parser].port, req(b"/foobar")))
        assert status == 500


# -- in-process: the header flood -----------------------------------------------


def flood(repeats: int, target: bytes = b"/flood") -> bytes:
    """A request with ``repeats`` 1 kB ``X-A`` fields (and Host, Connection)."""
    return (b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + (b"X-A: " + KB + b"\r\n") * repeats
            + b"Connection: close\r\n\r\n")


class Served:
    """``app`` on 127.0.0.1, port 0, with runner options (e.g. aiohttp's ``max_headers``)."""

    def __init__(self, app: web.Application, **runner_kwargs: Any) -> None:
        self.runner = web.AppRunner(app, **runner_kwargs)
        self.port = 0

    async def __aenter__(self) -> "Served":
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.runner.cleanup()


def counting_app(calls: list) -> Any:
    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return echo_app(environ, start_response)
    return app


def bridged(wsgi: Any, **options: Any) -> web.Application:
    bridge = WSGIBridge(wsgi, **options)
    app = web.Application()

    async def lifted(request: web.Request) -> web.Response:
        return web.Response(text="async answer")

    async def shutdown(app: web.Application) -> None:
        await bridge.shutdown()

    app.router.add_get("/async", lifted)
    app.router.add_route("*", "/{tail:.*}", bridge.handle)
    app.on_cleanup.append(shutdown)
    return app


async def test_header_flood_gets_431_and_the_loop_keeps_serving(caplog):
    calls: list = []
    caplog.set_level(logging.WARNING, logger="aiodjango.bridge")
    # aiohttp >= 3.14 refuses more than 128 fields itself; let them through to
    # reach the bridge as every older aiohttp does.
    async with Served(bridged(counting_app(calls)), max_headers=100_000) as server:
        data = flood(4000)
        assert len(data) > 4_000_000
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            # Send the flood in pieces; between them, others are served.
            pieces = [data[i:i + 200_000] for i in range(0, len(data), 200_000)]
            for i, piece in enumerate(pieces):
                writer.write(piece)
                await writer.drain()
                if i in (1, len(pieces) // 2):
                    status, body = await exchange(server.port, req(b"/during"))
                    assert status == 200 and body["PATH_INFO"] == "/during"
            # Right after the last piece, a lifted view and a Django view
            # are answered too, while the flood is parsed and refused.
            others = [asyncio.ensure_future(exchange(server.port, req(target)))
                      for target in (b"/async", b"/after")]
            answer = await asyncio.wait_for(reader.read(), WAIT)  # read() ends: closed
        finally:
            writer.close()
            await writer.wait_closed()
        results = await asyncio.wait_for(asyncio.gather(*others), WAIT)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:200]
    assert b"Connection: close" in answer
    assert [status for status, _ in results] == [200, 200]
    assert sorted(calls) == ["/after", "/during", "/during"]
    (record,) = [r for r in caplog.records if "431" in r.getMessage()]
    assert "4002 header fields" in record.getMessage() and "max_request_fields" in record.getMessage()


async def test_header_flood_with_aiohttps_default_limits():
    # The same flood with aiohttp's own defaults: refused by the bridge (431)
    # on aiohttp < 3.14, by aiohttp itself (400, more than 128 fields) after.
    calls: list = []

    async def send_flood(port: int) -> int | None:
        try:
            status, _ = await exchange(port, flood(4000))
            return status
        except ConnectionResetError:
            # aiohttp refused it mid-way and closed while the flood was
            # still coming: the client may see a reset instead of the 400.
            return None

    async with Served(bridged(counting_app(calls))) as server:
        floods = [asyncio.ensure_future(send_flood(server.port)) for _ in range(3)]
        status, _ = await asyncio.wait_for(exchange(server.port, req(b"/ping")), WAIT)
        results = await asyncio.wait_for(asyncio.gather(*floods), WAIT)
    assert status == 200
    assert set(results) <= {400, 431, None} and len(results) == 3
    assert calls == ["/ping"]


@pytest.mark.parametrize("fields, status", [(5, 200), (6, 431)])
async def test_max_request_fields(aiohttp_client, fields, status):
    calls: list = []
    client = await aiohttp_client(bridged(counting_app(calls), max_request_fields=5))
    request = req(b"/h", *[b"X-F%d: 1" % i for i in range(fields - 2)])  # + Host + Connection
    got, body = await exchange(client.port, request)
    assert got == status
    assert calls == (["/h"] if status == 200 else [])
    if status == 431:
        assert body == b"431 Too many header fields\n"


def test_repeated_headers_join_in_linear_time():
    # The old join (value = value + "," + text per repeat) copied the growing
    # value each time: 20,000 repeated 1 kB fields meant ~200 GB of copying,
    # minutes of CPU on the event loop.  Joined once, it is milliseconds; the
    # bound below is only there to fail instead of hanging.
    headers = [("X-A", KB.decode())] * 20_000
    request = make_mocked_request("GET", "/", headers=headers)
    started = time.process_time()
    environ = build_environ(request, base_environ())
    took = time.process_time() - started
    assert environ["HTTP_X_A"] == ",".join([KB.decode()] * 20_000)
    assert took < 5.0, f"{took:.1f} s of CPU for 20,000 repeated headers"


def test_over_max_fields_is_refused_before_any_work():
    request = make_mocked_request("GET", "/", headers=[("X-A", "1")] * 101)
    with pytest.raises(InvalidRequest) as info:
        build_environ(request, base_environ(), max_fields=100)
    assert (info.value.status, info.value.reason) == (431, "Too many header fields")
    assert "101 header fields" in info.value.detail and "100" in info.value.detail
    assert build_environ(request, base_environ(), max_fields=101)["HTTP_X_A"] == ",".join("1" * 101)


@pytest.mark.parametrize("headers, name, key, joined", [
    ([("Host", "a"), ("Host", "evil.example.com")], "Host", "HTTP_HOST", "a,evil.example.com"),
    ([("Host", "a"), ("host", "a")], "Host", "HTTP_HOST", "a,a"),
    ([("Host", "a"), ("Content-Type", "a/b"), ("CONTENT-TYPE", "c/d")], "Content-Type", "CONTENT_TYPE", "a/b,c/d"),
    ([("Host", "a"), ("Content-Length", "1"), ("content-length", "1")], "Content-Length", "CONTENT_LENGTH", "1,1"),
])
def test_repeated_singleton_headers(headers, name, key, joined):
    request = make_mocked_request("POST", "/", headers=headers)
    with pytest.raises(InvalidRequest) as info:
        build_environ(request, base_environ(), strict=True)
    assert (info.value.status, info.value.reason) == (400, f"Repeated {name} header")
    # Lenient (the stand-in request of lifted views): joined, as before.
    assert build_environ(request, base_environ())[key] == joined


async def test_repeated_host_over_the_wire_is_400_and_never_joined(aiohttp_client):
    calls: list = []
    client = await aiohttp_client(bridged(counting_app(calls)))
    status, body = await exchange(client.port, req(b"/h", b"Host: evil.example.com"))
    # aiohttp >= 3.13.5 refuses it itself; before, the bridge does.
    assert status == 400 and calls == []


# -- request targets --------------------------------------------------------------


def test_non_ascii_target():
    # What aiohttp's pure-Python parser gives for b"GET /caf\xc3\xa9?x=\xc3\xa9".
    request = make_mocked_request("GET", "/caf\u00e9?x=\u00e9")
    with pytest.raises(InvalidRequest) as info:
        build_environ(request, base_environ(), strict=True)
    assert (info.value.status, info.value.reason) == (400, "Invalid request target")
    # Lenient: the bytes, as latin-1 (PEP 3333), never an exception.
    environ = build_environ(request, base_environ())
    assert environ["PATH_INFO"] == "/café".encode().decode("latin-1")
    assert environ["RAW_URI"] == "/café?x=é".encode().decode("latin-1")


@pytest.mark.parametrize("target", ["/a\x7f", "/a\tb", "/\udce9t\udce9"])
def test_control_and_undecodable_bytes_in_target(target):
    request = make_mocked_request("GET", target)
    with pytest.raises(InvalidRequest):
        build_environ(request, base_environ(), strict=True)
    build_environ(request, base_environ())  # no exception


# -- SCRIPT_NAME in process (C parser) ---------------------------------------------


@pytest.mark.parametrize("target, status, path_info", [
    ("/foo/x", 200, "/x"), ("/foo", 200, ""), ("/f%6Fo/x", 200, "/x"),
    ("/other", 500, None), ("/foobar", 500, None), ("/", 500, None),
])
async def test_script_name(aiohttp_client, caplog, target, status, path_info):
    calls: list = []
    client = await aiohttp_client(bridged(counting_app(calls), script_name="/foo"))
    got, body = await exchange(client.port, req(target.encode()))
    assert got == status
    if status == 200:
        assert (body["SCRIPT_NAME"], body["PATH_INFO"]) == ("/foo", path_info)
    else:
        assert calls == [] and body == b"500 Internal Server Error\n"
        (record,) = [r for r in caplog.records if r.name == "aiodjango.bridge"]
        assert "outside SCRIPT_NAME '/foo'" in record.getMessage()
        assert "script_name" in record.getMessage()


# -- options and settings -----------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, "100", 1.5, None, True])
def test_bad_max_request_fields(value):
    with pytest.raises(ValueError, match="max_request_fields"):
        WSGIBridge(echo_app, max_request_fields=value)


def test_max_request_fields_setting():
    assert conf.AIODJANGO_MAX_REQUEST_FIELDS == DEFAULT_MAX_REQUEST_FIELDS == 100
    assert get_aio_application(echo_app)[APP_KEY].bridge.max_request_fields == 100
    with override_settings(AIODJANGO_MAX_REQUEST_FIELDS=250):
        assert check_bridge_settings() == []
        assert get_aio_application(echo_app)[APP_KEY].bridge.max_request_fields == 250


@pytest.mark.parametrize("value", [0, -5, "100", None, 2.0, False])
def test_bad_max_request_fields_setting_is_reported(value):
    with override_settings(AIODJANGO_MAX_REQUEST_FIELDS=value):
        (error,) = check_bridge_settings()
    assert error.id == "aiodjango.E025"
    assert "AIODJANGO_MAX_REQUEST_FIELDS" in error.msg and repr(value) in error.msg
    assert "AIODJANGO_MAX_REQUEST_FIELDS" in error.hint
