"""csrf_protect: Django's CsrfViewMiddleware logic on the unsafe methods of lifted views."""

import logging
import re

import pytest
from asgiref.sync import sync_to_async
from django.db import connections


pytest_plugins = ["aiodjango.testing"]  # aio_app, aio_client

pytestmark = pytest.mark.urls("tests.citizens_urls")


def csrf_records(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "django.security.csrf"]


async def token_of(client, path="/citizens/csrf/"):
    r = await client.get(path)
    assert r.status == 200
    assert "csrftoken" in {c.key for c in client.session.cookie_jar}
    return (await r.json())["token"]


async def test_post_without_cookie_or_token_gets_403(aio_client, caplog):
    with caplog.at_level(logging.WARNING, "django.security.csrf"):
        r = await aio_client.post("/citizens/csrf/", data={"field": "x"})
    assert r.status == 403
    assert "CSRF verification failed" in await r.text()  # Django's CSRF_FAILURE_VIEW
    assert csrf_records(caplog) == ["Forbidden (CSRF cookie not set.): /citizens/csrf/"]


async def test_token_in_header_or_form_field_passes(aio_client):
    token = await token_of(aio_client)
    r = await aio_client.post("/citizens/csrf/", headers={"X-CSRFToken": token})
    assert r.status == 200
    r = await aio_client.post(
        "/citizens/csrf/", data={"field": "kept", "csrfmiddlewaretoken": token}
    )
    assert r.status == 200
    assert await r.json() == {"accepted": True, "field": "kept"}  # the body is still readable
    # Safe methods are never checked.
    r = await aio_client.get("/citizens/csrf/")
    assert r.status == 200


async def test_cookie_is_kept_between_requests(aio_client):
    await token_of(aio_client)
    first = {c.key: c.value for c in aio_client.session.cookie_jar}["csrftoken"]
    await token_of(aio_client)
    assert {c.key: c.value for c in aio_client.session.cookie_jar}["csrftoken"] == first


async def test_refusals(aio_client, caplog):
    token = await token_of(aio_client)
    caplog.set_level(logging.WARNING, "django.security.csrf")
    cases = [
        ({}, "CSRF token missing."),
        ({"X-CSRFToken": "x" * 64}, "CSRF token from the 'X-Csrftoken' HTTP header incorrect."),
        ({"X-CSRFToken": "short"}, "CSRF token from the 'X-Csrftoken' HTTP header has incorrect length."),
        (
            {"X-CSRFToken": token, "Origin": "https://evil.example"},
            "Origin checking failed - https://evil.example does not match any trusted origins.",
        ),
    ]
    for headers, reason in cases:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            caplog.clear()
            r = await aio_client.request(method, "/citizens/csrf/", headers=headers)
            assert r.status == 403, (method, headers)
            assert csrf_records(caplog) == [f"Forbidden ({reason}): /citizens/csrf/"]


async def test_same_origin_passes(aio_client):
    token = await token_of(aio_client)
    origin = f"http://127.0.0.1:{aio_client.port}"
    r = await aio_client.post("/citizens/csrf/", headers={"X-CSRFToken": token, "Origin": origin})
    assert r.status == 200


async def test_aiohttp_class_based_view(aio_client):
    r = await aio_client.post("/citizens/csrf/view/")
    assert r.status == 403
    token = await token_of(aio_client, "/citizens/csrf/view/")
    r = await aio_client.post("/citizens/csrf/view/", headers={"X-CSRFToken": token})
    assert r.status == 200


async def test_token_from_a_django_page_is_accepted(aio_client):
    r = await aio_client.get("/accounts/login/")  # served by Django, sets the cookie
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', await r.text()).group(1)
    r = await aio_client.post("/citizens/csrf/", data={"csrfmiddlewaretoken": token})
    assert r.status == 200


@pytest.mark.django_db(transaction=True)
async def test_csrf_use_sessions(aio_client, settings):
    settings.CSRF_USE_SESSIONS = True
    try:
        r = await aio_client.get("/citizens/csrf/")
        token = (await r.json())["token"]
        cookies = {c.key for c in aio_client.session.cookie_jar}
        assert "sessionid" in cookies and "csrftoken" not in cookies
        r = await aio_client.post("/citizens/csrf/", headers={"X-CSRFToken": token})
        assert r.status == 200
        r = await aio_client.post("/citizens/csrf/", headers={"X-CSRFToken": "x" * 64})
        assert r.status == 403
    finally:
        await sync_to_async(connections.close_all)()


async def test_multipart_form_with_a_file(aio_client):
    from aiohttp import FormData

    token = await token_of(aio_client)
    form = FormData()
    form.add_field("csrfmiddlewaretoken", token)
    form.add_field("field", "with a file")
    form.add_field("upload", b"x" * 10_000, filename="x.bin")
    r = await aio_client.post("/citizens/csrf/", data=form)
    assert r.status == 200
    assert await r.json() == {"accepted": True, "field": "with a file"}
