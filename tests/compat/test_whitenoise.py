"""whitenoise as WSGI middleware around the application given to get_aio_application().

Its compressed files (``python -m whitenoise.compress``) are served by
Accept-Encoding through the WSGI bridge (its ``wsgi.file_wrapper``), next to
lifted views and Django views.
"""

import gzip
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import brotli
from django.core.wsgi import get_wsgi_application
from whitenoise import WhiteNoise

from aiodjango import get_aio_application
from aiodjango.testing import AioLiveServerTestCase, AioLiveServerThread
from tests.compat.models import Book
from tests.compat.support import fetch

CSS = "".join(f".book-{i} {{ color: #{i:06x}; margin: {i % 7}px; }}\n" for i in range(2000)).encode()


class WhiteNoiseThread(AioLiveServerThread):
    static_root = ""

    def get_application(self):
        # As a project's wsgi.py: whitenoise around Django's WSGI application.
        wsgi = WhiteNoise(get_wsgi_application(), root=self.static_root, prefix="/static/")
        return get_aio_application(wsgi)


class WhiteNoiseTests(AioLiveServerTestCase):
    server_thread_class = WhiteNoiseThread

    @classmethod
    def setUpClass(cls):
        root = Path(tempfile.mkdtemp())
        cls.addClassCleanup(shutil.rmtree, root, ignore_errors=True)
        (root / "app.css").write_bytes(CSS)
        subprocess.run([sys.executable, "-m", "whitenoise.compress", "--quiet", str(root)], check=True, timeout=120)
        cls.root = root
        WhiteNoiseThread.static_root = str(root)
        super().setUpClass()

    def get(self, path, encoding=None):
        return fetch(self.live_server_url + path, headers={"Accept-Encoding": encoding} if encoding else {})

    def test_compressed_files_by_accept_encoding(self):
        for encoding, suffix, decompress in (("gzip", ".gz", gzip.decompress), ("br", ".br", brotli.decompress)):
            with self.subTest(encoding):
                r = self.get("/static/app.css", encoding)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.headers["Content-Encoding"], encoding)
                self.assertIn("Accept-Encoding", r.headers["Vary"])
                compressed = (self.root / ("app.css" + suffix)).read_bytes()
                self.assertEqual(int(r.headers["Content-Length"]), len(compressed))
                self.assertEqual(r.body, compressed)
                self.assertEqual(decompress(r.body), CSS)
        plain = self.get("/static/app.css")
        self.assertIsNone(plain.headers["Content-Encoding"])
        self.assertEqual(plain.body, CSS)
        self.assertTrue(plain.headers["Content-Type"].startswith("text/css"))

    def test_lifted_and_django_views_beside_it(self):
        Book.objects.create(title="Dune")
        self.assertEqual(self.get("/lifted/books/").json(), {"books": ["Dune"], "view": "lifted"})
        page = self.get("/books/")
        self.assertEqual(page.status, 200)
        self.assertIn("<li>Dune</li>", page.text)
        self.assertEqual(self.get("/static/missing.css").status, 404)
