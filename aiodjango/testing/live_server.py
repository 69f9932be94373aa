"""Live servers for browser tests: Django's live server test cases, serving the combined application.

See :mod:`aiodjango.testing` and ``docs/testing.rst``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable, Optional

from aiohttp import web
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import LiveServerTestCase
from django.test.testcases import LiveServerThread


class AioLiveServerThread(LiveServerThread):
    """Django's ``LiveServerThread``, serving the combined application with aiohttp.

    The thread runs its own event loop, an ``AppRunner`` and a site listening
    on ``host:port`` (port 0: a free port, as Django's).  It serves
    :meth:`get_application`: by default ``get_aio_application()`` around
    Django's WSGI handler wrapped, as Django's live server wraps it, in the
    test case's ``static_handler`` and the media files handler.  Lifted views
    and websockets are served natively; every other view through the bridge.

    In-memory SQLite connections of the test (``connections_override``) are
    shared with the server's threads (the loop's, the WSGI bridge's and the
    lifted views' database threads), as Django's live server shares them
    with its request threads.

    :param application: a callable taking the WSGI application and returning
        the ``aiohttp.web.Application`` to serve (default
        ``get_aio_application``).
    """

    #: Seconds the server waits at shutdown for requests still running, then
    #: again for them to end once cancelled: an open websocket (which never
    #: ends by itself) costs twice this.  Django's live server waits for none.
    shutdown_timeout = 1.0

    def __init__(
        self,
        host: str,
        static_handler: Any,
        connections_override: Optional[dict[str, Any]] = None,
        port: int = 0,
        application: Optional[Callable[[Any], web.Application]] = None,
    ) -> None:
        super().__init__(host, static_handler, connections_override=connections_override, port=port)
        self.name = "aiodjango-live-server"
        self.application = application
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopping: Optional[asyncio.Event] = None
        self._stop_requested = False

    def get_wsgi_application(self) -> Any:
        """Django's WSGI handler in the static and media files handlers, as Django serves it."""
        from django.core.handlers.wsgi import WSGIHandler

        # Private: Django's LiveServerThread serves MEDIA_URL with this
        # handler and has no public equivalent; kept for parity with it.
        from django.test.testcases import _MediaFilesHandler

        return self.static_handler(_MediaFilesHandler(WSGIHandler()))

    def get_application(self) -> web.Application:
        """The application served: override, or pass ``application=``, to change it."""
        wsgi = self.get_wsgi_application()
        if self.application is not None:
            app = self.application(wsgi)
        else:
            from ..application import get_aio_application

            app = get_aio_application(wsgi)
        if not isinstance(app, web.Application):
            raise TypeError(
                f"The live server's application must be an aiohttp.web.Application, "
                f"got {app!r} from {self.application or 'get_application()'!r}."
            )
        return app

    def run(self) -> None:
        from django.db import connections

        unshare = self._share_connections_everywhere()
        loop = None
        try:
            # Built before the loop runs: Django code here may touch the database.
            app = self.get_application()
            loop = self.loop = asyncio.new_event_loop()
            loop.run_until_complete(self._serve(app))
        except Exception as e:
            self.error = e
        finally:
            unshare()
            self.is_ready.set()
            if loop is not None:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
                finally:
                    loop.close()
            connections.close_all()

    def _share_connections_everywhere(self) -> Callable[[], None]:
        """Give the test's in-memory SQLite connections to every thread of the server.

        Django's live server sets them in each request thread, which its
        server starts.  aiodjango's threads are pools (the WSGI bridge's, the
        lifted views' database threads) that outlive requests and run Django
        code outside them (a websocket's ORM calls), so: a thread that makes
        its first connection while the server runs gets the test's (through
        ``ConnectionHandler.create_connection``, public but undocumented);
        one that had its own gets the test's at its next ``request_started``.
        Returns the function that undoes it.
        """
        from django.core.signals import request_started
        from django.db import connections

        overrides = self.connections_override
        if not overrides:
            return lambda: None
        self._share_connections()
        previous = connections.__dict__.get("create_connection")  # another live server's
        create = previous or connections.create_connection

        def create_connection(alias: str) -> Any:
            conn = overrides.get(alias)
            return conn if conn is not None else create(alias)

        connections.create_connection = create_connection
        request_started.connect(self._share_connections, weak=False, dispatch_uid=self)

        def unshare() -> None:
            request_started.disconnect(dispatch_uid=self)
            if connections.__dict__.get("create_connection") is create_connection:
                if previous is None:
                    del connections.create_connection
                else:
                    connections.create_connection = previous

        return unshare

    def _share_connections(self, **kwargs: Any) -> None:
        """Use the test's in-memory SQLite connections in the current thread."""
        from django.db import connections

        for alias, conn in (self.connections_override or {}).items():
            if connections[alias] is not conn:
                connections[alias] = conn

    async def _serve(self, app: web.Application) -> None:
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=self.shutdown_timeout
        )
        await runner.setup()
        try:
            # One socket, bound as Django's server binds it (no SO_REUSEADDR):
            # a TCPSite on "localhost" would bind IPv4 and IPv6, on two ports.
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.bind((self.host, self.port))
                await web.SockSite(runner, sock).start()
            except BaseException:
                sock.close()
                raise
            self.port = sock.getsockname()[1]
            self.is_ready.set()
            if not self._stop_requested:
                await self._stopping.wait()
        finally:
            await runner.cleanup()

    def _request_stop(self) -> None:  # in the loop
        self._stop_requested = True
        if self._stopping is not None:
            self._stopping.set()

    def terminate(self) -> None:
        """Stop the server (requests still running get ``shutdown_timeout``), join the thread."""
        self._stop_requested = True  # seen by _serve() if its loop isn't running yet
        loop = self.loop
        if loop is not None and self.is_alive():
            try:
                loop.call_soon_threadsafe(self._request_stop)
            except RuntimeError:  # the loop is closed: the thread is ending anyway
                pass
        if self.ident is None:  # never started
            return
        from ..conf import conf

        timeout = self.shutdown_timeout + float(conf.AIODJANGO_SHUTDOWN_TIMEOUT or 0) + 10.0
        self.join(timeout)
        if self.is_alive():
            raise RuntimeError(f"The aiodjango live server thread did not stop within {timeout:.0f} s.")


class AioLiveServerTestCase(LiveServerTestCase):
    """Django's ``LiveServerTestCase``, serving the combined application.

    ``self.live_server_url`` serves lifted views, websockets and Django views
    from one aiohttp server in a thread of the test process, which shares
    the test database as Django's live server does (in-memory SQLite
    included).  ``host``, ``port``, ``static_handler`` and
    ``server_thread_class`` work as in Django; to serve another application
    (WSGI middleware, extra routes), set ``server_thread_class`` to a subclass
    of :class:`AioLiveServerThread` overriding ``get_application()``.
    """

    server_thread_class = AioLiveServerThread


class StaticAioLiveServerTestCase(AioLiveServerTestCase, StaticLiveServerTestCase):
    """Django's ``StaticLiveServerTestCase`` (static files from the finders), served by aiodjango."""


class AioLiveServer:
    """What the ``aio_live_server`` fixture gives, as pytest-django's ``live_server``.

    ``url`` (also ``str(server)``; ``server + "/path/"`` concatenates), the
    ``thread`` (an :class:`AioLiveServerThread`), :meth:`start` and
    :meth:`stop`.  ``addr`` is ``"host"`` or ``"host:port"``; ``application``
    as for :class:`AioLiveServerThread`.  While it runs, ``host`` is in
    ``ALLOWED_HOSTS`` and in-memory SQLite connections are shared with its
    threads.  Use it where the fixture won't do (another scope, another
    application); the database must be ``transactional_db``'s.
    """

    #: Seconds :meth:`start` waits for the server to listen.
    start_timeout = 60.0

    def __init__(
        self,
        addr: str = "localhost",
        *,
        start: bool = True,
        application: Optional[Callable[[Any], web.Application]] = None,
    ) -> None:
        from django.conf import settings
        from django.db import connections
        from django.test.utils import modify_settings

        if addr.startswith("["):  # "[::1]" or "[::1]:8081"
            host, _, rest = addr[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else rest or "0"
        elif addr.count(":") == 1:
            host, port = addr.split(":")
        else:  # "localhost", or a bare IPv6 address
            host, port = addr, "0"
        if not host or not port.isdigit():
            raise ValueError(f"The live server address must be 'host' or 'host:port', got {addr!r}.")
        connections_override = {
            conn.alias: conn
            for conn in connections.all()
            if conn.vendor == "sqlite" and conn.is_in_memory_db()
        }
        if "django.contrib.staticfiles" in settings.INSTALLED_APPS:
            static_handler = StaticLiveServerTestCase.static_handler
        else:
            static_handler = LiveServerTestCase.static_handler
        self.thread = AioLiveServerThread(
            host, static_handler, connections_override=connections_override,
            port=int(port), application=application,
        )
        self.thread.daemon = True
        # From start() to stop(), as Django's live server test case does.
        self._live_server_modified_settings = modify_settings(ALLOWED_HOSTS={"append": host})
        self._started = False
        if start:
            self.start()

    def start(self) -> None:
        """Start the server and wait until it listens (at most :attr:`start_timeout` seconds)."""
        thread = self.thread
        if self._started:
            return
        self._started = True
        for conn in thread.connections_override.values():
            conn.inc_thread_sharing()
        self._live_server_modified_settings.enable()
        thread.start()
        ready = thread.is_ready.wait(self.start_timeout)
        if not ready or thread.error:
            self.stop()
            raise thread.error or TimeoutError(
                f"The aiodjango live server did not start within {self.start_timeout:.0f} s."
            )

    def stop(self) -> None:
        """Stop the server and join its thread (again: does nothing)."""
        if not self._started:
            return
        self._started = False
        try:
            self.thread.terminate()
        finally:
            self._live_server_modified_settings.disable()
            for conn in self.thread.connections_override.values():
                conn.dec_thread_sharing()

    @property
    def url(self) -> str:
        host = self.thread.host
        return f"http://{'[%s]' % host if ':' in host else host}:{self.thread.port}"

    def __str__(self) -> str:
        return self.url

    def __add__(self, other: str) -> str:
        return f"{self}{other}"

    def __repr__(self) -> str:
        return f"<AioLiveServer listening at {self.url}>"
