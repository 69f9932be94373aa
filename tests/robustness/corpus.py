"""Hostile HTTP/1.1 requests, as raw bytes, with what the server must do.

Each :class:`Case` is one request a careful server refuses with a 4xx (or,
for the odd-but-legal ones, answers with the view Django's ``resolve()``
picks for the decoded path).  ``CANARY`` requests are smuggled inside other
requests; the canary views count calls, and the count must stay zero.
Sources: RFC 9110/9112 ("MUST respond with 400" clauses), the request
smuggling corpora of PortSwigger and llhttp's own tests, gunicorn's
``tests/requests/invalid``.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

AIOHTTP_VERSION = tuple(int(part) for part in aiohttp.__version__.split(".")[:2])
HOST = b"Host: 127.0.0.1\r\n"
CANARY = b"GET /django/canary/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
LIFTED_CANARY = b"GET /lifted/canary/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    # "4xx"; "4xx-or-close" (the client stopped sending: a 4xx, or a close
    # without calling any view); "upstream" (aiohttp accepts it by design,
    # documented in docs/robustness.rst); or the name of the view that must
    # answer, for odd-but-legal requests.
    expect: str = "4xx"
    half_close: bool = False  # the client stops sending: EOF mid-request
    group: str = "framing"
    note: str = ""
    xfail: str = ""  # a known bug, reported: the reason

    def __str__(self) -> str:
        return self.name


def get(target: bytes, *headers: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + target + b" " + version + b"\r\n" + HOST + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def post(target: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    return b"POST " + target + b" HTTP/1.1\r\n" + HOST + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


WS = (b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13")
GOOD_KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="


def _cases() -> list[Case]:
    c: list[Case] = []

    def add(name: str, data: bytes, expect: str = "4xx", *, half_close: bool = False, group: str,
            note: str = "", xfail: str = "") -> None:
        if half_close and expect == "4xx":
            expect = "4xx-or-close"
        c.append(Case(name, data, expect, half_close, group, note, xfail))

    # -- request line ------------------------------------------------------
    g = "request-line"
    add("empty request line", b"\r\n\r\n\r\n\r\nX\r\n\r\n", group=g)
    add("method only", b"GET\r\n\r\n", group=g)
    add("HTTP/0.9 style", b"GET /django/hello/\r\n\r\n", group=g)
    add("extra token", b"GET /django/hello/ HTTP/1.1 extra\r\n" + HOST + b"\r\n", group=g)
    add("bad version", b"GET /django/hello/ HTTP/1.1.1\r\n" + HOST + b"\r\n", group=g)
    add("not HTTP", b"GET /django/hello/ HTTX/1.1\r\n" + HOST + b"\r\n", group=g)
    add("lowercase protocol", b"GET /django/hello/ http/1.1\r\n" + HOST + b"\r\n", group=g)
    add("version 1.1 with spaces", b"GET /django/hello/ HTTP/ 1.1\r\n" + HOST + b"\r\n", group=g)
    add("method with @", b"G@T /django/hello/ HTTP/1.1\r\n" + HOST + b"\r\n", group=g)
    add("method with NUL", b"GE\x00T /django/hello/ HTTP/1.1\r\n" + HOST + b"\r\n", group=g)
    add("method 10 KiB", b"G" * 10240 + b" /django/hello/ HTTP/1.1\r\n" + HOST + b"\r\n", group=g)
    add("double space", b"GET  /django/hello/  HTTP/1.1\r\n" + HOST + b"\r\n", "django_hello", group=g,
        note="RFC 9112 3: recipients MAY parse on whitespace-delimited word boundaries")
    add("tab separated", b"GET\t/django/hello/\tHTTP/1.1\r\n" + HOST + b"\r\n", group=g)
    add("bare CR line end", b"GET /django/hello/ HTTP/1.1\rHost: 127.0.0.1\r\n\r\n", group=g)
    add("NUL in target", get(b"/django/hel\x00lo/"), group=g)
    add("CR in target", get(b"/django/hel\rlo/"), group=g)
    add("control char in target", get(b"/django/hel\x01lo/"), group=g)
    add("space in target", get(b"/django/hel lo/"), group=g)
    add("DEL in target", get(b"/django/hel\x7flo/"), group=g)
    add("URL of 9 KiB", get(b"/django/" + b"a" * 9216 + b"/"), group=g)
    add("URL of 64 KiB", get(b"/django/" + b"a" * 65536 + b"/"), group=g)
    add("query of 16 KiB", get(b"/django/hello/?q=" + b"a" * 16384), group=g)

    # -- request targets ---------------------------------------------------
    g = "target"
    add("asterisk with GET", get(b"*"), group=g)
    add("OPTIONS asterisk", b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n", group=g)
    add("authority-form with GET", get(b"127.0.0.1:80"), group=g)
    add("CONNECT tunnel", b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", group=g)
    note = ("aiohttp keeps the Host header for an absolute-form target (gunicorn too); Django "
            "validates that Host against ALLOWED_HOSTS, so nothing is gained by the other host")
    add("absolute-form, other host", get(b"http://evil.example/django/hello/"), "upstream", group=g, note=note)
    add("absolute-form, userinfo", get(b"http://user:pw@evil.example/django/hello/"), "upstream", group=g, note=note)
    add("absolute-form, other host, bad Host", b"GET http://127.0.0.1/django/hello/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", group=g)
    add("scheme-relative target", get(b"//evil.example/django/hello/"), group=g)
    add("relative target", get(b"django/hello/"), group=g)
    add("traversal above root", get(b"/../../../../etc/passwd"), group=g)
    add("encoded traversal", get(b"/%2e%2e/%2e%2e/etc/passwd"), group=g)
    add("encoded slash traversal", get(b"/django/..%2F..%2Fetc%2Fpasswd"), group=g)
    add("backslash traversal", get(b"/..\\..\\etc\\passwd"), group=g)
    add("%2F inside a segment", get(b"/lifted%2Fhello/"), "lifted_hello", group=g)
    add("%2F to a Django view", get(b"/django%2Fhello/"), "django_hello", group=g)
    add("dot segments to a lifted view", get(b"/django/../lifted/hello/"), group=g,
        note="dot segments are not removed (as gunicorn, Django): /django/../lifted/hello/ matches nothing")
    add("invalid UTF-8, raw", get(b"/django/\xff\xfe/"), group=g)
    add("invalid UTF-8, escaped", get(b"/django/%ff%fe/"), group=g)
    add("invalid UTF-8, escaped, lifted prefix", get(b"/lifted/hello/%C3%28"), group=g)
    add("overlong UTF-8 slash", get(b"/django%c0%afhello/"), group=g)
    add("bad percent escape", get(b"/django/hello%zz/"), group=g)
    add("truncated percent escape", get(b"/django/hello/%"), group=g)
    add("escaped NUL in path", get(b"/django/hello%00/"), group=g)
    add("escaped CR LF in path", get(b"/django/hello%0d%0aSet-Cookie:x/"), group=g)
    add("escaped CR LF in path, lifted", get(b"/lifted/hello%0d%0a/"), group=g)

    # -- header fields -----------------------------------------------------
    g = "header"
    add("space before colon", get(b"/django/hello/", b"X-A : b"), group=g)
    add("space in name", get(b"/django/hello/", b"X A: b"), group=g)
    add("non-token name", get(b"/django/hello/", b"X(A): b"), group=g)
    add("empty name", get(b"/django/hello/", b": b"), group=g)
    add("no colon", get(b"/django/hello/", b"JustText"), group=g)
    add("NUL in name", get(b"/django/hello/", b"X-\x00A: b"), group=g)
    add("NUL in value", get(b"/django/hello/", b"X-A: b\x00c"), group=g)
    add("NUL in value, lifted", get(b"/lifted/hello/", b"X-A: b\x00c"), group=g)
    add("CR in value", get(b"/django/hello/", b"X-A: b\rc"), group=g)
    add("bare LF splitting a value", get(b"/django/hello/", b"X-A: b\nX-Injected: c"), group=g)
    add("control char in value", get(b"/django/hello/", b"X-A: b\x01c"), group=g)
    add("obs-fold continuation", get(b"/django/hello/", b"X-A: b", b" folded"), group=g)
    add("obs-fold hiding a request", get(b"/django/hello/", b"X-A: b", b" GET /django/canary/ HTTP/1.1"), group=g)
    add("value of 9 KiB", get(b"/django/hello/", b"X-A: " + b"v" * 9216), group=g)
    add("name of 9 KiB", get(b"/django/hello/", b"X-" + b"n" * 9216 + b": v"), group=g)
    add("256 header fields", get(b"/django/hello/", *[b"X-%d: v" % i for i in range(256)]), group=g)
    add("header section of 1 MiB", get(b"/django/hello/", *[b"X-%d: %s" % (i, b"v" * 8000) for i in range(128)]), group=g)
    # RFC 9112 (3.2): 400. aiohttp refuses it from 3.14 on; before, Django
    # checks SERVER_NAME (the bound address) against ALLOWED_HOSTS instead.
    add("no Host in HTTP/1.1", b"GET /django/hello/ HTTP/1.1\r\n\r\n",
        "4xx" if AIOHTTP_VERSION >= (3, 14) else "upstream", group=g,
        note="aiohttp < 3.14 serves it, with SERVER_NAME checked against ALLOWED_HOSTS")
    add("two Host fields", get(b"/django/hello/", b"Host: evil.example"), group=g)
    add("Host with a path", b"GET /django/hello/ HTTP/1.1\r\nHost: 127.0.0.1/evil\r\n\r\n", group=g)
    add("Host not allowed", b"GET /django/hello/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", group=g)
    add("Host not allowed, lifted", b"GET /lifted/hello/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", group=g)
    add("Host with spaces", b"GET /django/hello/ HTTP/1.1\r\nHost: 127.0.0.1 evil\r\n\r\n", group=g)
    add("unknown expectation", get(b"/django/hello/", b"Expect: 200-ok"), group=g)

    # -- body framing and smuggling ---------------------------------------
    g = "framing"
    te = b"Transfer-Encoding: chunked"
    add("CL.TE smuggling", post(b"/django/echo/", b"Content-Length: 4", te, body=b"0\r\n\r\n" + CANARY), group=g)
    add("TE.CL smuggling", post(b"/django/echo/", te, b"Content-Length: 3", body=b"8\r\nSMUGGLED\r\n0\r\n\r\n" + CANARY), group=g)
    add("CL.TE smuggling, lifted", post(b"/lifted/echo/", b"Content-Length: 4", te, body=b"0\r\n\r\n" + LIFTED_CANARY), group=g)
    add("two Content-Length", post(b"/django/echo/", b"Content-Length: 5", b"Content-Length: 50", body=b"hello" + CANARY), group=g)
    add("Content-Length list", post(b"/django/echo/", b"Content-Length: 5, 50", body=b"hello" + CANARY), group=g)
    add("negative Content-Length", post(b"/django/echo/", b"Content-Length: -1", body=b"hello"), group=g)
    add("signed Content-Length", post(b"/django/echo/", b"Content-Length: +5", body=b"hello"), group=g)
    add("hex Content-Length", post(b"/django/echo/", b"Content-Length: 0x5", body=b"hello"), group=g)
    add("non-numeric Content-Length", post(b"/django/echo/", b"Content-Length: five", body=b"hello"), group=g)
    add("Content-Length with space", post(b"/django/echo/", b"Content-Length: 1 2", body=b"hello"), group=g)
    add("huge Content-Length", post(b"/django/echo/", b"Content-Length: 99999999999999999999999", body=b"hello"), group=g)
    add("obfuscated TE, xchunked", post(b"/django/echo/", b"Transfer-Encoding: xchunked", b"Content-Length: 5", body=b"hello" + CANARY), group=g)
    add("TE chunked, identity", post(b"/django/echo/", b"Transfer-Encoding: chunked, identity", body=b"5\r\nhello\r\n0\r\n\r\n" + CANARY), group=g)
    add("TE gzip only", post(b"/django/echo/", b"Transfer-Encoding: gzip", body=b"hello" + CANARY), group=g)
    add("TE twice", post(b"/django/echo/", te, b"Transfer-Encoding: identity", body=b"5\r\nhello\r\n0\r\n\r\n" + CANARY), group=g)
    add("TE with space before colon", post(b"/django/echo/", b"Transfer-Encoding : chunked", b"Content-Length: 5", body=b"hello" + CANARY), group=g)
    add("TE with vertical tab", post(b"/django/echo/", b"Transfer-Encoding:\x0bchunked", b"Content-Length: 5", body=b"hello" + CANARY), group=g)
    add("TE in HTTP/1.0", b"POST /django/echo/ HTTP/1.0\r\n" + HOST + te + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + CANARY, group=g)
    add("chunk size not hex", post(b"/django/echo/", te, body=b"zz\r\nhello\r\n0\r\n\r\n"), group=g)
    add("chunk size overflow", post(b"/django/echo/", te, body=b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), group=g)
    add("chunk size negative", post(b"/django/echo/", te, body=b"-5\r\nhello\r\n0\r\n\r\n"), group=g)
    add("chunk size 0x prefix", post(b"/django/echo/", te, body=b"0x5\r\nhello\r\n0\r\n\r\n"), group=g)
    add("chunk size with space", post(b"/django/echo/", te, body=b"5 \r\nhello\r\n0\r\n\r\n" + CANARY), group=g)
    add("chunk data too long", post(b"/django/echo/", te, body=b"3\r\nhello\r\n0\r\n\r\n" + CANARY), group=g)
    add("chunk missing CRLF", post(b"/django/echo/", te, body=b"5\r\nhelloX0\r\n\r\n" + CANARY), group=g)
    add("chunk LF only", post(b"/django/echo/", te, body=b"5\nhello\n0\n\n" + CANARY), group=g)
    add("chunk extension junk", post(b"/django/echo/", te, body=b"5;\x00=\r\nhello\r\n0\r\n\r\n"), group=g)
    add("chunked, lifted, bad size", post(b"/lifted/echo/", te, body=b"zz\r\nhello\r\n0\r\n\r\n"), group=g)
    add("truncated Content-Length body", post(b"/django/echo/", b"Content-Length: 100", body=b"only ten b"), half_close=True, group=g)
    add("truncated Content-Length body, lifted", post(b"/lifted/echo/", b"Content-Length: 100", body=b"only ten b"), half_close=True, group=g)
    add("truncated chunked body", post(b"/django/echo/", te, body=b"64\r\nonly ten b"), half_close=True, group=g)
    add("chunked body without last chunk", post(b"/django/echo/", te, body=b"5\r\nhello\r\n"), half_close=True, group=g)
    add("truncated chunked body, lifted", post(b"/lifted/echo/", te, body=b"64\r\nonly ten b"), half_close=True, group=g)

    # -- websocket upgrades ------------------------------------------------
    g = "websocket"
    add("ws without key", get(b"/ws/", *WS), group=g)
    add("ws key not base64", get(b"/ws/", *WS, b"Sec-WebSocket-Key: !!!not-base64!!!"), group=g)
    add("ws key of 8 bytes", get(b"/ws/", *WS, b"Sec-WebSocket-Key: AAAAAAAAAAA="), group=g)
    add("ws version 12", get(b"/ws/", b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 12", GOOD_KEY), group=g)
    add("ws version missing", get(b"/ws/", b"Upgrade: websocket", b"Connection: Upgrade", GOOD_KEY), group=g)
    add("ws version not a number", get(b"/ws/", b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13abc", GOOD_KEY), group=g)
    add("ws Upgrade to something else", get(b"/ws/", b"Upgrade: h2c", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13", GOOD_KEY), group=g)
    add("ws without Connection: Upgrade", get(b"/ws/", b"Upgrade: websocket", b"Sec-WebSocket-Version: 13", GOOD_KEY), group=g)
    add("ws from a foreign Origin", get(b"/ws/", *WS, GOOD_KEY, b"Origin: http://evil.example"), group=g)
    add("ws from a null Origin", get(b"/ws/", *WS, GOOD_KEY, b"Origin: null"), group=g)
    note = "aiohttp's WebSocketResponse does not check RFC 6455's GET and HTTP/1.1 requirements"
    add("ws by POST", post(b"/ws/", *WS, GOOD_KEY, b"Content-Length: 0"), "upstream", group=g, note=note)
    add("ws in HTTP/1.0", get(b"/ws/", *WS, GOOD_KEY, version=b"HTTP/1.0"), "upstream", group=g, note=note)
    return c


CASES = _cases()
