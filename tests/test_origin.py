"""The websocket Origin check is Django's CSRF origin check: scheme, host and port.

Real handshakes against a real server; Django's own ``CsrfViewMiddleware``
is the oracle for which origins pass.
"""

import logging

import pytest
from aiohttp import web
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.test import RequestFactory
from django.urls import path

from aiodjango import get_aio_application
from aiodjango.security import check_host
from tests.support.websocket import handshake


async def echo(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        await ws.send_str("echo: " + message.data)
    return ws


@check_host(False)
async def echo_any_host(request):
    return await echo(request)


urlpatterns = [
    path("ws/", echo),
    path("ws/any-host/", echo_any_host),
]

pytestmark = pytest.mark.urls(__name__)

PROXY_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.fixture
def site(settings):
    settings.ALLOWED_HOSTS = ["www.example.com", "api.example.com", "127.0.0.1"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://partner.example", "https://*.trusted.example"]
    return settings


def refusal(caplog):
    """The one django.security.csrf record of a refused handshake."""
    records = [r for r in caplog.records if r.name == "django.security.csrf"]
    assert len(records) == 1, [r.getMessage() for r in records]
    caplog.clear()
    return records[0]


async def test_wrong_scheme_is_refused_with_a_log_line(aiohttp_client, site, caplog):
    client = await aiohttp_client(get_aio_application())
    own = f"127.0.0.1:{client.port}"
    caplog.set_level(logging.WARNING, "django.security.csrf")
    # The page is http (no TLS, no proxy header): an https origin is another site.
    assert await handshake(client, f"https://{own}") == 403
    record = refusal(caplog)
    assert record.getMessage() == (
        f"Forbidden (websocket handshake refused: wrong scheme: the Origin 'https://{own}' "
        f"is https, the request http (behind a proxy that terminates HTTPS, set "
        f"SECURE_PROXY_SSL_HEADER), and the origin is not listed in CSRF_TRUSTED_ORIGINS): /ws/"
    )
    assert record.status_code == 403
    assert isinstance(record.request, HttpRequest)
    assert record.request.path == "/ws/"
    assert await handshake(client, f"http://{own}") == 101
    assert not caplog.records


async def test_https_page_needs_an_https_origin(aiohttp_client, site, caplog):
    site.SECURE_PROXY_SSL_HEADER = PROXY_HEADER
    client = await aiohttp_client(get_aio_application())
    caplog.set_level(logging.WARNING, "django.security.csrf")
    host = "www.example.com"
    assert await handshake(client, "https://www.example.com", host, proto="https") == 101
    assert await handshake(client, "http://www.example.com", host, proto="https") == 403
    message = refusal(caplog).getMessage()
    assert "wrong scheme: the Origin 'http://www.example.com' is http, the request https," in message
    # Without the proxy's header the request is http: the https page is refused.
    assert await handshake(client, "https://www.example.com", host) == 403
    message = refusal(caplog).getMessage()
    assert "wrong scheme" in message and "set SECURE_PROXY_SSL_HEADER" not in message
    # The header's value decides, as in Django.
    assert await handshake(client, "https://www.example.com", host, proto="http") == 403
    assert await handshake(client, "http://www.example.com", host, proto="http") == 101


async def test_wrong_port_is_refused_with_a_log_line(aiohttp_client, site, caplog):
    client = await aiohttp_client(get_aio_application())
    caplog.set_level(logging.WARNING, "django.security.csrf")
    other = client.port + 1 if client.port < 65535 else client.port - 1
    assert await handshake(client, f"http://127.0.0.1:{other}") == 403
    record = refusal(caplog)
    assert record.getMessage() == (
        f"Forbidden (websocket handshake refused: wrong port: the Origin "
        f"'http://127.0.0.1:{other}' has port {other}, the request {client.port} (its host is "
        f"'127.0.0.1:{client.port}'), and the origin is not listed in CSRF_TRUSTED_ORIGINS): /ws/"
    )
    assert isinstance(record.request, HttpRequest)
    # The port is the Host header's; the default port of the scheme when it has none.
    host = "www.example.com"
    assert await handshake(client, "http://www.example.com:8080", host) == 403
    assert "wrong port" in refusal(caplog).getMessage()
    assert await handshake(client, "http://www.example.com:8080", "www.example.com:8080") == 101
    assert await handshake(client, "http://www.example.com", "www.example.com:80") == 101
    assert await handshake(client, "http://www.example.com:80", host) == 101


async def test_hosts_not_allowed_and_other_hosts(aiohttp_client, site, caplog):
    client = await aiohttp_client(get_aio_application())
    caplog.set_level(logging.WARNING, "django.security.csrf")
    host = "www.example.com"
    assert await handshake(client, "http://evil.example", host) == 403
    message = refusal(caplog).getMessage()
    assert message.startswith(
        "Forbidden (websocket handshake refused: host not allowed: the host 'evil.example' "
        "of the Origin 'http://evil.example' is not in ALLOWED_HOSTS"
    )
    # Another host of the site is another origin (Django's rule): it needs
    # CSRF_TRUSTED_ORIGINS.
    assert await handshake(client, "http://api.example.com", host) == 403
    message = refusal(caplog).getMessage()
    assert "wrong host: the Origin 'http://api.example.com' is not the requested host" in message
    site.CSRF_TRUSTED_ORIGINS = ["http://api.example.com"]
    client = await aiohttp_client(get_aio_application())
    assert await handshake(client, "http://api.example.com", host) == 101
    # A view without the Host check still needs an allowed host for its own origin.
    path = "/ws/any-host/"
    assert await handshake(client, "http://evil.example", "evil.example", path=path) == 403
    message = refusal(caplog).getMessage()
    assert "host not allowed: the requested host 'evil.example' is not in ALLOWED_HOSTS" in message
    assert await handshake(client, "http://www.example.com", host, path=path) == 101


async def test_trusted_origins_pass_whatever_the_request(aiohttp_client, site, caplog):
    site.SECURE_PROXY_SSL_HEADER = PROXY_HEADER
    client = await aiohttp_client(get_aio_application())
    caplog.set_level(logging.WARNING, "django.security.csrf")
    for host, proto in [("www.example.com", None), ("127.0.0.1", "https"), (None, None)]:
        for origin in ["https://partner.example", "https://a.trusted.example", "https://trusted.example"]:
            assert await handshake(client, origin, host, proto) == 101, (origin, host, proto)
    # Scheme and port are part of a trusted origin, as Django reads them.
    for origin in ["http://partner.example", "https://partner.example:8443", "http://a.trusted.example"]:
        assert await handshake(client, origin, "www.example.com") == 403, origin
        assert "not listed in CSRF_TRUSTED_ORIGINS" in refusal(caplog).getMessage()


@pytest.mark.parametrize(
    "origin",
    ["null", "file://", "http://[bad", "http://host:port", "http://www.example.com/path",
     "http://user@www.example.com", "ws://www.example.com", "http://", "http://a..b"],
)
async def test_malformed_origins_are_refused(aiohttp_client, site, caplog, origin):
    client = await aiohttp_client(get_aio_application())
    caplog.set_level(logging.WARNING, "django.security.csrf")
    assert await handshake(client, origin, "www.example.com") == 403
    assert "CSRF_TRUSTED_ORIGINS" in refusal(caplog).getMessage()


async def test_no_origin_and_plain_http_are_not_checked(aiohttp_client, site, caplog):
    client = await aiohttp_client(get_aio_application())
    caplog.set_level(logging.WARNING, "django.security.csrf")
    assert await handshake(client, None, "www.example.com") == 101  # not a browser
    # A plain GET reaches the view (which wanted a websocket: aiohttp's 400).
    r = await client.get("/ws/", headers={"Origin": "https://evil.example", "Host": "www.example.com"})
    assert r.status == 400
    assert not [r for r in caplog.records if r.name == "django.security.csrf"]


def django_accepts(host, origin, proto):
    """Whether Django's CsrfViewMiddleware passes ``origin`` for a POST to ``host``.

    Public behaviour only: with no CSRF cookie, Django refuses either way, and
    its log line says whether it was the origin ("Origin checking failed").
    """
    extra = {"HTTP_ORIGIN": origin}
    if host is not None:
        extra["HTTP_HOST"] = host
    if proto is not None:
        extra["HTTP_X_FORWARDED_PROTO"] = proto
    request = RequestFactory().post("/", **extra)
    middleware = CsrfViewMiddleware(lambda r: None)
    middleware.process_request(request)
    logger = logging.getLogger("django.security.csrf")
    seen = []

    class Catch(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Catch()
    logger.addHandler(handler)
    try:
        response = middleware.process_view(request, lambda r: None, (), {})
    finally:
        logger.removeHandler(handler)
    assert response is not None and response.status_code == 403 and len(seen) == 1
    return "Origin checking failed" not in seen[0]


async def test_agrees_with_djangos_csrf_origin_check(aiohttp_client, site, caplog):
    site.SECURE_PROXY_SSL_HEADER = PROXY_HEADER
    client = await aiohttp_client(get_aio_application())
    caplog.set_level(logging.CRITICAL)
    own = f"127.0.0.1:{client.port}"
    hosts = ["www.example.com", "www.example.com:8443", own, "evil.example"]
    netlocs = ["www.example.com", "www.example.com:8443", "api.example.com", own, "evil.example"]
    origins = [f"{scheme}://{netloc}" for scheme in ("http", "https") for netloc in netlocs]
    origins += ["null", "https://partner.example", "https://x.trusted.example",
                "http://x.trusted.example", "https://partner.example:444"]
    answers = {}
    for host in hosts:
        for proto in (None, "https", "http"):
            for origin in origins:
                ours = await handshake(client, origin, host, proto, path="/ws/any-host/") == 101
                answers[host, proto, origin] = (ours, django_accepts(host, origin, proto))
    disagreements = {case: answer for case, answer in answers.items() if answer[0] != answer[1]}
    assert not disagreements
    accepted = sum(ours for ours, _ in answers.values())
    assert 0 < accepted < len(answers)
