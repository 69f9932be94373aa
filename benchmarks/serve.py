"""Run one aiohttp-based server of the benchmark, single process (started by run.py).

    python serve.py KIND --port PORT [--threads N]

KIND is ``aiodjango`` (``get_aio_application`` over the benchmark project),
``bare-aiohttp`` (the same lifted handlers in a plain ``web.Application``, and
the hello handler adding the headers aiodjango's response carries) or
``aiohttp-wsgi`` (the project's WSGI app under aiohttp-wsgi's ``WSGIHandler``,
mounted as its ``run_server`` mounts it).  All three use ``web.run_app`` with
no access log and the backlog gunicorn and uvicorn use by default.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
BACKLOG = 2048


def aiodjango_app(threads: int):
    from aiodjango import get_aio_application

    return get_aio_application(threads=threads)


def bare_aiohttp_app(threads: int):
    import django
    from aiohttp import web

    django.setup()
    from benchproject import views

    app = web.Application()
    app.router.add_route("*", "/lifted/hello/", views.lifted_hello)
    app.router.add_route("*", "/lifted/hello-same-bytes/", same_bytes(views.lifted_hello))
    app.router.add_route("*", "/ws/echo/", views.ws_echo)
    return app


def same_bytes(handler):
    """``handler`` whose response carries the headers ``MIDDLEWARE`` adds to every response.

    The anchor for what the response itself costs: aiodjango's lifted view
    sends these headers too (SecurityMiddleware, XFrameOptionsMiddleware),
    and aiohttp's serializer pays for every byte of them.  The headers are
    Django's own, computed once by the project's header middleware.
    """
    from django.http import HttpRequest, HttpResponse
    from django.middleware.clickjacking import XFrameOptionsMiddleware
    from django.middleware.security import SecurityMiddleware

    response = HttpResponse()
    del response["Content-Type"]
    for middleware in (XFrameOptionsMiddleware, SecurityMiddleware):
        middleware(lambda request: response).process_response(HttpRequest(), response)
    headers = tuple(response.items())

    async def with_headers(request):
        answer = await handler(request)
        answer.headers.extend(headers)
        return answer

    return with_headers


def aiohttp_wsgi_app(threads: int):
    from aiohttp import web
    from aiohttp_wsgi import WSGIHandler
    from django.core.wsgi import get_wsgi_application

    executor = ThreadPoolExecutor(threads)
    handler = WSGIHandler(get_wsgi_application(), executor=executor)
    app = web.Application()
    app.router.add_route("*", "/{path_info:.*}", handler.handle_request)

    async def shutdown(app):
        executor.shutdown(wait=False)

    app.on_cleanup.append(shutdown)
    return app


FACTORIES = {
    "aiodjango": aiodjango_app,
    "bare-aiohttp": bare_aiohttp_app,
    "aiohttp-wsgi": aiohttp_wsgi_app,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(FACTORIES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")
    sys.path[:0] = [os.path.join(HERE, "project"), os.path.dirname(HERE)]
    from aiohttp import web

    app = FACTORIES[args.kind](args.threads)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=BACKLOG,
        shutdown_timeout=1.0,
    )


if __name__ == "__main__":
    main()
