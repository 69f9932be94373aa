"""Plain WSGI apps for the bridge tests, and a small server for subprocess tests.

``echo_app`` is served by both gunicorn and the bridge in
``tests/test_bridge_gunicorn.py``.  ``python -m tests.wsgi_apps PORT_FILE
FILE`` runs the bridge in its own process, serving a Django ``FileResponse`` of
``FILE`` (``tests/test_bridge_memory.py`` measures that process's RSS).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, Callable, Iterable

# The environ keys PEP 3333 defines (plus the ones gunicorn adds that the
# bridge also sets); the echo app reports these and every HTTP_* key.
PEP3333_KEYS = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
    "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
    "REMOTE_ADDR", "REMOTE_PORT", "RAW_URI", "REQUEST_URI",
    "wsgi.version", "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess",
    "wsgi.run_once", "wsgi.input_terminated",
)

StartResponse = Callable[..., Any]


def echo_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Answer with the environ's PEP 3333 keys and the body, as JSON."""
    seen: dict[str, Any] = {}
    for key, value in environ.items():
        if key in PEP3333_KEYS or key.startswith("HTTP_"):
            seen[key] = list(value) if isinstance(value, tuple) else value
    body = environ["wsgi.input"].read()
    seen["body"] = body.decode("latin-1")
    seen["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    data = json.dumps(seen, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


class Ticker:
    """An iterable whose every chunk waits for ``go`` (set by the test)."""

    def __init__(self, chunks: int = 1000, *, wait: float = 10.0) -> None:
        self.chunks = chunks
        self.wait = wait
        self.go = threading.Event()
        self.produced = 0
        self.closes = 0
        self.closed = threading.Event()

    def __iter__(self) -> "Ticker":
        return self

    def __next__(self) -> bytes:
        if self.produced >= self.chunks:
            raise StopIteration
        if self.produced:  # the first chunk comes at once
            if not self.go.wait(self.wait):
                raise RuntimeError("the test never released the Ticker")
            self.go.clear()
        self.produced += 1
        return b"tick %d\n" % self.produced

    def close(self) -> None:
        self.closes += 1
        self.closed.set()


class Closing:
    """A list-like body that counts ``close()`` calls."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closes = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.chunks)

    def close(self) -> None:
        self.closes += 1


def _django_file_app(path: str) -> Callable[..., Any]:
    import django
    from django.conf import settings
    from django.urls import path as route

    def download(request):  # type: ignore[no-untyped-def]
        from django.http import FileResponse

        return FileResponse(open(path, "rb"), as_attachment=True)

    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="x",
        MIDDLEWARE=[], INSTALLED_APPS=[],
    )
    globals()["urlpatterns"] = [route("file", download)]
    django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def main(argv: list[str]) -> None:
    """Serve a Django FileResponse of ``argv[1]``; write the port to ``argv[0]``."""
    import asyncio

    from aiohttp import web

    from aiodjango.wsgi import WSGIBridge

    port_file, path = argv
    bridge = WSGIBridge(_django_file_app(path))

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", bridge.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os

        os.replace(port_file + ".tmp", port_file)
        await asyncio.Event().wait()  # until killed

    asyncio.run(serve())


if __name__ == "__main__":
    main(sys.argv[1:])
