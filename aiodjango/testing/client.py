"""The test clients: :class:`AioClient` (synchronous, for Django tests) and :class:`AioClientMixin`.

See :mod:`aiodjango.testing` for how to use them.
"""

from __future__ import annotations

import asyncio
import json as _json
import threading
from typing import Any, Coroutine, Optional, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from asgiref.sync import sync_to_async
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

T = TypeVar("T")
DEFAULT_TIMEOUT = 10.0
#: The address the test clients' servers listen on (their requests' host).
TEST_HOST = "127.0.0.1"


def login_cookies(user: Any = None, backend: Optional[str] = None, **credentials: Any) -> dict[str, str]:
    """Session cookies of a logged-in user, made by Django's test ``Client``.

    ``login_cookies(user)`` logs ``user`` in as ``Client.force_login`` does;
    ``login_cookies(username=..., password=...)`` as ``Client.login`` does
    (``{}`` if the credentials are refused).  Synchronous (it saves a session).
    """
    from django.test import Client

    client = Client()
    if user is not None:
        client.force_login(user, backend)
    elif not client.login(**credentials):
        return {}
    return {name: morsel.value for name, morsel in client.cookies.items()}


def _jar_update(client: TestClient, cookies: dict[str, str]) -> None:
    client.session.cookie_jar.update_cookies(cookies, response_url=URL(str(client.make_url("/"))))


async def aforce_login(client: TestClient, user: Any, backend: Optional[str] = None) -> None:
    """Log ``user`` in for the requests of an aiohttp ``TestClient``."""
    _jar_update(client, await sync_to_async(login_cookies)(user, backend))


async def alogin(client: TestClient, **credentials: Any) -> bool:
    """Log in with credentials (as ``Client.login``) for an aiohttp ``TestClient``."""
    cookies = await sync_to_async(login_cookies)(**credentials)
    _jar_update(client, cookies)
    return bool(cookies)


class Response:
    """A response read in full: ``status``, ``headers``, ``content``, ``text``, ``json()``."""

    def __init__(self, status: int, reason: str, headers: CIMultiDictProxy[str], content: bytes, url: URL) -> None:
        self.status = self.status_code = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.content)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url.path}>"


class WebSocket:
    """A synchronous websocket of an :class:`AioClient` (a context manager)."""

    def __init__(self, client: "AioClient", ws: Any) -> None:
        self._client = client
        self._ws = ws

    def send_str(self, data: str) -> None:
        self._client._run(self._ws.send_str(data))

    def send_bytes(self, data: bytes) -> None:
        self._client._run(self._ws.send_bytes(data))

    def send_json(self, data: Any) -> None:
        self._client._run(self._ws.send_json(data))

    def receive(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The next message (an ``aiohttp.WSMessage``)."""
        return self._client._run(self._ws.receive(timeout=timeout), timeout + 1)

    def receive_str(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        return self._client._run(self._ws.receive_str(timeout=timeout), timeout + 1)  # type: ignore[no-any-return]

    def receive_json(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        return self._client._run(self._ws.receive_json(timeout=timeout), timeout + 1)

    def close(self) -> None:
        if not self._ws.closed:
            self._client._run(self._ws.close())

    @property
    def closed(self) -> bool:
        return bool(self._ws.closed)

    @property
    def close_code(self) -> Optional[int]:
        return self._ws.close_code  # type: ignore[no-any-return]

    def __enter__(self) -> "WebSocket":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class AioClient:
    """The combined application on a real server (``127.0.0.1``, a free port), driven synchronously.

    The server and its event loop run in a background thread; each call
    waits at most ``timeout`` seconds.  Cookies are kept between requests.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        app: Optional[web.Application] = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if app is None:
            from ..application import get_aio_application

            app = get_aio_application()
        self.app = app
        self.timeout = timeout
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._client: Optional[TestClient] = None

    # -- life cycle

    def start(self) -> "AioClient":
        if self._loop is not None:
            return self
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=loop.run_forever, name="aiodjango-test-server", daemon=True
        )
        self._thread.start()
        try:
            self._client = self._run(self._start())
        except BaseException:
            self._stop_loop()
            raise
        return self

    async def _start(self) -> TestClient:
        client = TestClient(TestServer(self.app, host=TEST_HOST))
        await client.start_server()
        return client

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            if self._client is not None:
                self._run(self._client.close())
        finally:
            self._client = None
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(self.timeout)
        loop.close()

    def __enter__(self) -> "AioClient":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: Optional[float] = None) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("The AioClient is not started: call start() or use 'with'.")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout if timeout is None else timeout)
        except BaseException:
            future.cancel()
            raise

    @property
    def client(self) -> TestClient:
        """aiohttp's ``TestClient`` (its coroutines run on the server's loop)."""
        if self._client is None:
            self.start()
        return self._client  # type: ignore[return-value]

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on the server."""
        return str(self.client.make_url(path))

    # -- HTTP

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        """Send a request (aiohttp's ``ClientSession.request`` arguments); read it in full."""
        client = self.client

        async def fetch() -> Response:
            async with client.request(method, path, **kwargs) as response:
                content = await response.read()
                return Response(
                    response.status,
                    response.reason or "",
                    CIMultiDictProxy(CIMultiDict(response.headers)),
                    content,
                    response.url,
                )

        return self._run(fetch())

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Response:
        return self.request("HEAD", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> Response:
        return self.request("OPTIONS", path, **kwargs)

    def ws_connect(self, path: str, **kwargs: Any) -> WebSocket:
        """Open a websocket (aiohttp's ``ws_connect`` arguments)."""
        client = self.client
        return WebSocket(self, self._run(client.ws_connect(path, **kwargs)))

    # -- cookies and users

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies the client holds, by name."""
        return {morsel.key: morsel.value for morsel in self.client.session.cookie_jar}

    def set_cookies(self, cookies: dict[str, str]) -> None:
        client = self.client

        async def update() -> None:
            _jar_update(client, cookies)

        self._run(update())

    def force_login(self, user: Any, backend: Optional[str] = None) -> None:
        """Log ``user`` in, as Django's ``Client.force_login``."""
        self.set_cookies(login_cookies(user, backend))

    def login(self, **credentials: Any) -> bool:
        """Log in with credentials, as Django's ``Client.login``; ``False`` if refused."""
        cookies = login_cookies(**credentials)
        if cookies:
            self.set_cookies(cookies)
        return bool(cookies)

    def logout(self) -> None:
        """Forget the client's cookies (the session stays in the store)."""
        client = self.client

        async def clear() -> None:
            client.session.cookie_jar.clear()

        self._run(clear())


def _test_host_allowed() -> bool:
    from django.http.request import validate_host

    from ..security import allowed_hosts

    return validate_host(TEST_HOST, allowed_hosts())


class AioClientMixin:
    """For Django test cases: ``self.aio_client``, an :class:`AioClient` per test.

    Override :meth:`get_aio_application` to serve another application (by
    default ``get_aio_application()`` with the test's settings).  As
    ``LiveServerTestCase`` does for its host, the class adds the client's
    host (``127.0.0.1``) to ``ALLOWED_HOSTS`` while its tests run: list the
    mixin first among the bases.
    """

    @classmethod
    def setUpClass(cls) -> None:
        from django.test.utils import modify_settings

        super().setUpClass()  # type: ignore[misc]
        # Last, and undone first in tearDownClass: nested in the class's own
        # override_settings/modify_settings, whichever way Django undoes them.
        cls._aio_allowed_host = modify_settings(ALLOWED_HOSTS={"append": TEST_HOST})
        cls._aio_allowed_host.enable()

    @classmethod
    def tearDownClass(cls) -> None:
        allowed = cls.__dict__.get("_aio_allowed_host")
        if allowed is not None:
            del cls._aio_allowed_host
            allowed.disable()
        super().tearDownClass()  # type: ignore[misc]

    def get_aio_application(self) -> web.Application:
        from ..application import get_aio_application

        return get_aio_application()

    @property
    def aio_client(self) -> AioClient:
        client: Optional[AioClient] = self.__dict__.get("_aio_client")
        if client is None:
            if "_aio_allowed_host" not in type(self).__dict__ and not _test_host_allowed():
                raise RuntimeError(
                    f"AioClientMixin.setUpClass() did not run, so the test client's host "
                    f"{TEST_HOST!r} is not in ALLOWED_HOSTS: list AioClientMixin before the "
                    f"TestCase class, as in 'class {type(self).__name__}(AioClientMixin, "
                    f"TransactionTestCase)'."
                )
            client = AioClient(self.get_aio_application()).start()
            self._aio_client = client
            self.addCleanup(self._close_aio_client)  # type: ignore[attr-defined]
        return client

    def _close_aio_client(self) -> None:
        client = self.__dict__.pop("_aio_client", None)
        if client is not None:
            client.close()
