"""aiodjango.testing's live servers: the test cases, the thread, and the ``aio_live_server`` fixture.

Under the main suite's settings (a SQLite test database in a file);
``tests/compat`` runs the same checks with in-memory SQLite, where the test's
connection is shared with the server's threads.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path

from aiodjango.auth import get_user
from aiodjango.testing import (
    AioLiveServer,
    AioLiveServerTestCase,
    AioLiveServerThread,
    StaticAioLiveServerTestCase,
    login_cookies,
)
from tests.compat.support import chromium_page, fetch, ws_exchange

pytest_plugins = ["aiodjango.testing"]  # aio_live_server

STATIC_DIR = Path(__file__).resolve().parent / "compat" / "static"

# -- the project served: a Django page, a lifted view and a lifted websocket ---


async def _usernames():
    return [user.username async for user in User.objects.order_by("username")]


async def lifted_users(request):
    return web.json_response({"users": await _usernames(), "view": "lifted"})


def django_users(request):
    return HttpResponse(", ".join(User.objects.order_by("username").values_list("username", flat=True)))


async def users_ws(request):
    user = await get_user(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"me": user.get_username() or None})
    async for message in ws:
        if message.type == web.WSMsgType.TEXT and message.data == "users":
            await ws.send_json({"users": await _usernames()})
    return ws


PAGE = """<!DOCTYPE html>
<html><head><title>users</title></head><body>
<p id="django">%s</p><p id="lifted"></p><p id="ws"></p>
<script>
fetch("/lifted/users/").then((r) => r.json()).then((data) => {
  document.getElementById("lifted").textContent = data.users.join(", ");
});
const ws = new WebSocket("ws://" + location.host + "/ws/users/");
ws.onmessage = (event) => {
  const data = JSON.parse(event.data);
  if (data.users) {
    document.getElementById("ws").textContent = data.users.join(", ");
    ws.close();
  } else {
    ws.send("users");
  }
};
</script>
</body></html>
"""


def page(request):
    names = ", ".join(User.objects.order_by("username").values_list("username", flat=True))
    return HttpResponse(PAGE % names)


urlpatterns = [
    path("", page),
    path("lifted/users/", lifted_users),
    path("django/users/", django_users),
    path("ws/users/", users_ws),
]


def check_lifted_django_and_websocket(url: str) -> None:
    """What a test sees through ``url``: the data it created, from the three kinds of views."""
    assert fetch(url + "/lifted/users/").json() == {"users": ["ada", "grace"], "view": "lifted"}
    django = fetch(url + "/django/users/")
    assert (django.status, django.text) == (200, "ada, grace")
    messages = ws_exchange(url + "/ws/users/", ["users"], receive=2, cookies=login_cookies(User.objects.get(username="ada")))
    assert messages == [{"me": "ada"}, {"users": ["ada", "grace"]}]


# -- the test cases --------------------------------------------------------------


@override_settings(ROOT_URLCONF=__name__)
class LiveServerTests(AioLiveServerTestCase):
    def test_lifted_views_django_views_and_websockets_see_the_tests_data(self):
        User.objects.create_user("ada")
        User.objects.create_user("grace")
        self.assertIsInstance(self.server_thread, AioLiveServerThread)
        self.assertRegex(self.live_server_url, r"^http://localhost:\d+$")
        check_lifted_django_and_websocket(self.live_server_url)

    def test_the_live_servers_host_is_allowed_and_others_are_not(self):
        self.assertIn("localhost", settings.ALLOWED_HOSTS)
        for path_ in ("/lifted/users/", "/django/users/"):
            r = fetch(self.live_server_url + path_, headers={"Host": "evil.example"})
            self.assertEqual(r.status, 400, path_)

    def test_in_a_browser(self):
        User.objects.create_user("ada")
        User.objects.create_user("grace")
        with chromium_page() as (browser_page, errors):
            response = browser_page.goto(self.live_server_url + "/")
            self.assertEqual(response.status, 200)
            self.assertEqual(browser_page.text_content("#django"), "ada, grace")
            browser_page.locator("#lifted", has_text="ada, grace").wait_for()
            browser_page.locator("#ws", has_text="ada, grace").wait_for()
        self.assertEqual(errors, [])


@override_settings(ROOT_URLCONF=__name__, STATICFILES_DIRS=[str(STATIC_DIR)])
class StaticLiveServerTests(StaticAioLiveServerTestCase):
    """Static files from the finders (as ``StaticLiveServerTestCase``), lifted views beside them."""

    def test_static_files_from_the_finders(self):
        r = fetch(self.live_server_url + "/static/compat/compat.css")
        self.assertEqual(r.status, 200)
        self.assertIn("#123456", r.text)
        self.assertEqual(fetch(self.live_server_url + "/static/compat/missing.css").status, 404)
        self.assertEqual(fetch(self.live_server_url + "/lifted/users/").json()["users"], [])


@override_settings(ROOT_URLCONF=__name__)
class MediaLiveServerTests(AioLiveServerTestCase):
    """``MEDIA_URL`` from ``MEDIA_ROOT``, as Django's live server serves it."""

    @classmethod
    def setUpClass(cls):
        cls.media_root = tempfile.mkdtemp()
        cls.addClassCleanup(shutil.rmtree, cls.media_root, ignore_errors=True)
        Path(cls.media_root, "upload.txt").write_text("uploaded")
        media = override_settings(MEDIA_ROOT=cls.media_root, MEDIA_URL="/media/")
        media.enable()
        cls.addClassCleanup(media.disable)
        super().setUpClass()

    def test_media_files(self):
        r = fetch(self.live_server_url + "/media/upload.txt")
        self.assertEqual((r.status, r.text), (200, "uploaded"))


async def extra_route(request):
    return web.Response(text="extra route")


class ThreadTests(AioLiveServerTestCase):
    """A custom application, through ``server_thread_class``."""

    class server_thread_class(AioLiveServerThread):
        def get_application(self):
            app = super().get_application()
            app.router.add_get("/custom-route/", extra_route)
            return app

    def test_custom_application(self):
        self.assertEqual(fetch(self.live_server_url + "/custom-route/").text, "extra route")
        self.assertEqual(fetch(self.live_server_url + "/sync/").status, 200)  # tests.urls, through the bridge


# -- the thread's life cycle -----------------------------------------------------


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_stop_closes_open_websockets_and_joins_the_thread():
    server = AioLiveServer("localhost", start=False)
    server.thread.shutdown_timeout = 0.5
    server.start()
    port = server.thread.port
    opened, release = threading.Event(), threading.Event()
    result = {}

    def hold_a_websocket():
        import asyncio

        import aiohttp

        async def run():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(server.url + "/ws/users/") as ws:
                    result["first"] = await ws.receive_json(timeout=10)
                    opened.set()
                    result["last"] = await ws.receive(timeout=30)

        asyncio.run(run())
        release.set()

    client = threading.Thread(target=hold_a_websocket)
    client.start()
    try:
        assert opened.wait(10)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5  # 2 x shutdown_timeout, and some slack
        assert not server.thread.is_alive()
        assert release.wait(10)
        assert result["first"] == {"me": None}
        assert result["last"].type in (web.WSMsgType.CLOSE, web.WSMsgType.CLOSED, web.WSMsgType.CLOSING)
        assert _refused(port)
        server.stop()  # stopping twice is harmless
    finally:
        server.stop()
        client.join(10)


@pytest.mark.django_db(transaction=True)
def test_an_application_that_is_not_one_is_refused_by_name():
    with pytest.raises(TypeError, match="must be an aiohttp.web.Application, got 'nope'"):
        AioLiveServer("localhost", application=lambda wsgi: "nope")


@pytest.mark.django_db(transaction=True)
def test_a_port_in_use_is_an_error_not_a_hang():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            AioLiveServer(f"localhost:{port}")


@pytest.mark.parametrize("addr", ["localhost:http", "localhost:", ":8000", "[::1]:x"])
def test_bad_addresses_are_refused(addr):
    with pytest.raises(ValueError, match="must be 'host' or 'host:port'"):
        AioLiveServer(addr, start=False)


# -- the pytest fixture ----------------------------------------------------------


@pytest.mark.urls(__name__)
def test_fixture_serves_lifted_views_django_views_and_websockets(aio_live_server):
    User.objects.create_user("ada")
    User.objects.create_user("grace")
    assert str(aio_live_server) == aio_live_server.url
    assert aio_live_server + "/x/" == aio_live_server.url + "/x/"
    assert repr(aio_live_server) == f"<AioLiveServer listening at {aio_live_server.url}>"
    check_lifted_django_and_websocket(aio_live_server.url)


@pytest.mark.urls(__name__)
def test_fixture_is_a_running_server_with_a_clean_database(aio_live_server):
    assert isinstance(aio_live_server.thread, AioLiveServerThread)
    assert aio_live_server.thread.is_alive()
    assert fetch(aio_live_server + "/lifted/users/").json()["users"] == []


@pytest.mark.urls(__name__)
async def test_fixture_in_an_async_test(aio_live_server):
    """As with Playwright's async API: the test's event loop and the server's are apart."""
    import aiohttp
    from asgiref.sync import sync_to_async

    await sync_to_async(User.objects.create_user)("ada")
    async with aiohttp.ClientSession() as session:
        async with session.get(aio_live_server + "/lifted/users/") as response:
            assert await response.json() == {"users": ["ada"], "view": "lifted"}
        async with session.get(aio_live_server + "/django/users/") as response:
            assert await response.text() == "ada"
        async with session.ws_connect(aio_live_server + "/ws/users/") as ws:
            assert await ws.receive_json(timeout=10) == {"me": None}
