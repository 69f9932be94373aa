"""The test clients pass the Host check with a project's production ALLOWED_HOSTS.

As ``LiveServerTestCase`` does for its host, ``AioClientMixin`` and the
pytest fixtures add the client's host (``127.0.0.1``) to ``ALLOWED_HOSTS``
while a test runs, and only then.
"""

import subprocess
import sys
import textwrap
import unittest
from pathlib import Path

import pytest
from django.conf import settings
from django.test import SimpleTestCase, override_settings

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_HOSTS = ["www.example.com"]


def run_test_case(case):
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)
    return result


def mixin():
    # Imported here: importing aiodjango.testing before a module that lists it
    # in pytest_plugins makes pytest warn that it can't rewrite its asserts.
    from aiodjango.testing import AioClientMixin

    return AioClientMixin


def test_the_mixin_allows_its_host_for_the_class_only():
    AioClientMixin = mixin()
    before = list(settings.ALLOWED_HOSTS)
    seen = {}

    @override_settings(ALLOWED_HOSTS=PRODUCTION_HOSTS, ROOT_URLCONF="tests.citizens_urls")
    class ProductionHosts(AioClientMixin, SimpleTestCase):
        def test_everything_is_served(self):
            seen["hosts"] = list(settings.ALLOWED_HOSTS)
            client = self.aio_client
            r = client.get("/citizens/hello/")  # lifted
            self.assertEqual((r.status, r.text), (200, "hello citizen"))
            r = client.get("/django/hello/")  # Django's, through the bridge
            self.assertEqual((r.status, r.text), (200, "hello from django"))
            # A browser's websocket from the page's own origin.
            with client.ws_connect("/citizens/ws/echo/", origin=client.url("/").rstrip("/")) as ws:
                ws.send_str("hi")
                self.assertEqual(ws.receive_str(), "echo: hi")
            # The Host check itself still works: the real host passes, others don't.
            r = client.get("/citizens/hello/", headers={"Host": "www.example.com"})
            self.assertEqual(r.status, 200)
            r = client.get("/citizens/hello/", headers={"Host": "evil.example"})
            self.assertEqual(r.status, 400)

        @override_settings(DEBUG=True)
        def test_nested_overrides_keep_it(self):
            self.assertEqual(self.aio_client.get("/django/hello/").status, 200)

    result = run_test_case(ProductionHosts)
    assert result.wasSuccessful(), result.errors + result.failures
    assert result.testsRun == 2
    assert seen["hosts"] == PRODUCTION_HOSTS + ["127.0.0.1"]
    assert settings.ALLOWED_HOSTS == before  # undone with the class


def test_a_mixin_listed_after_the_test_case_says_so():
    AioClientMixin = mixin()

    @override_settings(ALLOWED_HOSTS=PRODUCTION_HOSTS, ROOT_URLCONF="tests.citizens_urls")
    class MixinLast(SimpleTestCase, AioClientMixin):
        def test_client(self):
            self.aio_client

    result = run_test_case(MixinLast)
    ((_, error),) = result.errors
    assert "list AioClientMixin before the TestCase class" in error
    assert "'127.0.0.1' is not in ALLOWED_HOSTS" in error


def test_a_mixin_listed_after_is_fine_when_the_host_is_allowed():
    AioClientMixin = mixin()

    @override_settings(ROOT_URLCONF="tests.citizens_urls")
    class MixinLast(SimpleTestCase, AioClientMixin):
        def test_client(self):
            self.assertEqual(self.aio_client.get("/citizens/hello/").status, 200)

    result = run_test_case(MixinLast)
    assert result.wasSuccessful(), result.errors + result.failures


PROJECT_TESTS = '''
    import pytest
    from aiohttp import WSServerHandshakeError
    from django.conf import settings
    from django.test import Client, TransactionTestCase, override_settings

    from aiodjango.testing import AioClientMixin

    pytest_plugins = ["aiodjango.testing"]
    PRODUCTION = ["www.example.com", "testserver"]  # the settings, and Django's test environment


    @override_settings(ROOT_URLCONF="tests.citizens_urls")
    class DjangoStyle(AioClientMixin, TransactionTestCase):
        def test_lifted_django_and_websocket(self):
            client = self.aio_client
            self.assertEqual(client.get("/citizens/hello/").status, 200)
            self.assertEqual(client.get("/citizens/users/").json(), {"users": 0})
            self.assertEqual(client.get("/django/hello/").status, 200)
            with client.ws_connect("/citizens/ws/echo/", origin=client.url("/").rstrip("/")) as ws:
                ws.send_str("hi")
                self.assertEqual(ws.receive_str(), "echo: hi")


    @pytest.mark.urls("tests.citizens_urls")
    @pytest.mark.django_db(transaction=True)
    async def test_pytest_fixture(aio_client, settings):
        settings.DEBUG = False  # the settings fixture nests inside the fixture's change
        for path in ["/citizens/hello/", "/citizens/users/", "/django/hello/"]:
            response = await aio_client.get(path)
            assert response.status == 200, path
        origin = str(aio_client.make_url("/")).rstrip("/")
        async with aio_client.ws_connect("/citizens/ws/echo/", origin=origin) as ws:
            await ws.send_str("hi")
            assert await ws.receive_str() == "echo: hi"
        with pytest.raises(WSServerHandshakeError):
            await aio_client.ws_connect("/citizens/ws/echo/", origin="https://evil.example")


    @pytest.mark.urls("tests.citizens_urls")
    def test_djangos_own_client_for_comparison():
        assert Client().get("/django/hello/").status_code == 200


    def test_zz_the_hosts_are_restored():
        assert settings.ALLOWED_HOSTS == PRODUCTION
'''


@pytest.mark.slow
def test_a_project_allowing_only_its_real_host(tmp_path):
    """A project whose settings allow only www.example.com, tested with both clients."""
    (tmp_path / "production_settings.py").write_text(
        "from tests.settings import *  # noqa\nALLOWED_HOSTS = ['www.example.com']\n"
    )
    (tmp_path / "test_project.py").write_text(textwrap.dedent(PROJECT_TESTS))
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "-W", "error::DeprecationWarning", "-W", "error::ResourceWarning",
        "--ds=production_settings", "-o", "asyncio_mode=auto",
        "-o", "asyncio_default_fixture_loop_scope=function",
        "--rootdir", str(tmp_path), str(tmp_path / "test_project.py"),
    ]
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    process = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    output = process.stdout + process.stderr
    assert process.returncode == 0, output
    assert "4 passed" in output, output
