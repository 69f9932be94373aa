"""aiodjango.testing: the Django TestCase mixin, the sync client and the pytest fixtures."""

import pytest
from aiohttp import WSServerHandshakeError
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connections
from django.test import TransactionTestCase, override_settings

from aiodjango import get_aio_application
from aiodjango.testing import AioClient, AioClientMixin, aforce_login, alogin

pytest_plugins = ["aiodjango.testing"]  # aio_app, aio_client

FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@override_settings(ROOT_URLCONF="tests.citizens_urls", PASSWORD_HASHERS=FAST_HASHER)
class MixinTests(AioClientMixin, TransactionTestCase):
    """What a project's own Django tests look like."""

    def test_lifted_views_websockets_and_django_views_with_one_client(self):
        ada = User.objects.create_user("ada", password="pw")
        client = self.aio_client
        self.assertEqual(client.get("/citizens/whoami/").json()["user"], None)
        client.force_login(ada)
        r = client.get("/citizens/whoami/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"user": "ada", "visits": 1})
        with client.ws_connect("/citizens/whoami/ws/") as ws:
            self.assertEqual(ws.receive_json(), {"user": "ada"})
        r = client.get("/django/protected/", allow_redirects=False)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.text, "django view, logged in")
        # The handler's ORM sees what the test committed.
        User.objects.create_user("grace")
        self.assertEqual(client.get("/citizens/users/").json(), {"users": 2})

    def test_login_and_logout(self):
        User.objects.create_user("ada", password="pw")
        self.assertFalse(self.aio_client.login(username="ada", password="wrong"))
        self.assertTrue(self.aio_client.login(username="ada", password="pw"))
        self.assertIn("sessionid", self.aio_client.cookies)
        self.assertEqual(self.aio_client.get("/citizens/protected/api/").status, 200)
        self.aio_client.logout()
        self.assertEqual(self.aio_client.get("/citizens/protected/api/").status, 403)

    def test_refusals_are_visible(self):
        r = self.aio_client.get("/citizens/hello/", headers={"Host": "evil.example"})
        self.assertEqual(r.status, 400)
        with self.assertRaises(WSServerHandshakeError):
            self.aio_client.ws_connect("/citizens/ws/echo/", origin="https://evil.example")
        with self.aio_client.ws_connect("/citizens/ws/echo/") as ws:
            ws.send_str("hi")
            self.assertEqual(ws.receive_str(), "echo: hi")
        self.assertTrue(ws.closed)


@pytest.mark.urls("tests.citizens_urls")
def test_aio_client_as_a_context_manager():
    client = AioClient(get_aio_application())
    with pytest.raises(RuntimeError, match="not started"):
        client._run(client._start())
    with client:
        r = client.get("/citizens/hello/")
        assert (r.status, r.text) == (200, "hello citizen")
        assert client.url("/x/").startswith("http://127.0.0.1:")
        thread = client._thread
    assert not thread.is_alive()
    client.close()  # twice is fine


@pytest.fixture
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = FAST_HASHER


@pytest.mark.urls("tests.citizens_urls")
@pytest.mark.django_db(transaction=True)
async def test_pytest_fixtures(aio_client, fast_passwords):
    ada = await sync_to_async(User.objects.create_user)("ada", password="pw")
    try:
        r = await aio_client.get("/citizens/protected/api/")
        assert r.status == 403
        await aforce_login(aio_client, ada)
        r = await aio_client.get("/citizens/protected/api/")
        assert await r.json() == {"user": "ada"}
        aio_client.session.cookie_jar.clear()
        assert not await alogin(aio_client, username="ada", password="wrong")
        assert await alogin(aio_client, username="ada", password="pw")
        async with aio_client.ws_connect("/citizens/protected/ws/") as ws:
            assert await ws.receive_json(timeout=5) == {"user": "ada"}
    finally:
        await sync_to_async(connections.close_all)()


@pytest.mark.urls("tests.citizens_urls")
async def test_aio_client_fixture_serves_the_root_urlconf(aio_client):
    r = await aio_client.get("/citizens/hello/")
    assert await r.text() == "hello citizen"
