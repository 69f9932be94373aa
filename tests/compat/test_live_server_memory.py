"""The live servers with an in-memory SQLite test database: the test's connection, shared.

As Django's live server does, the test's in-memory connection is handed to
the server's threads: the WSGI bridge's (Django views) and the lifted views'
database threads.  Data the test creates is visible to every kind of view.
"""

import asyncio

import aiohttp
import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from rest_framework.authtoken.models import Token

from aiodjango.testing import AioLiveServerTestCase, StaticAioLiveServerTestCase
from tests.compat.models import Book
from tests.compat.support import TIMEOUT, chromium_page, fetch, ws_exchange

pytest_plugins = ["aiodjango.testing"]  # aio_live_server


def ws_exchange_all(url: str, send: list[str]) -> list:
    """Send each text on a websocket and read one JSON answer to each."""

    async def run() -> list:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as ws:
                answers = []
                for text in send:
                    await ws.send_str(text)
                    answers.append(await ws.receive_json(timeout=TIMEOUT))
                return answers

    return asyncio.run(run())


def check_all_views_see(url: str, titles: list[str]) -> None:
    assert fetch(url + "/lifted/books/").json() == {"books": titles, "view": "lifted"}
    api = fetch(url + "/api/books/", headers={"Accept": "application/json"})
    assert [book["title"] for book in api.json()] == titles
    assert ws_exchange(url + "/ws/books/", ["refresh"], receive=2) == [{"books": titles}, {"books": titles}]


class InMemoryTests(AioLiveServerTestCase):
    def test_the_database_is_in_memory_and_shared(self):
        self.assertTrue(connection.is_in_memory_db())
        self.assertEqual(list(self.server_thread.connections_override), ["default"])
        # Django views (the bridge's threads) and lifted views (their database
        # threads) use the test's own connection object.
        mine = id(connections["default"])
        for kind in ("django", "lifted"):
            for _ in range(3):  # several requests: several threads
                self.assertEqual(fetch(f"{self.live_server_url}/connection/{kind}/").json(), {"connection": mine}, kind)
        Book.objects.create(title="Dune")
        Book.objects.create(title="Emma")
        check_all_views_see(self.live_server_url, ["Dune", "Emma"])
        # And the other way round: what the server writes, the test reads.
        token = Token.objects.create(user=User.objects.create_user("writer"))
        created = fetch(
            self.live_server_url + "/api/books/", method="POST", data=b'{"title": "Faust"}',
            headers={"Authorization": f"Token {token.key}", "Content-Type": "application/json"},
        )
        self.assertEqual(created.status, 201, created.text)
        self.assertEqual(Book.objects.get(pk=created.json()["id"]).title, "Faust")


class InMemoryWebsocketTests(AioLiveServerTestCase):
    def test_a_websockets_orm_calls_after_its_handshake(self):
        # First thing on this server: the calls run in threads that never saw
        # a request_started (each borrows one for the call only).
        messages = ws_exchange_all(self.live_server_url + "/connection/ws/", ["which"] * 3)
        self.assertEqual(messages, [{"connection": id(connections["default"])}] * 3)


class InMemoryBrowserTests(StaticAioLiveServerTestCase):
    def test_a_page_of_the_admin_with_its_static_files(self):
        with chromium_page() as (page, errors):
            loaded = []
            page.on("response", lambda response: loaded.append((response.url, response.status)))
            response = page.goto(self.live_server_url + "/admin/login/")
            self.assertEqual(response.status, 200)
            page.wait_for_load_state("load")
        # The admin's CSS came from the finders, through the same server.
        self.assertIn((self.live_server_url + "/static/admin/css/base.css", 200), loaded)
        self.assertEqual(errors, [])


def test_fixture_with_an_in_memory_database(aio_live_server):
    assert connection.is_in_memory_db()
    Book.objects.create(title="Ulysses")
    check_all_views_see(aio_live_server.url, ["Ulysses"])


@pytest.mark.django_db(transaction=True)
def test_the_connection_is_not_shared_after_the_server_stops():
    from aiodjango.testing import AioLiveServer

    server = AioLiveServer("localhost")
    try:
        assert fetch(server + "/lifted/books/").json()["books"] == []
    finally:
        server.stop()
    # Back to Django's rule: the connection belongs to this thread alone.
    assert connection.allow_thread_sharing is False
