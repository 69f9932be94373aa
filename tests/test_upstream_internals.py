"""Canaries: the private internals of asgiref, aiohttp, Django (and Python) that aiodjango uses.

One test per internal, each failing with a message that says what upstream
changed, which aiodjango module relies on it and for what, so that an
upgrade breaking one points at the place to fix rather than at a symptom.
Every use in aiodjango/ carries a comment saying why no public API serves.
"""

import io
import sys
import threading
import weakref
from concurrent.futures import Executor, Future

import aiohttp
import pytest
from aiohttp import web
from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async

AIOHTTP = tuple(int(part) for part in aiohttp.__version__.split(".")[:2])


def require(condition, library, what, where, why, fix=""):
    """Fail with the canary's message unless ``condition``."""
    if not condition:
        message = f"{library} no longer has {what}, used by {where} for {why}."
        if fix:
            message += f" {fix}"
        pytest.fail(message, pytrace=False)


# -- asgiref (aiodjango/db.py)


def test_asgiref_thread_sensitive_context_variable():
    import contextvars

    require(
        isinstance(getattr(SyncToAsync, "thread_sensitive_context", None), contextvars.ContextVar),
        "asgiref",
        "SyncToAsync.thread_sensitive_context (a ContextVar holding the current "
        "ThreadSensitiveContext)",
        "aiodjango/db.py (RequestContext.enter and leave)",
        "making each lifted request's context current without `async with` around the view",
        "Use ThreadSensitiveContext(executor=...) (asgiref >= 3.13) entered with `async with` "
        "in aiodjango/handlers.py instead.",
    )


def test_asgiref_context_to_thread_executor_mapping():
    require(
        isinstance(
            getattr(SyncToAsync, "context_to_thread_executor", None), weakref.WeakKeyDictionary
        ),
        "asgiref",
        "SyncToAsync.context_to_thread_executor (a WeakKeyDictionary: context -> executor)",
        "aiodjango/db.py (RequestContext.enter)",
        "choosing the executor of a request's thread-sensitive calls (the bounded pool)",
        "Use ThreadSensitiveContext(executor=...) (asgiref >= 3.13) instead.",
    )


async def test_asgiref_submits_thread_sensitive_calls_to_the_contexts_executor():
    """The behaviour both attributes stand for: asgiref calls our executor, on the loop."""

    class Recording(Executor):
        def __init__(self):
            self.threads = []

        def submit(self, fn, /, *args, **kwargs):
            self.threads.append(threading.get_ident())
            future = Future()
            future.set_running_or_notify_cancel()
            try:
                future.set_result(fn(*args, **kwargs))  # here: enough for a canary
            except BaseException as exc:
                future.set_exception(exc)
            return future

    context = ThreadSensitiveContext()
    executor = Recording()
    token = SyncToAsync.thread_sensitive_context.set(context)
    SyncToAsync.context_to_thread_executor[context] = executor
    try:
        result = await sync_to_async(lambda: "ran", thread_sensitive=True)()
    finally:
        SyncToAsync.context_to_thread_executor.pop(context, None)
        SyncToAsync.thread_sensitive_context.reset(token)
    require(
        result == "ran" and executor.threads == [threading.get_ident()],
        "asgiref",
        "the lookup of a thread-sensitive call's executor in "
        "SyncToAsync.context_to_thread_executor[SyncToAsync.thread_sensitive_context.get()], "
        "submitted to from the event loop's thread (loop.run_in_executor)",
        "aiodjango/db.py (RequestContext, _Dispatch)",
        "running lifted views' ORM calls in the bounded database threads, without blocking "
        "the loop in submit()",
        "Read asgiref's SyncToAsync.__call__ and adapt RequestContext.",
    )


# -- aiohttp


def _router_with(*paths):
    app = web.Application()

    async def handler(request):
        return web.Response()

    resources = [app.router.add_resource(path, name=f"r{n}") for n, path in enumerate(paths)]
    for resource in resources:
        resource.add_route("GET", handler)
    return app.router, resources


def test_aiohttp_router_resources_list():
    router, resources = _router_with("/a", "/b")
    listed = getattr(router, "_resources", None)
    require(
        isinstance(listed, list) and listed == resources,
        "aiohttp",
        "UrlDispatcher._resources (the list of resources, in registration order)",
        "aiodjango/application.py (_keep_fallback_last)",
        "moving the Django fallback behind routes added after get_aio_application()",
        "Find aiohttp's new resource order and keep the FallbackResource last in it.",
    )


@pytest.mark.skipif(AIOHTTP < (3, 10), reason="aiohttp 3.9 has no resource index")
def test_aiohttp_router_resource_index():
    router, resources = _router_with("/x/a", "/x/b")
    index = getattr(router, "_resource_index", None)
    require(
        isinstance(index, dict)
        and isinstance(index.get("/x/a"), list)
        and resources[0] in index["/x/a"],
        "aiohttp",
        "UrlDispatcher._resource_index (dict: canonical path -> list of resources)",
        "aiodjango/application.py (_keep_fallback_last)",
        "moving the Django fallback behind routes added under '/' after get_aio_application()",
        "Find aiohttp's new lookup structure and keep the FallbackResource last in it.",
    )


def test_aiohttp_router_named_resources():
    router, resources = _router_with("/n")
    named = getattr(router, "_named_resources", None)
    require(
        isinstance(named, dict) and named.get("r0") is resources[0],
        "aiohttp",
        "UrlDispatcher._named_resources (dict: name -> resource)",
        "aiodjango/routing.py (LiftedRoutes.register)",
        "registering Django URL names aiohttp's name check refuses ('async-hello')",
    )


def test_aiohttp_resource_name_attribute():
    router, (resource,) = _router_with("/m")
    require(
        getattr(resource, "_name", None) == "r0" and resource.name == "r0",
        "aiohttp",
        "AbstractResource._name (the attribute behind .name)",
        "aiodjango/routing.py (LiftedRoutes.register)",
        "naming lifted resources after Django's URL names",
    )
    resource._name = "changed"
    require(
        resource.name == "changed",
        "aiohttp",
        "AbstractResource.name reading AbstractResource._name",
        "aiodjango/routing.py (LiftedRoutes.register)",
        "naming lifted resources after Django's URL names",
    )


async def test_aiohttp_writer_output_size(aiohttp_client):
    """handlers.py tells whether a response has started by the bytes written."""
    seen = {}

    async def handler(request):
        seen["before"] = getattr(request.writer, "output_size", None)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"x")
        seen["after"] = getattr(request.writer, "output_size", None)
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    r = await client.get("/")
    assert await r.read() == b"x"
    require(
        seen.get("before") == 0 and isinstance(seen.get("after"), int) and seen["after"] > 0,
        "aiohttp",
        "request.writer.output_size (bytes written on the connection for the response)",
        "aiodjango/handlers.py (_response_started)",
        "telling whether an error can still be answered or the connection must be closed",
    )


# -- Django


def test_django_route_and_regex_pattern_sources():
    from django.urls import path, re_path

    route = path("a/<int:pk>/", lambda request: None).pattern
    regex = re_path(r"^b/(?P<pk>\d+)/$", lambda request: None).pattern
    require(
        getattr(route, "_route", None) == "a/<int:pk>/"
        and getattr(regex, "_regex", None) == r"^b/(?P<pk>\d+)/$",
        "Django",
        "RoutePattern._route / RegexPattern._regex (the pattern's source string)",
        "aiodjango/urlconf.py (Level)",
        "indexing lifted routes by their literal prefix",
    )


def test_django_pattern_is_endpoint():
    from django.urls import include, path, re_path

    endpoint = re_path(r"^b/$", lambda request: None).pattern
    resolver = re_path(r"^c/", include([])).pattern
    route = path("d/", lambda request: None).pattern
    require(
        getattr(endpoint, "_is_endpoint", None) is True
        and getattr(resolver, "_is_endpoint", None) is False
        and getattr(route, "_is_endpoint", None) is True,
        "Django",
        "RegexPattern._is_endpoint / RoutePattern._is_endpoint",
        "aiodjango/urlconf.py (_regex_matcher)",
        "matching endpoints ending in '$' with fullmatch(), as Django's match() does",
    )


def _form_request(**extra):
    from django.core.handlers.wsgi import WSGIRequest

    return WSGIRequest(
        {
            **extra,
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/",
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "CONTENT_LENGTH": "7",
            "wsgi.input": io.BytesIO(b"a=wrong"),
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
        }
    )


def test_django_request_post_cache():
    from django.http import QueryDict
    from django.utils.datastructures import MultiValueDict

    dj = _form_request()
    require(
        not hasattr(dj, "_post"),
        "Django",
        "a lazily loaded HttpRequest._post (absent until request.POST is read)",
        "aiodjango/security.py (csrf_rejection) and aiodjango/django_request.py",
        "telling whether the form was read already",
    )
    form = QueryDict("a=right")
    dj._post, dj._files = form, MultiValueDict()
    require(
        dj.POST is form and dj.POST["a"] == "right" and len(dj.FILES) == 0,
        "Django",
        "HttpRequest._post / HttpRequest._files (the cache behind request.POST / FILES)",
        "aiodjango/security.py (csrf_rejection)",
        "giving CsrfViewMiddleware the form aiohttp parsed (the body is read once)",
    )


def test_django_csrf_meta_keys(settings):
    from django.middleware.csrf import CsrfViewMiddleware, get_token

    settings.CSRF_USE_SESSIONS = False
    dj = _form_request(HTTP_COOKIE=f"{settings.CSRF_COOKIE_NAME}={'a' * 32}")
    CsrfViewMiddleware(lambda request: None).process_request(dj)
    require(
        dj.META.get("CSRF_COOKIE") == "a" * 32,
        "Django",
        "request.META['CSRF_COOKIE'] (the secret CsrfViewMiddleware.process_request read "
        "from the cookie)",
        "aiodjango/security.py (_csrf_check)",
        "running process_request once per request",
    )
    dj = _form_request()  # no cookie: get_token() makes one
    get_token(dj)
    require(
        "CSRF_COOKIE" in dj.META and dj.META.get("CSRF_COOKIE_NEEDS_UPDATE") is True,
        "Django",
        "request.META['CSRF_COOKIE'] / ['CSRF_COOKIE_NEEDS_UPDATE'] (set by get_token())",
        "aiodjango/django_request.py (response_phase, run_response_phase)",
        "knowing when the CSRF cookie must be sent after a lifted view",
    )


def test_django_csrf_trusted_origin_attributes(settings):
    from django.middleware.csrf import CsrfViewMiddleware

    settings.CSRF_TRUSTED_ORIGINS = ["https://exact.example", "https://*.wild.example"]
    middleware = CsrfViewMiddleware(lambda request: None)
    exact = getattr(middleware, "allowed_origins_exact", None)
    subdomains = getattr(middleware, "allowed_origin_subdomains", None)
    require(
        exact is not None
        and "https://exact.example" in exact
        and isinstance(subdomains, dict)
        and list(subdomains.get("https", ())) == [".wild.example"],
        "Django",
        "CsrfViewMiddleware.allowed_origins_exact / allowed_origin_subdomains "
        "(CSRF_TRUSTED_ORIGINS, parsed)",
        "aiodjango/security.py (OriginCheck)",
        "checking websocket Origins against CSRF_TRUSTED_ORIGINS as Django checks them",
    )


def test_django_runserver_command_hooks():
    import inspect

    from django.core.management.commands.runserver import Command

    handle = inspect.getsource(Command.handle)
    require(
        all(callable(getattr(Command, name, None)) for name in ("inner_run", "on_bind", "run"))
        and callable(getattr(Command, "check_migrations", None))
        and all(f"self.{name} =" in handle for name in ("addr", "port", "use_ipv6"))
        and "shutdown_message" in getattr(Command, "stealth_options", ()),
        "Django",
        "runserver's Command.inner_run / on_bind / run, handle() setting self.addr, "
        "self.port, self.use_ipv6, and the stealth option shutdown_message",
        "aiodjango/management/commands/runserver.py (Command)",
        "replacing the server under Django's runserver while keeping its options, checks "
        "and messages",
    )


def test_django_media_files_handler():
    from django.test import testcases

    from aiodjango.testing import live_server

    if "_MediaFilesHandler" not in inspect_source(live_server):
        pytest.skip("aiodjango/testing/live_server.py no longer uses _MediaFilesHandler")
    require(
        isinstance(getattr(testcases, "_MediaFilesHandler", None), type),
        "Django",
        "django.test.testcases._MediaFilesHandler",
        "aiodjango/testing/live_server.py (AioLiveServerThread.get_wsgi_application)",
        "serving MEDIA_URL in the live server as Django's LiveServerThread does",
    )


def test_django_live_server_thread():
    from django.test.testcases import LiveServerTestCase, LiveServerThread

    from aiodjango.testing import live_server

    if not hasattr(live_server, "AioLiveServerThread"):
        pytest.skip("aiodjango/testing/live_server.py no longer subclasses LiveServerThread")

    def static_handler(app):
        return app

    thread = LiveServerThread("localhost", static_handler, connections_override={}, port=0)
    require(
        isinstance(getattr(thread, "is_ready", None), threading.Event)
        and getattr(thread, "error", "missing") is None
        and getattr(thread, "connections_override", None) == {}
        and getattr(thread, "static_handler", None) is static_handler
        and (thread.host, thread.port) == ("localhost", 0)
        and callable(getattr(thread, "terminate", None))
        and getattr(LiveServerTestCase, "server_thread_class", None) is LiveServerThread,
        "Django",
        "LiveServerThread(host, static_handler, connections_override=, port=) with "
        "is_ready, error, connections_override, static_handler, host, port, terminate(), "
        "and LiveServerTestCase.server_thread_class",
        "aiodjango/testing/live_server.py (AioLiveServerThread, the aiohttp live server test case)",
        "running the combined application where LiveServerTestCase runs Django's server",
    )


def inspect_source(module):
    import inspect

    return inspect.getsource(module)


# -- Python (aiodjango/urlconf.py)


def test_python_regex_parser():
    if sys.version_info >= (3, 11):
        import re._constants as constants
        import re._parser as parser
    else:
        import sre_constants as constants
        import sre_parse as parser

    parsed = parser.parse(r"^abc/$")
    items = list(parsed)
    require(
        items[0] == (constants.AT, constants.AT_BEGINNING)
        and [item[0] for item in items[1:5]] == [constants.LITERAL] * 4
        and items[-1] == (constants.AT, constants.AT_END)
        and hasattr(parsed, "state")
        and hasattr(constants, "AT_BEGINNING_STRING")
        and hasattr(constants, "AT_END_STRING"),
        "Python",
        "re._parser.parse() / re._constants (sre_parse / sre_constants before 3.11) "
        "with AT, AT_BEGINNING(_STRING), AT_END(_STRING), LITERAL and parsed.state.flags",
        "aiodjango/urlconf.py (_literal_prefix)",
        "finding the literal prefix of regex URL patterns (the route index)",
    )
