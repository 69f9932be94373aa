"""Testing lifted views, websockets and Django views together, on a real server.

From Django's test framework, :class:`AioClientMixin` gives ``self.aio_client``
(an :class:`AioClient`: synchronous calls, the combined application served on
``127.0.0.1`` from a background thread)::

    from django.test import TransactionTestCase
    from aiodjango.testing import AioClientMixin

    class ChatTests(AioClientMixin, TransactionTestCase):
        def test_profile(self):
            self.aio_client.force_login(User.objects.create_user("ada"))
            self.assertEqual(self.aio_client.get("/profile/").json()["user"], "ada")
            with self.aio_client.ws_connect("/ws/chat/") as ws:
                ws.send_str("hi")
                self.assertEqual(ws.receive_str(), "hi")

From pytest (with pytest-aiohttp or pytest-asyncio, and pytest-django), add
``pytest_plugins = ["aiodjango.testing"]`` to ``conftest.py`` for the
``aio_app`` and ``aio_client`` fixtures (``aio_client`` is aiohttp's
``TestClient``); :func:`aforce_login` logs its cookie jar in.

Both add the client's host, ``127.0.0.1``, to ``ALLOWED_HOSTS`` while the
test runs, as ``LiveServerTestCase`` adds its own: projects whose settings
allow only their real hosts need nothing more.  (An :class:`AioClient` made
by hand does not: build its application and use it under
``modify_settings(ALLOWED_HOSTS={"append": "127.0.0.1"})``.)

The server's threads (lifted views' database thread, the WSGI bridge) use
their own database connections: they see what the test committed.  Use
``TransactionTestCase`` (``@pytest.mark.django_db(transaction=True)``), as
for ``LiveServerTestCase``; with SQLite, give the test database a file
``NAME`` under ``DATABASES["default"]["TEST"]``.

For browser tests (Selenium, Playwright), :class:`AioLiveServerTestCase` and
:class:`StaticAioLiveServerTestCase` are Django's live server test cases
serving the combined application, and the ``aio_live_server`` fixture is
pytest-django's ``live_server``; they share the test database as Django's
live server does, in-memory SQLite included (``docs/testing.rst``).
"""


from __future__ import annotations

import os
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from .client import (
    TEST_HOST,
    AioClient,
    AioClientMixin,
    Response,
    WebSocket,
    aforce_login,
    alogin,
    login_cookies,
)
from .live_server import (
    AioLiveServer,
    AioLiveServerTestCase,
    AioLiveServerThread,
    StaticAioLiveServerTestCase,
)

__all__ = [
    "AioClient",
    "AioClientMixin",
    "AioLiveServer",
    "AioLiveServerTestCase",
    "AioLiveServerThread",
    "Response",
    "StaticAioLiveServerTestCase",
    "WebSocket",
    "aforce_login",
    "alogin",
    "login_cookies",
]

# -- pytest fixtures (``pytest_plugins = ["aiodjango.testing"]``) -------------

try:
    import pytest
except ImportError:  # pragma: no cover - pytest is optional
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    try:
        from pytest_asyncio import fixture as _async_fixture
    except ImportError:  # pragma: no cover - pytest-asyncio is optional
        _async_fixture = None  # aio_client is an async fixture: it needs pytest-asyncio

    @pytest.fixture(autouse=True)
    def _aio_client_helper(request: Any) -> Any:
        """For tests using ``aio_app`` or ``aio_client``: the client's host allowed.

        ``127.0.0.1`` is added to ``ALLOWED_HOSTS`` around the test (before
        the application is built: lifted views read it then), as
        pytest-django does for ``live_server``'s host.
        """
        if not {"aio_app", "aio_client"} & set(request.fixturenames):
            yield
            return
        from django.test.utils import modify_settings

        with modify_settings(ALLOWED_HOSTS={"append": TEST_HOST}):
            yield

    @pytest.fixture
    def aio_app() -> web.Application:
        """The combined application, built with the test's settings (override to change)."""
        from ..application import get_aio_application

        return get_aio_application()

    if _async_fixture is not None:

        @_async_fixture
        async def aio_client(aio_app: web.Application) -> Any:
            """aiohttp's ``TestClient`` for ``aio_app``, on a real server on ``127.0.0.1``."""
            client = TestClient(TestServer(aio_app, host=TEST_HOST))
            await client.start_server()
            try:
                yield client
            finally:
                await client.close()

    else:  # pragma: no cover - pytest-aiohttp brings pytest-asyncio

        @pytest.fixture
        def aio_client(aio_app: web.Application) -> Any:
            raise pytest.UsageError(
                "The aio_client fixture is asynchronous: install pytest-asyncio "
                "(pytest-aiohttp brings it)."
            )

    @pytest.fixture
    def aio_live_server(request: Any, transactional_db: Any) -> Any:
        """pytest-django's ``live_server``, serving the combined application.

        An :class:`AioLiveServer` on the address of pytest-django's
        ``--liveserver`` option, else of ``DJANGO_LIVE_TEST_SERVER_ADDRESS``,
        else ``localhost`` (a free port); with ``transactional_db``, as
        ``live_server``.  One server per test (``live_server`` has one per
        session): lifted routes are made when the application is built, so
        each test's ``urls`` marker and settings apply to them too.
        """
        addr = (
            request.config.getoption("liveserver", None)
            or os.environ.get("DJANGO_LIVE_TEST_SERVER_ADDRESS")
            or "localhost"
        )
        server = AioLiveServer(addr)
        try:
            yield server
        finally:
            server.stop()

