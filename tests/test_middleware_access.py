"""MIDDLEWARE that refuses requests, on lifted views, a Django view beside each as the control:
CsrfViewMiddleware (on by default now), LoginRequiredMiddleware (Django 5.1+), CommonMiddleware."""

import asyncio
import logging
import re

import pytest
from aiohttp import FormData, WSServerHandshakeError
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connections

from tests import middleware_support
from tests.middleware_support import STARTPROJECT, fetch
from tests.middleware_views import DJANGO_5, DJANGO_51

serve = middleware_support.serve  # the fixture

needs_django_5 = pytest.mark.skipif(
    not DJANGO_5, reason="Django's decorators keep coroutine views coroutines from Django 5.0"
)
needs_django_51 = pytest.mark.skipif(
    not DJANGO_51, reason="LoginRequiredMiddleware and login_not_required are new in Django 5.1"
)

LOGIN_REQUIRED = STARTPROJECT + ["django.contrib.auth.middleware.LoginRequiredMiddleware"]


def csrf_records(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "django.security.csrf"]


async def csrf_token(client):
    """A token and its cookie, from a Django page (as a browser gets them)."""
    response, body = await fetch(client, "GET", "/accounts/login/")
    assert response.status == 200
    return re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()


# -- CsrfViewMiddleware ---------------------------------------------------------


async def test_csrf_refuses_unsafe_methods_by_default_as_django(serve, caplog):
    client = await serve()
    caplog.set_level(logging.WARNING, "django.security.csrf")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        caplog.clear()
        lifted, body = await fetch(client, method, "/lifted/form/", data=b"x")
        django, django_body = await fetch(client, method, "/django/form/", data=b"x")
        assert lifted.status == django.status == 403, method
        assert b"CSRF verification failed" in body  # Django's CSRF_FAILURE_VIEW
        assert csrf_records(caplog) == [
            "Forbidden (CSRF cookie not set.): /lifted/form/",
            "Forbidden (CSRF cookie not set.): /django/form/",
        ]
    for method in ("GET", "HEAD", "OPTIONS"):
        response, _ = await fetch(client, method, "/lifted/form/")
        assert response.status == 200, method


async def test_csrf_token_accepted_on_both(serve):
    client = await serve()
    token = await csrf_token(client)
    for path in ("/lifted/form/", "/django/form/"):
        response, body = await fetch(client, "POST", path, data={"csrfmiddlewaretoken": token})
        assert response.status == 200, path
        response, body = await fetch(client, "DELETE", path, headers={"X-CSRFToken": token})
        assert response.status == 200 and body.endswith(b" DELETE"), path
    origin = {"X-CSRFToken": token, "Origin": "https://evil.example"}
    response, _ = await fetch(client, "POST", "/lifted/form/", headers=origin)
    assert response.status == 403


@needs_django_5
async def test_csrf_exempt_decorator(serve):
    client = await serve()
    for path in ("/lifted/exempt/", "/django/exempt/"):
        response, body = await fetch(client, "POST", path, data=b"x")
        assert response.status == 200, path
        assert body.endswith(b"exempt POST")


async def test_csrf_exempt_attribute(serve):
    client = await serve()
    response, body = await fetch(client, "POST", "/lifted/exempt-attribute/")
    assert (response.status, body) == (200, b"lifted exempt POST")


async def test_class_based_view_markers(serve):
    middleware = LOGIN_REQUIRED if DJANGO_51 else STARTPROJECT
    client = await serve(middleware=middleware)
    response, body = await fetch(client, "POST", "/lifted/open-view/")  # anonymous, no token
    assert (response.status, body) == (200, b"open POST")


async def test_token_in_header_leaves_a_multipart_body_to_the_view(serve):
    client = await serve()
    token = await csrf_token(client)
    form = FormData()
    form.add_field("file", b"x" * 100_000, filename="a.bin")
    response, body = await fetch(client, "POST", "/lifted/upload/", data=form, headers={"X-CSRFToken": token})
    assert response.status == 200, body
    assert await response.json() == {"file": 100_000}


async def test_websocket_handshake_keeps_the_origin_check(serve):
    client = await serve()
    async with client.ws_connect("/lifted/ws/") as ws:  # a GET: no CSRF token needed
        assert await ws.receive_str(timeout=5) == "hello"
    with pytest.raises(WSServerHandshakeError) as info:
        await client.ws_connect("/lifted/ws/", headers={"Origin": "https://evil.example"})
    assert info.value.status == 403


async def test_csrf_skipped_for_lifted_views_by_setting(serve):
    skip = {"django.middleware.csrf.CsrfViewMiddleware": "skip"}
    client = await serve(AIODJANGO_MIDDLEWARE=skip)
    lifted, _ = await fetch(client, "POST", "/lifted/form/")
    django, _ = await fetch(client, "POST", "/django/form/")
    assert (lifted.status, django.status) == (200, 403)  # Django views keep it


async def test_csrf_protect_still_works_without_the_middleware(serve):
    client = await serve(middleware=[])
    response, _ = await fetch(client, "POST", "/lifted/form/")
    assert response.status == 200  # no CsrfViewMiddleware, no check


async def test_csrf_protect_and_the_middleware_check_once(serve, monkeypatch):
    from aiodjango import security

    client = await serve()
    token = await csrf_token(client)
    calls = []
    check = security._csrf_check
    monkeypatch.setattr(security, "_csrf_check", lambda *args: calls.append(args) or check(*args))
    response, body = await fetch(client, "POST", "/lifted/csrf-protect/", headers={"X-CSRFToken": token})
    assert (response.status, body) == (200, b"protected POST")
    assert len(calls) == 1  # @csrf_protect finds the request accepted already
    response, _ = await fetch(client, "POST", "/lifted/csrf-protect/")
    assert response.status == 403


# -- LoginRequiredMiddleware (Django 5.1+) ----------------------------------------


@pytest.fixture
async def ada(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = await sync_to_async(User.objects.create_user)("ada", password="pw")
    yield user
    await sync_to_async(connections.close_all)()


@needs_django_51
async def test_login_required_redirects_anonymous_users_as_django(serve):
    client = await serve(middleware=LOGIN_REQUIRED)
    lifted, _ = await fetch(client, "GET", "/lifted/private/?x=1")
    django, _ = await fetch(client, "GET", "/django/page/?x=1")
    assert lifted.status == django.status == 302
    assert lifted.headers["Location"] == "/accounts/login/?next=/lifted/private/%3Fx%3D1"
    assert django.headers["Location"] == "/accounts/login/?next=/django/page/%3Fx%3D1"
    # POST too: CSRF comes first in MIDDLEWARE, as in Django.
    token = await csrf_token(client)
    lifted, _ = await fetch(client, "POST", "/lifted/private/", headers={"X-CSRFToken": token})
    assert lifted.status == 302
    with pytest.raises(WSServerHandshakeError) as info:
        await client.ws_connect("/lifted/private/ws/")
    assert info.value.status == 403  # a browser can't follow a redirect there


@needs_django_51
async def test_login_url_and_next_field_as_django(serve):
    client = await serve(middleware=LOGIN_REQUIRED, LOGIN_URL="https://sso.example/login")
    lifted, _ = await fetch(client, "GET", "/lifted/private/")
    assert lifted.headers["Location"] == (
        f"https://sso.example/login?next=http%3A//127.0.0.1%3A{client.port}/lifted/private/"
    )


@needs_django_51
async def test_login_not_required(serve):
    client = await serve(middleware=LOGIN_REQUIRED)
    for path in ("/lifted/public/", "/django/public/"):
        response, body = await fetch(client, "GET", path)
        assert response.status == 200, path
    response, body = await fetch(client, "GET", "/lifted/public/")
    assert body == b"lifted public"


@needs_django_51
async def test_aiodjango_login_required_keeps_its_own_answer(serve):
    client = await serve(middleware=LOGIN_REQUIRED)
    response, _ = await fetch(client, "GET", "/lifted/own-check/")
    assert response.status == 403  # raise_exception=True, not the middleware's redirect


@needs_django_51
@pytest.mark.django_db(transaction=True)
async def test_logged_in_users_pass(serve, ada):
    client = await serve(middleware=LOGIN_REQUIRED)
    token = await csrf_token(client)  # Django's login page: login_not_required
    response, _ = await fetch(
        client, "POST", "/accounts/login/", data={"username": "ada", "password": "pw", "csrfmiddlewaretoken": token}
    )
    assert response.status == 302
    for path in ("/lifted/private/", "/django/page/", "/lifted/own-check/"):
        response, _ = await fetch(client, "GET", path)
        assert response.status == 200, path
    async with client.ws_connect("/lifted/private/ws/") as ws:
        assert await ws.receive_str(timeout=5) == "hello"


@needs_django_51
async def test_login_required_without_authentication_middleware_order(serve):
    # A project listing LoginRequiredMiddleware gets its check on every
    # lifted view, concurrently, without mixing requests up.
    client = await serve(middleware=LOGIN_REQUIRED)
    answers = await asyncio.gather(
        *(fetch(client, "GET", "/lifted/public/" if i % 2 else "/lifted/private/") for i in range(20))
    )
    assert [r.status for r, _ in answers] == [302, 200] * 10


# -- CommonMiddleware -----------------------------------------------------------------


async def test_disallowed_user_agents_as_django(serve, caplog):
    client = await serve(DISALLOWED_USER_AGENTS=[re.compile(r"EvilBot")])
    bot = {"User-Agent": "EvilBot/1.0"}
    caplog.set_level(logging.WARNING, "django.request")
    lifted, _ = await fetch(client, "GET", "/lifted/page/", headers=bot)
    django, _ = await fetch(client, "GET", "/django/page/", headers=bot)
    assert lifted.status == django.status == 403
    assert "Forbidden (Permission denied): /lifted/page/" in [r.getMessage() for r in caplog.records]
    response, _ = await fetch(client, "GET", "/lifted/page/")
    assert response.status == 200


async def test_prepend_www_as_django(serve):
    client = await serve(PREPEND_WWW=True, ALLOWED_HOSTS=["example.com", "www.example.com"])
    host = {"Host": "example.com"}
    lifted, _ = await fetch(client, "GET", "/lifted/page/?q=1", headers=host)
    django, _ = await fetch(client, "GET", "/django/page/?q=1", headers=host)
    assert lifted.status == django.status == 301
    assert lifted.headers["Location"] == "http://www.example.com/lifted/page/?q=1"
    assert django.headers["Location"] == "http://www.example.com/django/page/?q=1"
    response, _ = await fetch(client, "GET", "/lifted/page/", headers={"Host": "www.example.com"})
    assert response.status == 200


async def test_append_slash_reaches_django_which_redirects(serve):
    client = await serve()
    response, _ = await fetch(client, "GET", "/lifted/page")
    assert (response.status, response.headers["Location"]) == (301, "/lifted/page/")
