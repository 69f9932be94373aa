"""django-debug-toolbar on Django views under DEBUG, through the WSGI bridge."""

import re

from django.test import override_settings

from aiodjango.testing import StaticAioLiveServerTestCase
from tests.compat.models import Book
from tests.compat.support import fetch


@override_settings(DEBUG=True)
class DebugToolbarTests(StaticAioLiveServerTestCase):
    def test_the_toolbar_is_injected_and_its_panels_answer(self):
        Book.objects.create(title="Dune")
        page = fetch(self.live_server_url + "/books/")
        self.assertEqual(page.status, 200)
        self.assertIn("<li>Dune</li>", page.text)
        self.assertIn('id="djDebug"', page.text)
        # Its own views and static files are served by the same server.
        request_id = re.search(r'data-(?:request|store)-id="([^"]+)"', page.text)
        panel_url = re.search(r'data-render-panel-url="([^"]+)"', page.text).group(1)
        name = "request_id" if "data-request-id" in page.text else "store_id"
        panel = fetch(f"{self.live_server_url}{panel_url}?{name}={request_id.group(1)}&panel_id=SQLPanel")
        self.assertEqual(panel.status, 200)
        self.assertIn("compat_book", panel.json()["content"])  # the page's query, seen by the SQL panel
        script = re.search(r'src="(/static/debug_toolbar/js/toolbar\.js[^"]*)"', page.text).group(1)
        self.assertEqual(fetch(self.live_server_url + script).status, 200)

    def test_lifted_views_are_left_alone(self):
        r = fetch(self.live_server_url + "/lifted/books/")
        self.assertEqual(r.json(), {"books": [], "view": "lifted"})
        self.assertNotIn("djDebug", r.text)


class WithoutDebugTests(StaticAioLiveServerTestCase):
    def test_no_toolbar_without_debug(self):
        page = fetch(self.live_server_url + "/books/")
        self.assertEqual(page.status, 200)
        self.assertNotIn("djDebug", page.text)
