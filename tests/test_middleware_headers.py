"""MIDDLEWARE's response headers on lifted views, a Django view beside each as the control.

SecurityMiddleware (headers, SSL redirect, SECURE_PROXY_SSL_HEADER),
XFrameOptionsMiddleware and Django's decorators, ContentSecurityPolicyMiddleware
(Django 6.0+), GZipMiddleware, ConditionalGetMiddleware; on HTTP responses,
streams and websocket handshakes.
"""

import asyncio
import gzip

import pytest
from aiohttp import ClientSession

from tests import middleware_support
from tests.middleware_support import STARTPROJECT, fetch, policy_headers
from tests.middleware_views import BIG, DJANGO_5, DJANGO_6

serve = middleware_support.serve  # the fixture

needs_django_5 = pytest.mark.skipif(
    not DJANGO_5, reason="Django's decorators keep coroutine views coroutines from Django 5.0"
)
needs_django_6 = pytest.mark.skipif(
    not DJANGO_6, reason="ContentSecurityPolicyMiddleware is new in Django 6.0"
)

STARTPROJECT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


async def test_startproject_headers_present_and_equal_on_both(serve):
    client = await serve()
    lifted, body = await fetch(client, "GET", "/lifted/page/")
    assert body == b"lifted page"
    django, _ = await fetch(client, "GET", "/django/page/")
    assert policy_headers(lifted) == policy_headers(django) == STARTPROJECT_HEADERS
    # Every method, error answers too (as Django's middleware adds them to its 404s).
    for method in ("HEAD", "OPTIONS"):
        response, _ = await fetch(client, method, "/lifted/page/")
        assert policy_headers(response) == STARTPROJECT_HEADERS, method
    refused, _ = await fetch(client, "POST", "/lifted/form/")  # CSRF: 403
    assert refused.status == 403
    assert policy_headers(refused) == STARTPROJECT_HEADERS


async def test_no_headers_without_the_middleware(serve):
    client = await serve(middleware=[])
    lifted, _ = await fetch(client, "GET", "/lifted/page/")
    django, _ = await fetch(client, "GET", "/django/page/")
    assert policy_headers(lifted) == policy_headers(django) == {}


async def test_settings_are_djangos(serve):
    client = await serve(
        SECURE_CONTENT_TYPE_NOSNIFF=False,
        SECURE_REFERRER_POLICY=["no-referrer", "strict-origin-when-cross-origin"],
        SECURE_CROSS_ORIGIN_OPENER_POLICY=None,
        X_FRAME_OPTIONS="SAMEORIGIN",
    )
    lifted, _ = await fetch(client, "GET", "/lifted/page/")
    django, _ = await fetch(client, "GET", "/django/page/")
    assert policy_headers(lifted) == policy_headers(django) == {
        "Referrer-Policy": "no-referrer,strict-origin-when-cross-origin",
        "X-Frame-Options": "SAMEORIGIN",
    }


async def test_streams_and_websocket_handshakes_get_the_headers_too(serve):
    client = await serve()
    stream, body = await fetch(client, "GET", "/lifted/stream/")
    assert body == b"data: hello\n\n"
    assert policy_headers(stream) == STARTPROJECT_HEADERS
    async with ClientSession() as session:
        # A raw handshake: aiohttp's client hides the 101 response's headers.
        handshake = {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }
        async with session.get(client.make_url("/lifted/ws/"), headers=handshake) as response:
            assert response.status == 101
            assert policy_headers(response) == STARTPROJECT_HEADERS
    async with client.ws_connect("/lifted/ws/") as ws:
        assert await ws.receive_str(timeout=5) == "hello"


async def test_answers_raised_by_the_view_get_the_headers(serve):
    """As Django's middleware adds them to redirects, 404s and 500s (the control)."""
    client = await serve()
    django_404, _ = await fetch(client, "GET", "/django/no-such-page/")
    assert policy_headers(django_404) == STARTPROJECT_HEADERS
    for kind, status in (("redirect", 302), ("gone", 410), ("404", 404), ("403", 403), ("500", 500)):
        response, _ = await fetch(client, "GET", f"/lifted/answers/?as={kind}")
        assert response.status == status, kind
        assert policy_headers(response) == STARTPROJECT_HEADERS, kind
    # aiodjango's own refusal before the view: a Host not in ALLOWED_HOSTS.
    refused, _ = await fetch(client, "GET", "/lifted/page/", headers={"Host": "evil.example"})
    assert refused.status == 400
    assert policy_headers(refused) == STARTPROJECT_HEADERS


async def test_aiohttp_middlewares_see_the_headers_of_the_lifted_views_response(settings, aiohttp_client):
    """The headers are set before the response leaves the lifted view's handler:
    an application middleware around it sees the response as it will be sent."""
    from aiohttp import web

    from aiodjango import get_aio_application

    settings.ROOT_URLCONF = "tests.middleware_urls"
    settings.MIDDLEWARE = STARTPROJECT
    seen = {}

    @web.middleware
    async def outer(request, handler):
        response = await handler(request)
        seen[request.path] = policy_headers(response)
        return response

    client = await aiohttp_client(get_aio_application(middlewares=[outer]))
    response, _ = await fetch(client, "GET", "/lifted/page/")
    assert policy_headers(response) == seen["/lifted/page/"] == STARTPROJECT_HEADERS


@needs_django_5
async def test_xframe_options_decorators(serve):
    client = await serve()
    for name, expected in (("sameorigin", "SAMEORIGIN"), ("frameable", None)):
        lifted, _ = await fetch(client, "GET", f"/lifted/{name}/")
        django, _ = await fetch(client, "GET", f"/django/{name}/")
        assert lifted.headers.get("X-Frame-Options") == expected, name
        assert policy_headers(lifted) == policy_headers(django), name
    # The view's own header wins over @xframe_options_deny, as on a Django response.
    response, _ = await fetch(client, "GET", "/lifted/deny-set-by-view/")
    assert response.headers.getall("X-Frame-Options") == ["SAMEORIGIN"]


async def test_a_header_the_view_sets_is_kept(serve):
    client = await serve(X_FRAME_OPTIONS="SAMEORIGIN")
    response, _ = await fetch(client, "GET", "/lifted/deny-set-by-view/")
    assert response.headers.getall("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# -- HTTPS: SECURE_SSL_REDIRECT, SECURE_PROXY_SSL_HEADER, HSTS ---------------------


async def test_ssl_redirect_as_django(serve):
    client = await serve(SECURE_SSL_REDIRECT=True)
    lifted, _ = await fetch(client, "GET", "/lifted/page/?a=1")
    django, _ = await fetch(client, "GET", "/django/page/?a=1")
    host = f"127.0.0.1:{client.port}"
    assert (lifted.status, lifted.headers["Location"]) == (301, f"https://{host}/lifted/page/?a=1")
    assert (django.status, django.headers["Location"]) == (301, f"https://{host}/django/page/?a=1")
    # Only SecurityMiddleware, first in MIDDLEWARE, saw the redirect: its
    # headers, not XFrameOptionsMiddleware's (as Django does).
    assert policy_headers(lifted) == policy_headers(django)
    assert "X-Frame-Options" not in lifted.headers
    # A websocket handshake gets the same answer, which no client follows.
    response, _ = await fetch(client, "GET", "/lifted/ws/", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert response.status == 301


async def test_ssl_redirect_exempt_and_host(serve):
    client = await serve(
        SECURE_SSL_REDIRECT=True,
        SECURE_REDIRECT_EXEMPT=[r"^lifted/pa"],
        SECURE_SSL_HOST="secure.example",
    )
    response, body = await fetch(client, "GET", "/lifted/page/")
    assert (response.status, body) == (200, b"lifted page")
    response, _ = await fetch(client, "GET", "/lifted/form/")
    assert response.headers["Location"] == "https://secure.example/lifted/form/"


async def test_proxy_ssl_header(serve):
    client = await serve(
        SECURE_SSL_REDIRECT=True,
        SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
        SECURE_HSTS_SECONDS=3600,
        SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    )
    behind_proxy = {"X-Forwarded-Proto": "https"}
    lifted, body = await fetch(client, "GET", "/lifted/scheme/", headers=behind_proxy)
    django, django_body = await fetch(client, "GET", "/django/scheme/", headers=behind_proxy)
    assert lifted.status == django.status == 200
    answer = await lifted.json()
    assert answer["scheme"] == "https" and answer["secure"] is True
    assert answer["url"] in (f"https://127.0.0.1:{client.port}/lifted/scheme/", None)  # None: aiohttp 3.9
    assert await django.json() == {"scheme": "https", "secure": True}
    # HSTS is for secure requests only, in Django's words.
    assert lifted.headers["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    assert policy_headers(lifted) == policy_headers(django)
    # "http" (or any other value, or the first of several) is not secure.
    for value in ("http", "HTTPS", "http, https"):
        lifted, _ = await fetch(client, "GET", "/lifted/scheme/", headers={"X-Forwarded-Proto": value})
        django, _ = await fetch(client, "GET", "/django/scheme/", headers={"X-Forwarded-Proto": value})
        assert lifted.status == django.status == 301, value
        assert "Strict-Transport-Security" not in lifted.headers
    lifted, _ = await fetch(client, "GET", "/lifted/scheme/", headers={"X-Forwarded-Proto": "https, http"})
    assert lifted.status == 200


async def test_proxy_ssl_header_without_security_middleware(serve):
    client = await serve(middleware=[], SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
    response, _ = await fetch(client, "GET", "/lifted/scheme/", headers={"X-Forwarded-Proto": "https"})
    assert (await response.json())["secure"] is True
    response, _ = await fetch(client, "GET", "/lifted/scheme/")
    assert (await response.json())["secure"] is False


# -- ContentSecurityPolicyMiddleware (Django 6.0+) ---------------------------------


@needs_django_6
async def test_csp_header_nonce_and_override(serve):
    from django.utils.csp import CSP

    client = await serve(
        middleware=STARTPROJECT + ["django.middleware.csp.ContentSecurityPolicyMiddleware"],
        SECURE_CSP={"default-src": [CSP.SELF], "script-src": [CSP.SELF, CSP.NONCE]},
        SECURE_CSP_REPORT_ONLY={"img-src": ["https:"]},
    )
    lifted, _ = await fetch(client, "GET", "/lifted/csp/none/")
    django, _ = await fetch(client, "GET", "/django/page/")
    assert lifted.headers["Content-Security-Policy"] == "default-src 'self'; script-src 'self'"
    assert lifted.headers["Content-Security-Policy-Report-Only"] == "img-src https:"
    assert policy_headers(lifted) == policy_headers(django)

    nonces = set()
    for path in ("/lifted/csp/nonce/", "/django/csp/nonce/", "/lifted/csp/nonce/"):
        response, _ = await fetch(client, "GET", path)
        nonce = (await response.json())["nonce"]
        assert len(nonce) >= 16
        assert response.headers["Content-Security-Policy"] == (
            f"default-src 'self'; script-src 'self' 'nonce-{nonce}'"
        ), path
        nonces.add(nonce)
    assert len(nonces) == 3  # one per request

    lifted, _ = await fetch(client, "GET", "/lifted/csp/override/")
    django, _ = await fetch(client, "GET", "/django/csp/override/")
    assert lifted.headers["Content-Security-Policy"] == "default-src 'none'"
    assert policy_headers(lifted) == policy_headers(django)


async def test_csp_nonce_is_none_without_the_middleware(serve):
    client = await serve()
    response, _ = await fetch(client, "GET", "/lifted/csp/nonce/")
    assert await response.json() == {"nonce": None}


# -- GZipMiddleware, ConditionalGetMiddleware ----------------------------------------


@pytest.mark.parametrize("in_thread", [False, True], ids=["on-the-loop", "in-a-thread"])
async def test_gzip_as_django(serve, monkeypatch, in_thread):
    if in_thread:  # bodies above COMPRESS_IN_THREAD are compressed off the event loop
        from aiodjango.policies import content

        monkeypatch.setattr(content, "COMPRESS_IN_THREAD", 100)
    client = await serve(middleware=["django.middleware.gzip.GZipMiddleware"] + STARTPROJECT)
    compressed = {"Accept-Encoding": "gzip"}
    async with ClientSession(auto_decompress=False) as raw:
        lifted, body = await fetch(raw, "GET", client.make_url("/lifted/big/"), headers=compressed)
        django, django_body = await fetch(raw, "GET", client.make_url("/django/big/"), headers=compressed)
    assert lifted.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).decode() == gzip.decompress(django_body).decode() == BIG
    assert int(lifted.headers["Content-Length"]) == len(body) < len(BIG)
    assert policy_headers(lifted) == policy_headers(django)
    assert lifted.headers["Vary"] == "Accept-Encoding"
    # Not asked for: not compressed, but Vary says why.
    lifted, body = await fetch(client, "GET", "/lifted/big/", headers={"Accept-Encoding": "identity"})
    assert body.decode() == BIG and "Content-Encoding" not in lifted.headers
    assert lifted.headers["Vary"] == "Accept-Encoding"
    # Short bodies are left alone, as Django leaves them.
    lifted, body = await fetch(client, "GET", "/lifted/page/", headers=compressed)
    assert body == b"lifted page" and "Vary" not in lifted.headers


async def test_conditional_get_as_django(serve):
    client = await serve(middleware=["django.middleware.http.ConditionalGetMiddleware"] + STARTPROJECT)
    lifted, _ = await fetch(client, "GET", "/lifted/big/")
    django, _ = await fetch(client, "GET", "/django/big/")
    etag = lifted.headers["ETag"]
    assert etag == django.headers["ETag"]  # the same body, the same tag
    again, body = await fetch(client, "GET", "/lifted/big/", headers={"If-None-Match": etag})
    assert (again.status, body) == (304, b"")
    assert again.headers["ETag"] == etag
    changed, body = await fetch(client, "GET", "/lifted/big/", headers={"If-None-Match": '"other"'})
    assert changed.status == 200 and body.decode() == BIG
    head, _ = await fetch(client, "HEAD", "/lifted/big/")
    assert "ETag" not in head.headers  # GET only, as Django


async def test_many_requests_at_once_keep_their_own_headers(serve):
    client = await serve(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"), SECURE_HSTS_SECONDS=60)

    async def one(i):
        headers = {"X-Forwarded-Proto": "https"} if i % 2 else {}
        response, _ = await fetch(client, "GET", "/lifted/page/", headers=headers)
        return i % 2, "Strict-Transport-Security" in response.headers, response.headers["X-Frame-Options"]

    results = await asyncio.gather(*(one(i) for i in range(64)))
    assert all(bool(secure) == hsts for secure, hsts, _ in results)
    assert {xfo for _, _, xfo in results} == {"DENY"}
