"""Host and websocket Origin checks of lifted views, against real servers."""

import asyncio
import logging

import pytest
from aiohttp import WSServerHandshakeError

from aiodjango import get_aio_application
from aiodjango.security import check_host, check_origin
from tests.support.websocket import handshake

pytestmark = pytest.mark.urls("tests.citizens_urls")

HOSTS = [
    "127.0.0.1",
    "localhost",
    "LOCALHOST",
    "localhost.",
    "localhost:8000",
    "testserver:1",
    "sub.localhost",
    "[::1]",
    "[::1]:80",
    "example.com",
    "www.example.com",
    "evil.example:80",
    "bad host",
    "localhost:port",
    "127.0.0.1:99999",
    "a..b",
    "-",
    "",
]


async def serve(aiohttp_client):
    return await aiohttp_client(get_aio_application())


def records(caplog, name):
    return [r for r in caplog.records if r.name == name]


async def test_bad_host_gets_400_and_a_disallowed_host_record(aiohttp_client, caplog):
    client = await serve(aiohttp_client)
    with caplog.at_level(logging.ERROR, "django.security.DisallowedHost"):
        r = await client.get("/citizens/hello/", headers={"Host": "evil.example"})
    assert r.status == 400
    (record,) = records(caplog, "django.security.DisallowedHost")
    assert record.getMessage() == (
        "Invalid HTTP_HOST header: 'evil.example'. You may need to add 'evil.example' "
        "to ALLOWED_HOSTS."
    )
    assert record.status_code == 400
    r = await client.get("/citizens/hello/")
    assert r.status == 200
    assert await r.text() == "hello citizen"


async def test_bad_host_refused_before_websocket_handshake(aiohttp_client):
    client = await serve(aiohttp_client)
    with pytest.raises(WSServerHandshakeError) as info:
        await client.ws_connect("/citizens/ws/echo/", headers={"Host": "evil.example"})
    assert info.value.status == 400


async def _statuses(client, host, extra=None):
    headers = {"Host": host, **(extra or {})}
    lifted = await client.get("/citizens/hello/", headers=headers)
    django = await client.get("/django/hello/", headers=headers)
    return lifted.status, django.status


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"DEBUG": True, "ALLOWED_HOSTS": []},
        {"ALLOWED_HOSTS": [".example.com", "LOCALHOST"]},
        {"ALLOWED_HOSTS": ["*"]},
    ],
    ids=["default", "debug-empty", "subdomains", "star"],
)
async def test_host_validation_agrees_with_django(aiohttp_client, settings, overrides, caplog):
    for name, value in overrides.items():
        setattr(settings, name, value)
    client = await serve(aiohttp_client)
    caplog.set_level(logging.CRITICAL)
    answers = {host: await _statuses(client, host) for host in HOSTS}
    for host, (lifted, django) in answers.items():
        assert lifted == django, (host, answers)
    assert {lifted for lifted, _ in answers.values()} == {200, 400}


async def test_x_forwarded_host_agrees_with_django(aiohttp_client, settings, caplog):
    settings.USE_X_FORWARDED_HOST = True
    client = await serve(aiohttp_client)
    caplog.set_level(logging.CRITICAL)
    cases = [
        ("127.0.0.1", "evil.example", 400),
        ("evil.example", "localhost", 200),
        ("localhost", "localhost, evil.example", 400),
    ]
    for host, forwarded, expected in cases:
        statuses = await _statuses(client, host, {"X-Forwarded-Host": forwarded})
        assert statuses == (expected, expected), (host, forwarded)
    settings.USE_X_FORWARDED_HOST = False
    client = await serve(aiohttp_client)
    assert await _statuses(client, "localhost", {"X-Forwarded-Host": "evil.example"}) == (200, 200)


async def test_host_check_switched_off_globally_and_per_view(aiohttp_client, settings, caplog):
    client = await serve(aiohttp_client)
    r = await client.get("/citizens/any-host/", headers={"Host": "evil.example"})
    assert r.status == 200  # @check_host(False)
    assert await r.text() == "any host"
    settings.AIODJANGO_CHECK_HOST = False
    client = await serve(aiohttp_client)
    r = await client.get("/citizens/hello/", headers={"Host": "evil.example"})
    assert r.status == 200
    assert not records(caplog, "django.security.DisallowedHost")


async def test_debug_shows_the_reason(aiohttp_client, settings, caplog):
    settings.DEBUG = True
    client = await serve(aiohttp_client)
    r = await client.get("/citizens/hello/", headers={"Host": "evil.example"})
    assert r.status == 400
    assert "You may need to add 'evil.example' to ALLOWED_HOSTS" in await r.text()


# -- websocket Origin ----------------------------------------------------------


async def test_foreign_origin_gets_403_and_a_log_line_saying_why(aiohttp_client, caplog):
    client = await serve(aiohttp_client)
    with caplog.at_level(logging.WARNING, "django.security.csrf"):
        assert await handshake(client, "https://evil.example", path="/citizens/ws/echo/") == 403
    (record,) = records(caplog, "django.security.csrf")
    message = record.getMessage()
    assert "websocket handshake refused" in message
    assert "'evil.example'" in message and "ALLOWED_HOSTS" in message
    assert "CSRF_TRUSTED_ORIGINS" in message and message.endswith(": /citizens/ws/echo/")
    assert record.status_code == 403


async def test_origins_allowed_and_refused(aiohttp_client, caplog):
    client = await serve(aiohttp_client)
    port = client.port
    caplog.set_level(logging.CRITICAL)
    cases = {
        None: 101,  # not a browser
        f"http://127.0.0.1:{port}": 101,  # the request's own origin
        f"HTTP://127.0.0.1:{port}": 101,
        # Other allowed hosts, other scheme or port: refused, as Django's CSRF
        # origin check refuses them (tests/test_origin.py has the details).
        "http://localhost": 403,
        f"https://127.0.0.1:{port}": 403,
        "http://127.0.0.1": 403,
        "http://testserver": 403,
        "https://evil.example": 403,
        "http://127.0.0.1.evil.example": 403,
        "null": 403,
        "file://": 403,
        "http://[bad": 403,
    }
    for origin, expected in cases.items():
        assert await handshake(client, origin, path="/citizens/ws/echo/") == expected, origin
    # Plain HTTP requests are not checked (CSRF is csrf_protect's business).
    r = await client.get("/citizens/hello/", headers={"Origin": "https://evil.example"})
    assert r.status == 200


async def test_csrf_trusted_origins_allow(aiohttp_client, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.trusted.example", "https://exact.example:8443"]
    client = await serve(aiohttp_client)
    path = "/citizens/ws/echo/"
    assert await handshake(client, "https://a.trusted.example", path=path) == 101
    assert await handshake(client, "https://trusted.example", path=path) == 101
    assert await handshake(client, "https://exact.example:8443", path=path) == 101
    assert await handshake(client, "http://a.trusted.example", path=path) == 403
    assert await handshake(client, "https://exact.example", path=path) == 403


async def test_star_allowed_hosts_allows_the_same_host_only(aiohttp_client, settings):
    settings.ALLOWED_HOSTS = ["*"]
    client = await serve(aiohttp_client)
    path = "/citizens/ws/echo/"
    assert await handshake(client, f"http://127.0.0.1:{client.port}", path=path) == 101
    assert await handshake(client, "https://evil.example", path=path) == 403
    assert await handshake(client, "http://localhost", path=path) == 403


async def test_origin_check_switched_off_globally_and_per_view(aiohttp_client, settings):
    client = await serve(aiohttp_client)
    assert await handshake(client, "https://evil.example", path="/citizens/ws/public/") == 101
    settings.AIODJANGO_CHECK_ORIGIN = False
    client = await serve(aiohttp_client)
    assert await handshake(client, "https://evil.example", path="/citizens/ws/echo/") == 101


def test_switch_decorators():
    async def view(request):
        pass

    assert check_origin(False)(view) is view and view._aiodjango_check_origin is False
    assert check_origin(view) is view and view._aiodjango_check_origin is True
    assert check_host(True)(view)._aiodjango_check_host is True
    with pytest.raises(TypeError, match="takes True or False"):
        check_host("no")


async def test_origin_checked_when_on_for_the_view_only(aiohttp_client, settings):
    settings.AIODJANGO_CHECK_ORIGIN = False

    from tests import citizens_views

    original = getattr(citizens_views.echo_ws, "_aiodjango_check_origin", None)
    check_origin(True)(citizens_views.echo_ws)
    try:
        client = await serve(aiohttp_client)
    finally:
        if original is None:
            del citizens_views.echo_ws._aiodjango_check_origin
    assert await handshake(client, "https://evil.example", path="/citizens/ws/echo/") == 403
    assert await handshake(client, f"http://127.0.0.1:{client.port}", path="/citizens/ws/echo/") == 101



async def test_repeated_host_header_is_refused(aiohttp_client):
    """Refused by aiohttp's parser (3.13.4+), or by the Host check (as Django joins them)."""
    client = await serve(aiohttp_client)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(
            b"GET /citizens/hello/ HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n"
            b"Connection: close\r\n\r\n"
        )
        reply = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert reply.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), reply[:100]
