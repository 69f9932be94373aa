"""django-cors-headers on Django views, through the WSGI bridge.

CORS on lifted views is not covered here yet (TODO: once lifted views get
CORS headers, test ``/api/lifted/ping/`` the same way).
"""

from aiodjango.testing import AioLiveServerTestCase
from tests.compat.support import fetch

ALLOWED = "https://app.example"


class CorsTests(AioLiveServerTestCase):
    def test_an_allowed_origin_gets_the_headers(self):
        r = fetch(self.live_server_url + "/api/ping/", headers={"Origin": ALLOWED})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"pong": True, "view": "django"})
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], ALLOWED)
        self.assertIn("origin", r.headers["Vary"].lower())

    def test_a_preflight_is_answered(self):
        r = fetch(
            self.live_server_url + "/api/books/", method="OPTIONS",
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], ALLOWED)
        self.assertIn("POST", r.headers["Access-Control-Allow-Methods"])
        self.assertIn("authorization", r.headers["Access-Control-Allow-Headers"])
        self.assertEqual(r.headers["Access-Control-Max-Age"], "86400")

    def test_other_origins_and_other_urls_get_none(self):
        other = fetch(self.live_server_url + "/api/ping/", headers={"Origin": "https://evil.example"})
        self.assertEqual(other.status, 200)
        self.assertIsNone(other.headers["Access-Control-Allow-Origin"])
        outside = fetch(self.live_server_url + "/books/", headers={"Origin": ALLOWED})  # not CORS_URLS_REGEX
        self.assertIsNone(outside.headers["Access-Control-Allow-Origin"])
