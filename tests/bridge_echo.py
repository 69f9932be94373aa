"""The bridge serving plain WSGI apps in a server process of its own.

Used by ``tests/test_bridge_environ.py`` (aiohttp's pure-Python parser must
be chosen before aiohttp is imported, so it needs a process of its own) and
``tests/test_bridge_memory.py`` (RSS of a gunicorn worker):

* ``python -m tests.bridge_echo PORT_FILE [WSGIBridge options as JSON]``
  serves ``tests.wsgi_apps.echo_app`` on 127.0.0.1, port 0, and writes
  ``{"port": ..., "parser": ...}`` to ``PORT_FILE`` once it listens
  (``parser`` is the module of the HTTP parser aiohttp uses).
* ``gunicorn tests.bridge_echo:gunicorn_app --worker-class
  aiohttp.worker.GunicornWebWorker``: the same app, plus ``/_stats`` (JSON:
  the worker's pid, the bridge's body-memory budget, its open temporary
  files).  Options come as JSON in ``$BRIDGE_ECHO_OPTIONS``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any


def make_app(options: dict[str, Any]) -> Any:
    """An aiohttp app: the bridge on every path, ``/_stats`` lifted."""
    from aiohttp import web

    from aiodjango.wsgi import WSGIBridge

    from .wsgi_apps import echo_app

    bridge = WSGIBridge(echo_app, **options)
    app = web.Application()

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({
            "pid": os.getpid(),
            "body_memory_used": bridge.body_memory.used,
            "body_memory_limit": bridge.body_memory.limit,
            "temporary_files": temporary_files(),
        })

    async def shutdown(app: web.Application) -> None:
        await bridge.shutdown()

    app.router.add_get("/_stats", stats)
    app.router.add_route("*", "/{tail:.*}", bridge.handle, expect_handler=bridge.expect_handler)
    app.on_cleanup.append(shutdown)
    return app


def temporary_files() -> int:
    """Descriptors of this process open on unlinked (temporary) files."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.endswith("(deleted)")
    return count


async def gunicorn_app() -> Any:
    return make_app(json.loads(os.environ.get("BRIDGE_ECHO_OPTIONS", "{}")))


def main(argv: list[str]) -> None:
    port_file = argv[0]
    options = json.loads(argv[1]) if len(argv) > 1 else {}

    from aiohttp import http_parser, web

    async def serve() -> None:
        runner = web.AppRunner(make_app(options), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        with open(port_file + ".tmp", "w") as f:
            json.dump({"port": port, "parser": http_parser.HttpRequestParser.__module__}, f)
        os.replace(port_file + ".tmp", port_file)
        try:
            await asyncio.Event().wait()  # until killed
        finally:
            await runner.cleanup()

    asyncio.run(serve())


if __name__ == "__main__":
    main(sys.argv[1:])
