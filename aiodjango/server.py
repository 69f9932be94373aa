"""The serve loop of ``runserver``: one aiohttp application on one socket.

:class:`DevServer` runs in whichever thread calls :meth:`DevServer.serve`
(Django's autoreloader runs it in its ``django-main-thread``), on an event
loop of its own, and stops cleanly when :meth:`DevServer.stop` is called from
any thread: the listening socket is closed, open websockets get a close frame
(1001, going away), requests still running get ``shutdown_timeout`` seconds,
and the application's ``on_shutdown`` and ``on_cleanup`` hooks run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import weakref
from typing import Optional

from aiohttp import WSCloseCode, web

from .accesslog import AccessLogger, log_access, logger as server_logger


def bind_socket(addr: str, port: int, *, ipv6: bool = False) -> socket.socket:
    """A listening TCP socket, bound as Django's ``WSGIServer`` binds it.

    Raises ``OSError`` (``EADDRINUSE``, ``EACCES``, ``EADDRNOTAVAIL``, ...)
    before anything is printed, so ``runserver`` can report it in one line.
    """
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        if os.name == "posix":
            # As socketserver's allow_reuse_address: restarts do not wait for TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


WEBSOCKETS = web.AppKey("aiodjango.server.websockets", weakref.WeakSet)


def track_websockets(app: web.Application) -> None:
    """Log websocket handshakes (101) when they happen, close open websockets on shutdown."""
    app[WEBSOCKETS] = weakref.WeakSet()
    app.on_response_prepare.append(_on_response_prepare)
    app.on_shutdown.insert(0, _close_websockets)


async def _on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    if response.status != 101:
        return
    log_access(request, 101, 0, server_logger)
    if isinstance(response, web.WebSocketResponse):
        request.config_dict[WEBSOCKETS].add(response)


async def _close_websockets(app: web.Application) -> None:
    sockets = [ws for ws in app[WEBSOCKETS] if not ws.closed]
    if not sockets:
        return
    closing = [
        asyncio.ensure_future(ws.close(code=WSCloseCode.GOING_AWAY, message=b"Server shutdown"))
        for ws in sockets
    ]
    # The close frames go out at once; waiting for each client's reply is bounded.
    done, pending = await asyncio.wait(closing, timeout=DevServer.websocket_close_timeout)
    for task in pending:
        task.cancel()
    for task in done:
        task.exception()  # Retrieved: a peer that vanished is not an error here.


class DevServer:
    """Serve ``app`` on the listening socket ``sock`` until stopped."""

    #: Seconds that running requests get to finish when the server stops.
    shutdown_timeout = 1.0
    #: Seconds to wait for clients to answer a websocket close frame.
    websocket_close_timeout = 0.2

    def __init__(self, app: web.Application, sock: socket.socket) -> None:
        self.app = app
        self.sock = sock
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop_requested = False
        self._stop_event: Optional[asyncio.Event] = None
        self._done = threading.Event()

    def serve(self) -> None:
        """Serve until :meth:`stop`; in the main thread, SIGINT stops it too.

        Runs a fresh event loop, closed on return.
        """
        with self._lock:
            if self._stop_requested:
                self.sock.close()
                self._done.set()
                return
            loop = self._loop = asyncio.new_event_loop()
        try:
            main = loop.create_task(self._serve())
            try:
                loop.run_until_complete(main)
            except KeyboardInterrupt:
                # No signal handler (Windows): stop gracefully, then let it propagate.
                self._wake()
                loop.run_until_complete(main)
                raise
        finally:
            try:
                _cancel_all_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                with self._lock:
                    self._loop = None
                loop.close()
                self.sock.close()
                self._done.set()

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Ask the server to stop (from any thread); wait up to ``timeout`` seconds.

        Returns whether the server has finished.
        """
        with self._lock:
            self._stop_requested = True
            loop = self._loop
        if loop is None:
            return True
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # The loop closed meanwhile.
            return True
        return self._done.wait(timeout)

    def _wake(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    async def _serve(self) -> None:
        self._stop_event = stop = asyncio.Event()
        if self._stop_requested:
            stop.set()
        loop = asyncio.get_running_loop()
        handles_sigint = False
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            # Ctrl-C stops the server gracefully (an ignored SIGINT stays ignored).
            try:
                loop.add_signal_handler(signal.SIGINT, stop.set)
                handles_sigint = True
            except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
                pass
        runner = web.AppRunner(
            self.app,
            access_log_class=AccessLogger,
            access_log=server_logger,
            shutdown_timeout=self.shutdown_timeout,
        )
        try:
            await runner.setup()
            try:
                await web.SockSite(runner, self.sock).start()
                await stop.wait()
            finally:
                await runner.cleanup()
        finally:
            if handles_sigint:
                loop.remove_signal_handler(signal.SIGINT)


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run()`` does with tasks left over at the end."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
