"""Sessions and users in lifted handlers, with Django's own login view on the WSGI side."""

import asyncio
import logging
import re

import pytest
from aiohttp import WSServerHandshakeError
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connections


pytest_plugins = ["aiodjango.testing"]  # aio_app, aio_client

pytestmark = [pytest.mark.urls("tests.citizens_urls"), pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
async def ada():
    user = await sync_to_async(User.objects.create_user)("ada", password=PASSWORD)
    yield user
    await sync_to_async(connections.close_all)()


async def poll(probe, timeout=5.0):
    """``probe()``'s first truthy answer, polled for at most ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = probe()
        if answer or asyncio.get_running_loop().time() > deadline:
            return answer
        await asyncio.sleep(0.01)


async def django_login(client, username="ada", password=PASSWORD):
    """Log in through django.contrib.auth's LoginView, served by Django (the WSGI bridge)."""
    r = await client.get("/accounts/login/")
    assert r.status == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', await r.text()).group(1)
    r = await client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        allow_redirects=False,
    )
    return r


async def whoami(client):
    r = await client.get("/citizens/whoami/")
    assert r.status == 200
    return await r.json()


async def test_websocket_handler_sees_the_user_logged_in_by_django(aio_client, ada):
    r = await django_login(aio_client)
    assert r.status == 302, await r.text()
    assert "sessionid" in {c.key for c in aio_client.session.cookie_jar}
    async with aio_client.ws_connect("/citizens/whoami/ws/") as ws:
        assert await ws.receive_json(timeout=5) == {"user": "ada"}
    assert (await whoami(aio_client))["user"] == "ada"


async def test_wrong_password_stays_anonymous(aio_client, ada):
    r = await django_login(aio_client, password="wrong")
    assert r.status == 200  # the form again, with errors
    async with aio_client.ws_connect("/citizens/whoami/ws/") as ws:
        assert await ws.receive_json(timeout=5) == {"user": None}


async def test_session_changes_are_saved_and_the_cookie_set(aio_client):
    first = await aio_client.get("/citizens/whoami/")
    assert (await first.json()) == {"user": None, "visits": 1}
    assert "sessionid" in first.cookies
    assert "Cookie" in first.headers["Vary"]
    assert (await whoami(aio_client))["visits"] == 2
    assert (await whoami(aio_client))["visits"] == 3


async def test_websocket_saves_the_session_with_save_session(aio_client, ada):
    await django_login(aio_client)
    for expected in (1, 2):
        async with aio_client.ws_connect("/citizens/whoami/ws/") as ws:
            assert await ws.receive_json(timeout=5) == {"user": "ada"}
            await ws.send_str("count")
            assert await ws.receive_json(timeout=5) == {"ws_messages": expected}


async def test_login_required_answers(aio_client, ada):
    r = await aio_client.get("/citizens/protected/?x=1", allow_redirects=False)
    assert r.status == 302
    assert r.headers["Location"] == "/accounts/login/?next=/citizens/protected/%3Fx%3D1"
    r = await aio_client.get("/citizens/protected/api/")
    assert r.status == 403
    r = await aio_client.get("/citizens/protected/view/")
    assert r.status == 403
    with pytest.raises(WSServerHandshakeError) as info:
        await aio_client.ws_connect("/citizens/protected/ws/")
    assert info.value.status == 403

    await django_login(aio_client)
    for path in ("/citizens/protected/", "/citizens/protected/api/", "/citizens/protected/view/"):
        r = await aio_client.get(path, allow_redirects=False)
        assert r.status == 200, path
        assert await r.json() == {"user": "ada"}
    async with aio_client.ws_connect("/citizens/protected/ws/") as ws:
        assert await ws.receive_json(timeout=5) == {"user": "ada"}


async def test_login_url_setting_is_followed(aio_client, settings):
    settings.LOGIN_URL = "login"  # a URL name, resolved as Django resolves it
    r = await aio_client.get("/citizens/protected/", allow_redirects=False)
    assert r.headers["Location"] == "/accounts/login/?next=/citizens/protected/"
    settings.LOGIN_URL = "https://sso.example/login"
    r = await aio_client.get("/citizens/protected/", allow_redirects=False)
    location = r.headers["Location"]
    assert location.startswith("https://sso.example/login?next=http%3A//127.0.0.1%3A")


async def test_lifted_login_and_logout_are_seen_by_django(aio_client, ada):
    r = await aio_client.get("/django/protected/", allow_redirects=False)
    assert r.status == 302  # Django's own login_required
    # CsrfViewMiddleware is in MIDDLEWARE: lifted POSTs carry the token, as Django's do.
    csrf = {"X-CSRFToken": (await (await aio_client.get("/citizens/csrf/")).json())["token"]}
    r = await aio_client.post(
        "/citizens/login/", data={"username": "ada", "password": "nope"}, headers=csrf
    )
    assert r.status == 401
    r = await aio_client.post(
        "/citizens/login/", data={"username": "ada", "password": PASSWORD}, headers=csrf
    )
    assert r.status == 200 and (await r.json())["user"] == "ada"
    assert {"sessionid", "csrftoken"} <= set(r.cookies)  # new session, rotated CSRF token
    r = await aio_client.get("/django/protected/", allow_redirects=False)
    assert r.status == 200
    assert await r.text() == "django view, logged in"
    assert (await sync_to_async(User.objects.get)(pk=ada.pk)).last_login is not None

    csrf = {"X-CSRFToken": (await (await aio_client.get("/citizens/csrf/")).json())["token"]}
    r = await aio_client.post("/citizens/logout/", headers=csrf)  # the token rotated at login
    assert await r.json() == {"user": None}
    r = await aio_client.get("/django/protected/", allow_redirects=False)
    assert r.status == 302
    assert (await whoami(aio_client))["user"] is None


async def test_login_then_http_exception_still_sets_the_cookie(aio_client, ada):
    r = await aio_client.get("/citizens/raise-after-login/?username=ada", allow_redirects=False)
    assert r.status == 302
    assert "sessionid" in r.cookies
    assert (await whoami(aio_client))["user"] == "ada"


async def test_password_change_logs_other_sessions_out(aio_client, ada):
    await django_login(aio_client)
    assert (await whoami(aio_client))["user"] == "ada"

    def change():
        ada.set_password("another password")
        ada.save()

    await sync_to_async(change)()
    assert (await whoami(aio_client))["user"] is None  # the session hash check


async def test_cookie_changed_on_a_websocket_is_reported(aio_client, ada, caplog):
    await django_login(aio_client)
    with caplog.at_level(logging.WARNING, "aiodjango.auth"):
        async with aio_client.ws_connect("/citizens/whoami/ws/") as ws:
            await ws.receive_json(timeout=5)
            await ws.send_str("logout")  # whoami_ws logs out: its cookie can't follow
            await ws.close()

        found = await poll(lambda: [r for r in caplog.records if r.name == "aiodjango.auth"])
    (record,) = found
    assert "'sessionid' cookie of /citizens/whoami/ws/ changed but could not be sent" in (
        record.getMessage()
    )
    # The logout itself happened: the old session is gone.
    assert (await whoami(aio_client))["user"] is None
