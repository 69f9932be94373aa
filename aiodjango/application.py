"""``get_aio_application()``: one aiohttp application for the whole Django project."""

from __future__ import annotations

import functools
import os
from concurrent.futures import Executor
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from aiohttp import web
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import get_resolver

from .wsgi import WSGIBridge
from .broadcast.handler import broadcast_context, end_subscriptions
from .conf import conf
from .db import close_idle_threads, current_context
from .handlers import make_handler
from .policies import PLAN_ATTR, Policies
from .wsgi.bridge import NO_CONTENT_TYPE, strip_invented_content_type
from .routing import FallbackResource, LiftedRoutes


class AioDjango:
    """What aiodjango keeps on the application (``app[APP_KEY]``)."""

    def __init__(self, bridge: WSGIBridge, routes: LiftedRoutes, fallback: FallbackResource) -> None:
        self.bridge = bridge
        self.routes = routes
        self.fallback = fallback


APP_KEY = web.AppKey("aiodjango", AioDjango)


def get_aio_application(
    wsgi: Optional[Callable[..., Any]] = None,
    *,
    include_static: bool = False,
    urlconf: Any = None,
    executor: Optional[Executor] = None,
    threads: Optional[int] = None,
    **app_kwargs: Any,
) -> web.Application:
    """Build an aiohttp application serving the Django project.

    Every coroutine view of the URLconf (``async def`` functions, and
    ``aiohttp.web.View`` subclasses) is served natively by aiohttp;
    everything else goes to ``wsgi`` (by default Django's
    ``get_wsgi_application()``) through a thread-pool bridge.

    :param wsgi: the project's WSGI application, WSGI middleware included.
    :param include_static: serve ``STATIC_URL`` from ``STATIC_ROOT``.
    :param urlconf: the URLconf to lift from (default ``ROOT_URLCONF``).
    :param executor: run the WSGI app in this executor instead of aiodjango's pool.
    :param threads: size of aiodjango's pool (default ``AIODJANGO_THREADS``).
    :param app_kwargs: passed on to ``aiohttp.web.Application``.
    """
    if wsgi is None:
        from django.core.wsgi import get_wsgi_application

        wsgi = get_wsgi_application()
    elif not callable(wsgi):
        raise TypeError(
            f"get_aio_application() takes a WSGI application (a callable), got {wsgi!r}."
        )
    if threads is None:
        threads = conf.AIODJANGO_THREADS
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ImproperlyConfigured(
            f"The thread count must be a positive integer (threads= or AIODJANGO_THREADS), "
            f"got {threads!r}."
        )
    # MIDDLEWARE's policies for lifted views (an AIODJANGO_MIDDLEWARE error raises here).
    policies = Policies(urlconf=urlconf)

    app = web.Application(**app_kwargs)
    bridge = WSGIBridge(
        wsgi,
        executor=executor,
        threads=threads,
        max_request_body_size=conf.AIODJANGO_MAX_REQUEST_BODY_SIZE,
        spool_threshold=conf.AIODJANGO_SPOOL_THRESHOLD,
        request_body_memory=conf.AIODJANGO_REQUEST_BODY_MEMORY,
        max_request_fields=conf.AIODJANGO_MAX_REQUEST_FIELDS,
        shutdown_timeout=conf.AIODJANGO_SHUTDOWN_TIMEOUT,
        request_body_timeout=conf.AIODJANGO_REQUEST_BODY_TIMEOUT,
    )

    resolver = get_resolver(urlconf)
    routes = LiftedRoutes.from_resolver(
        resolver, functools.partial(make_handler, policies=policies), urlconf=urlconf
    )
    routes.register(app.router)
    if include_static:
        _add_static(app)
    fallback = FallbackResource(bridge.handle, routes, expect_handler=bridge.expect_handler)
    app.router.register_resource(fallback)

    app[APP_KEY] = AioDjango(bridge, routes, fallback)
    app.on_startup.append(_keep_fallback_last)
    # One receiver for every response: the policies' headers, the database
    # thread of a lifted view whose response started, the bridge's headers.
    app.on_response_prepare.append(_response_prepare(bool(policies.header_policies)))
    app.on_cleanup.append(bridge.cleanup)
    policies.install(app)  # their start-up work (catalogues)
    app.on_cleanup.append(close_idle_threads)
    # Broadcasts run on this app's loop (publish_sync() from threads), closed on cleanup;
    # their subscriptions end on shutdown, so subscribed clients don't hold the worker.
    app.cleanup_ctx.append(broadcast_context)
    app.on_shutdown.append(end_subscriptions)
    return app


def _response_prepare(headers: bool) -> Callable[..., Any]:
    """aiodjango's ``on_response_prepare`` receiver (one call per response, not three)."""

    async def on_response_prepare(request: web.BaseRequest, response: web.StreamResponse) -> None:
        context = current_context()
        if context is not None:
            if context.request is request:
                # A response started while its handler runs (a websocket, a
                # stream): its database thread goes back (aiodjango.db), and
                # MIDDLEWARE's header policies go on (a response the handler
                # returns or raises got them there: aiodjango.handlers).
                context.response_started()
                if headers:
                    plan = getattr(request.match_info.handler, PLAN_ATTR, None)  # type: ignore[attr-defined]
                    if plan is not None:
                        plan.respond(request, response)
        elif type(response) in NO_CONTENT_TYPE:
            strip_invented_content_type(response)  # the WSGI bridge's responses

    return on_response_prepare


def _add_static(app: web.Application) -> None:
    static_url = settings.STATIC_URL
    static_root = settings.STATIC_ROOT
    if not static_url:
        raise ImproperlyConfigured("include_static=True needs the STATIC_URL setting.")
    parts = urlsplit(str(static_url))
    if parts.scheme or parts.netloc:
        raise ImproperlyConfigured(
            f"include_static=True serves STATIC_URL locally, but STATIC_URL is the "
            f"absolute URL {static_url!r}. Use a path such as '/static/', or leave "
            f"include_static off and let that host serve the files."
        )
    if not static_root:
        raise ImproperlyConfigured(
            "include_static=True serves files from STATIC_ROOT, which is not set. Set "
            "STATIC_ROOT and run 'manage.py collectstatic'."
        )
    if not os.path.isdir(static_root):
        raise ImproperlyConfigured(
            f"include_static=True serves files from STATIC_ROOT, but {str(static_root)!r} "
            f"is not a directory. Run 'manage.py collectstatic' first."
        )
    prefix = "/" + parts.path.strip("/")
    app.router.add_static(prefix, static_root)


async def _keep_fallback_last(app: web.Application) -> None:
    """Routes added after ``get_aio_application()`` must still come before Django.

    aiohttp tries resources of one index bucket (3.10+) or all resources
    (3.9) in registration order, so move the fallback behind the routes
    added since.  Start-up runs before the router is frozen.
    """
    router = app.router
    fallback = app[APP_KEY].fallback
    lists = [getattr(router, "_resources", None)]
    index = getattr(router, "_resource_index", None)
    if isinstance(index, dict):
        lists.append(index.get(fallback.canonical))
    for resources in lists:
        if isinstance(resources, list) and fallback in resources and resources[-1] is not fallback:
            resources.remove(fallback)
            resources.append(fallback)

