"""Fuzzing the bridge: request -> environ, and the application's response headers.

A real server (the combined app on 127.0.0.1, in a thread of this process)
gets requests written byte by byte over a socket.  hypothesis makes the
methods, percent-encoded paths and queries, header lists (repeated names,
names with ``_``, obs-text values) and bodies (Content-Length or chunked in
random pieces); the WSGI app reports the environ it got, which must be the
PEP 3333 translation of those bytes.  Then the app answers with generated
header lists: valid ones must reach the socket byte-exact, invalid ones
(CR, LF, NUL, non-token names, hop-by-hop headers) must be refused with a
500 and never split the response.
"""

from __future__ import annotations

import asyncio
import json
import threading
import types
from typing import Any, Iterator
from urllib.parse import unquote_to_bytes

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings, strategies as st

from aiodjango import get_aio_application

from .conftest import REPORT, scaled
from .rawhttp import exchange
from .server_app import environ_problems

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
SUB_DELIMS = "!$&'()*+,;=:@"
HOP_BY_HOP = ["Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailers", "Transfer-Encoding", "Upgrade"]
# Request headers the fuzzer leaves alone: framing, and what aiohttp acts on.
RESERVED = {"host", "content-length", "transfer-encoding", "connection", "upgrade", "expect",
            "content-encoding", "te", "trailer", "keep-alive"}


def capture_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Report the environ (CGI keys) and the body read from wsgi.input."""
    spec = environ.get("HTTP_X_RESPOND")
    body = environ["wsgi.input"].read()
    if spec is not None:  # respond with the headers the test asks for
        status, headers = json.loads(body)
        start_response(status, [tuple(h) for h in headers])
        return [b"fuzz"]
    report = {k: v for k, v in environ.items() if isinstance(v, str) and ("." not in k or k.startswith("HTTP_"))}
    report["wsgi.input"] = body.decode("latin-1")
    report["problems"] = environ_problems(environ)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(report).encode()]


class ThreadServer:
    """The combined app over capture_app, served by a thread of this process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self.thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        urlconf = types.ModuleType("fuzz_bridge_urlconf")
        urlconf.urlpatterns = []  # type: ignore[attr-defined]
        app = get_aio_application(capture_app, urlconf=urlconf, threads=2)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._stop = self.loop.create_future()
        self._ready.set()
        try:
            await self._stop
        finally:
            await runner.cleanup()

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        assert self._ready.wait(10), "the fuzz server did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.loop.call_soon_threadsafe(self._stop.set_result, None)  # type: ignore[union-attr]
        self.thread.join(10)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ThreadServer]:
    with ThreadServer() as server:
        yield server


# --- request -> environ ------------------------------------------------------------------

path_atoms = st.one_of(
    st.sampled_from(list(UNRESERVED + SUB_DELIMS)),
    st.integers(0, 255).map(lambda b: "%%%02X" % b),
    st.just("/"),
)
segments = st.lists(path_atoms, max_size=20).map("".join).filter(lambda p: "/./" not in p and "/../" not in p)
queries = st.lists(st.one_of(st.sampled_from(list(UNRESERVED + SUB_DELIMS + "/?")), st.integers(0, 255).map(lambda b: "%%%02x" % b)), max_size=20).map("".join)
header_names = st.text(TCHAR, min_size=1, max_size=12).filter(lambda n: n.lower() not in RESERVED)
VALUE_CHARS = [chr(c) for c in range(0x21, 0x7F)] + [chr(c) for c in range(0x80, 0x100)]
header_values = st.builds(
    lambda head, middle: head + middle,
    st.sampled_from(VALUE_CHARS),
    st.text(st.sampled_from(VALUE_CHARS + [" ", "\t"]), max_size=30).map(lambda s: s.rstrip(" \t")),
)
# llhttp (aiohttp's C parser) knows a fixed list of methods and refuses others with 400.
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT", "PURGE"])


@st.composite
def requests(draw: Any) -> dict[str, Any]:
    method = draw(methods)
    path = "/" + draw(segments)
    query = draw(st.one_of(st.none(), queries))
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=12))
    framing = draw(st.sampled_from([None, "length", "chunked"]))
    body = draw(st.binary(max_size=3000)) if framing else b""
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4))) if framing == "chunked" else []
    return {"method": method, "path": path, "query": query, "headers": headers, "framing": framing, "body": body, "cuts": cuts}


def encode_request(r: dict[str, Any]) -> bytes:
    target = r["path"] + ("?" + r["query"] if r["query"] is not None else "")
    out = [f"{r['method']} {target} HTTP/1.1\r\n".encode("latin-1"), b"Host: 127.0.0.1\r\n"]
    out += [f"{name}: {value}\r\n".encode("latin-1") for name, value in r["headers"]]
    body = r["body"]
    if r["framing"] == "length":
        out.append(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif r["framing"] == "chunked":
        out.append(b"Transfer-Encoding: chunked\r\n\r\n")
        edges = [0] + r["cuts"] + [len(body)]
        for start, end in zip(edges, edges[1:]):
            if end > start:
                out.append(b"%x\r\n%s\r\n" % (end - start, body[start:end]))
        out.append(b"0\r\n\r\n")
    else:
        out.append(b"\r\n")
    return b"".join(out)


def expected_environ(r: dict[str, Any]) -> dict[str, str]:
    expected = {
        "REQUEST_METHOD": r["method"],
        "PATH_INFO": unquote_to_bytes(r["path"]).decode("latin-1"),
        "QUERY_STRING": r["query"] or "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.input": r["body"].decode("latin-1"),
    }
    if r["framing"] == "chunked":
        expected["HTTP_TRANSFER_ENCODING"] = "chunked"  # as gunicorn: the body is de-chunked
    for name, value in r["headers"]:
        if "_" in name:
            continue  # dropped, so X_Forwarded_For can't pose as X-Forwarded-For
        key = name.upper().replace("-", "_")
        key = key if key == "CONTENT_TYPE" else "HTTP_" + key
        expected[key] = expected[key] + "," + value if key in expected else value
    return expected


FUZZ = settings(
    max_examples=int(scaled(150, 3000)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(request=requests())
def test_environ_is_the_pep3333_translation_of_the_request(fuzz_server, request) -> None:
    REPORT.fuzz("request -> environ")
    reply = exchange(fuzz_server.port, encode_request(request), timeout=10)
    assert reply.status == 200, reply.raw[:500]
    got = json.loads(reply.body)
    assert got.pop("problems") == []
    expected = expected_environ(request)
    for key, value in expected.items():
        assert got.get(key) == value, (key, request)
    http_keys = {k for k in got if k.startswith("HTTP_") or k == "CONTENT_TYPE"}
    assert http_keys == {k for k in expected if k.startswith("HTTP_") or k == "CONTENT_TYPE"}
    if request["body"]:
        assert got["CONTENT_LENGTH"] == str(len(request["body"]))
    else:
        assert got.get("CONTENT_LENGTH", "0") in ("", "0")


# --- response headers -------------------------------------------------------------------

RESPONSE_EXCLUDED = {"content-length", "date", "server", "content-type"} | {h.lower() for h in HOP_BY_HOP}
valid_names = st.text(TCHAR, min_size=1, max_size=12).filter(lambda n: n.lower() not in RESPONSE_EXCLUDED)
ascii_values = st.builds(
    lambda head, middle: head + middle,
    st.sampled_from([chr(c) for c in range(0x21, 0x7F)]),
    st.text(st.sampled_from([chr(c) for c in range(0x20, 0x7F)] + ["\t"]), max_size=30).map(lambda s: s.rstrip(" \t")),
)
# obs-text the PEP 3333 way: the UTF-8 bytes of any text, spelled as latin-1.
utf8_values = st.builds(
    lambda head, text: head + text.encode("utf-8").decode("latin-1"),
    st.sampled_from([chr(c) for c in range(0x21, 0x7F)]),
    st.text(st.characters(min_codepoint=0xA0, blacklist_categories=("Cs",)), min_size=1, max_size=10),
)
valid_lists = st.lists(st.tuples(valid_names, st.one_of(ascii_values, utf8_values)), min_size=1, max_size=10)

bad_names = st.sampled_from(["", "X A", "X:A", "X\rA", "X\nA", "X\x00A", "X(A)", "X\x7fA", "X\u00e9"])
bad_values = st.builds(
    lambda a, bad, b: a + bad + b,
    ascii_values,
    st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x01", "\x1f", "\x7f", "\r\nX-Injected: yes", "\nX-Injected: yes"]),
    st.sampled_from(["", "tail", "X-Injected: yes"]),
)


def respond(port: int, status: str, headers: list[tuple[str, str]]) -> Any:
    body = json.dumps([status, headers]).encode()
    request = (
        b"POST /respond/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Respond: 1\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )
    return exchange(port, request, timeout=10)


@FUZZ
@given(headers=valid_lists)
def test_valid_response_headers_pass_byte_exact(fuzz_server, headers) -> None:
    REPORT.fuzz("response headers, valid")
    reply = respond(fuzz_server.port, "200 OK", headers)
    assert reply.status == 200, reply.raw[:500]
    head = reply.raw.partition(b"\r\n\r\n")[0]
    position = 0
    for name, value in headers:
        line = b"\r\n" + f"{name}: {value}".encode("latin-1") + b"\r\n"
        found = (head + b"\r\n").find(line, position)
        assert found >= 0, (line, head)
        position = found + len(line) - 2
    assert reply.body == b"fuzz"


@FUZZ
@given(
    headers=valid_lists,
    bad=st.one_of(st.tuples(bad_names, ascii_values), st.tuples(valid_names, bad_values)),
    where=st.integers(0, 10),
)
def test_invalid_response_headers_are_refused_never_split(fuzz_server, headers, bad, where) -> None:
    REPORT.fuzz("response headers, invalid")
    headers = list(headers)
    headers.insert(min(where, len(headers)), bad)
    reply = respond(fuzz_server.port, "200 OK", headers)
    assert reply.status == 500, reply.raw[:500]
    assert "x-injected" not in reply.headers
    assert b"fuzz" not in reply.body


@FUZZ
@given(headers=valid_lists, hop=st.sampled_from(HOP_BY_HOP), where=st.integers(0, 10))
def test_hop_by_hop_response_headers_are_dropped(fuzz_server, headers, hop, where) -> None:
    REPORT.fuzz("response headers, valid")
    headers = list(headers)
    headers.insert(min(where, len(headers)), (hop, "x-hop"))
    reply = respond(fuzz_server.port, "200 OK", headers)
    assert reply.status == 200, reply.raw[:500]
    assert b"x-hop" not in reply.raw and reply.body == b"fuzz"


def test_obs_text_response_header_values(fuzz_server) -> None:
    """PEP 3333 header values are bytes spelled as latin-1.  aiohttp writes
    header values as UTF-8, so the bridge sends bytes that are UTF-8 exactly;
    a lone 0xE9 (Django's ``response["X"] = "café"``) goes out as the UTF-8 of
    its character, where gunicorn sends the byte: a documented difference,
    never a 500."""
    reply = respond(fuzz_server.port, "200 OK", [("X-Obs", "caf\u00c3\u00a9")])  # UTF-8 bytes of "café"
    assert reply.status == 200, reply.raw[:300]
    assert b"\r\nX-Obs: caf\xc3\xa9\r\n" in reply.raw
    reply = respond(fuzz_server.port, "200 OK", [("X-Obs", "caf\u00e9")])  # the latin-1 byte 0xE9
    assert reply.status == 200, reply.raw[:300]
    assert b"\r\nX-Obs: caf\xc3\xa9\r\n" in reply.raw
