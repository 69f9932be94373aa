"""Django REST framework behind aiodjango: a DefaultRouter of viewsets, beside a lifted websocket."""

import asyncio
import json

import aiohttp
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from aiodjango.testing import StaticAioLiveServerTestCase
from tests.compat.models import Author, Book
from tests.compat.support import TIMEOUT, fetch

JSON = {"Accept": "application/json"}


class RestFrameworkTests(StaticAioLiveServerTestCase):
    def test_browsable_api(self):
        dune = Book.objects.create(title="Dune")
        root = fetch(self.live_server_url + "/api/", headers={"Accept": "text/html"})
        self.assertEqual(root.status, 200)
        self.assertTrue(root.headers["Content-Type"].startswith("text/html"))
        self.assertIn("Api Root", root.text)
        for name in ("books", "authors", "stats"):
            self.assertIn(f"{self.live_server_url}/api/{name}/", root.text)
        books = fetch(self.live_server_url + "/api/books/", headers={"Accept": "text/html"})
        self.assertEqual(books.status, 200)
        self.assertIn("Book List", books.text)
        self.assertIn("Dune", books.text)
        # The browsable API's own static files, from the finders.
        css = fetch(self.live_server_url + "/static/rest_framework/css/bootstrap.min.css")
        self.assertEqual(css.status, 200)
        # JSON, by Accept and by format suffix.
        self.assertEqual(fetch(self.live_server_url + "/api/books/", headers=JSON).json(), [{"id": dune.id, "title": "Dune", "author": None}])
        self.assertEqual(fetch(self.live_server_url + "/api/books.json").json()[0]["title"], "Dune")

    def test_token_authenticated_writes(self):
        User.objects.create_user("ada", password="pw")
        url = self.live_server_url
        obtained = fetch(url + "/api-token-auth/", method="POST", data=b"username=ada&password=pw",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(obtained.status, 200, obtained.text)
        token = obtained.json()["token"]
        self.assertEqual(Token.objects.get(user__username="ada").key, token)

        def send(method, path, body=None, token=token):
            headers = {"Content-Type": "application/json", **JSON}
            if token:
                headers["Authorization"] = f"Token {token}"
            data = json.dumps(body).encode() if body is not None else None
            return fetch(url + path, method=method, data=data, headers=headers)

        refused = send("POST", "/api/books/", {"title": "Dune"}, token=None)
        self.assertEqual(refused.status, 401)
        self.assertEqual(refused.headers["WWW-Authenticate"], "Token")
        self.assertEqual(send("POST", "/api/books/", {"title": "Dune"}, token="wrong").status, 401)

        author = send("POST", "/api/authors/", {"name": "Frank Herbert"})
        self.assertEqual(author.status, 201, author.text)
        created = send("POST", "/api/books/", {"title": "Dune", "author": author.json()["id"]})
        self.assertEqual(created.status, 201, created.text)
        book_id = created.json()["id"]
        changed = send("PATCH", f"/api/books/{book_id}/", {"title": "Dune Messiah"})
        self.assertEqual((changed.status, changed.json()["title"]), (200, "Dune Messiah"))
        self.assertEqual(send("GET", "/api/stats/").json(), {"books": 1, "authors": 1})
        self.assertEqual(Book.objects.get().author, Author.objects.get(name="Frank Herbert"))
        self.assertEqual(send("DELETE", f"/api/books/{book_id}/").status, 204)
        self.assertFalse(Book.objects.exists())

    def test_the_lifted_websocket_sees_what_the_api_wrote(self):
        token = Token.objects.create(user=User.objects.create_user("ada")).key
        url = self.live_server_url

        async def scenario():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(url + "/ws/books/") as ws:
                    first = await ws.receive_json(timeout=TIMEOUT)
                    async with session.post(url + "/api/books/", json={"title": "Emma"},
                                            headers={"Authorization": f"Token {token}"}) as response:
                        assert response.status == 201, await response.text()
                    await ws.send_str("refresh")
                    second = await ws.receive_json(timeout=TIMEOUT)
                async with session.get(url + "/lifted/books/") as response:
                    lifted = await response.json()
            return first, second, lifted

        first, second, lifted = asyncio.run(scenario())
        self.assertEqual(first, {"books": []})
        self.assertEqual(second, {"books": ["Emma"]})
        self.assertEqual(lifted, {"books": ["Emma"], "view": "lifted"})
