"""Django's request cycle for aiohttp handlers that aren't lifted.

``django_request_cycle`` (a decorator) and ``django_request_cycle_middleware``
give routes added to the application by hand what lifted views have:
database connections closed per ``CONN_MAX_AGE`` by ``request_started`` /
``request_finished``, the session saved and its cookie set, Django's answers
and log records for its exceptions.  Real servers, the real test database.
"""

import asyncio
import logging
import threading

import pytest
from aiohttp import web
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core import signals
from django.db import connections
from django.http import Http404, HttpRequest

from aiodjango import get_aio_application
from aiodjango.auth import get_session
from aiodjango.db import LiftedHandler
from aiodjango.handlers import django_request_cycle, django_request_cycle_middleware

from .support.db import baseline, open_db_files  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.urls("tests.citizens_urls"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cycle_signals():
    """(signal name, sender, thread) of every request_started/request_finished."""
    seen = []

    def started(sender, **kwargs):
        seen.append(("started", sender, threading.get_ident()))

    def finished(sender, **kwargs):
        seen.append(("finished", sender, threading.get_ident()))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    yield seen
    signals.request_started.disconnect(started)
    signals.request_finished.disconnect(finished)


async def count_users(request):
    """A plain aiohttp handler using the ORM; says which thread ran it and if it was connected."""

    def query():
        return User.objects.count(), threading.get_ident(), connections["default"].connection is not None

    users, thread, connected = await sync_to_async(query)()
    return web.json_response({"users": users, "thread": thread, "connected": connected})


async def remember(request):
    session = await get_session(request)
    session["plain"] = session.get("plain", 0) + 1
    if "missing" in request.query:
        raise Http404("no such thing")
    return web.json_response({"plain": session["plain"]})


class UsersView(web.View):
    @django_request_cycle
    async def get(self):
        return await count_users(self.request)


def application(*, middleware=False, decorate=False):
    app = get_aio_application(middlewares=[django_request_cycle_middleware] if middleware else [])
    wrap = django_request_cycle if decorate else (lambda handler: handler)
    app.router.add_get("/plain/users/", wrap(count_users))
    app.router.add_get("/plain/remember/", wrap(remember))
    app.router.add_view("/plain/view/", UsersView)
    return app


@pytest.mark.parametrize("how", ["middleware", "decorator"])
async def test_conn_max_age_0_closes_the_connection_after_the_request(aiohttp_client, baseline, cycle_signals, how):
    client = await aiohttp_client(application(middleware=how == "middleware", decorate=how == "decorator"))
    for _ in range(3):
        r = await client.get("/plain/users/")
        body = await r.json()
        assert body["users"] == 1 and body["connected"]
        # CONN_MAX_AGE = 0: request_finished closed it before the response went out.
        assert open_db_files() == baseline
    thread = body["thread"]
    assert thread != threading.get_ident()
    assert cycle_signals[-2:] == [("started", LiftedHandler, thread), ("finished", LiftedHandler, thread)]
    assert len(cycle_signals) == 6  # once per request, never twice


async def test_a_web_view_method_can_be_decorated(aiohttp_client, baseline, cycle_signals):
    client = await aiohttp_client(application())
    r = await client.get("/plain/view/")
    assert (await r.json())["users"] == 1
    assert open_db_files() == baseline
    assert [name for name, *_ in cycle_signals] == ["started", "finished"]


async def test_control_without_the_cycle_the_connection_stays_open(aiohttp_client, baseline, cycle_signals):
    client = await aiohttp_client(application())
    r = await client.get("/plain/users/")
    assert (await r.json())["users"] == 1
    assert open_db_files() == baseline + 1  # closed by the fixture, not by a request cycle
    assert cycle_signals == []


async def test_persistent_connections_are_kept_and_reused(aiohttp_client, baseline):
    database = connections.settings["default"]
    before = database.get("CONN_MAX_AGE", 0)
    database["CONN_MAX_AGE"] = 60
    try:
        client = await aiohttp_client(application(middleware=True))
        threads = set()
        for _ in range(5):
            r = await client.get("/plain/users/")
            threads.add((await r.json())["thread"])
            assert open_db_files() == baseline + 1
        assert len(threads) == 1  # the pooled thread, with its connection
    finally:
        database["CONN_MAX_AGE"] = before


@pytest.mark.parametrize("how", ["middleware", "decorator"])
async def test_the_session_is_saved_and_its_cookie_set(aiohttp_client, how, caplog):
    client = await aiohttp_client(application(middleware=how == "middleware", decorate=how == "decorator"))
    r = await client.get("/plain/remember/")
    assert await r.json() == {"plain": 1}
    assert "sessionid=" in r.headers["Set-Cookie"] and "Cookie" in r.headers["Vary"]
    r = await client.get("/plain/remember/")
    assert await r.json() == {"plain": 2}
    # Django's 404, logged as Django does; the session is saved for it too.
    with caplog.at_level(logging.WARNING, "django.request"):
        r = await client.get("/plain/remember/?missing")
    assert r.status == 404
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage() == "Not Found: /plain/remember/"
    assert isinstance(record.request, HttpRequest)
    r = await client.get("/plain/remember/")
    assert await r.json() == {"plain": 4}


async def test_errors_are_logged_naming_the_handler(aiohttp_client, caplog):
    async def broken(request):
        raise RuntimeError("broken plain handler")

    app = get_aio_application(middlewares=[django_request_cycle_middleware])
    app.router.add_get("/plain/broken/", broken)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR, "django.request"):
        r = await client.get("/plain/broken/")
    assert r.status == 500
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage().startswith("Internal Server Error: /plain/broken/ (raised by aiohttp handler ")
    assert "test_errors_are_logged_naming_the_handler.<locals>.broken" in record.getMessage()
    assert isinstance(record.request, HttpRequest)


async def test_the_middleware_leaves_lifted_and_django_views_alone(aiohttp_client, baseline, cycle_signals):
    client = await aiohttp_client(application(middleware=True))
    r = await client.get("/citizens/users/")  # lifted: its own cycle, once
    assert await r.json() == {"users": 1}
    assert [name for name, *_ in cycle_signals] == ["started", "finished"]
    cycle_signals.clear()
    r = await client.get("/django/hello/")  # Django's, through the bridge
    assert (r.status, await r.text()) == (200, "hello from django")
    assert [(name, sender.__name__) for name, sender, _ in cycle_signals] == [
        ("started", "WSGIHandler"),
        ("finished", "WSGIHandler"),
    ]


async def test_concurrent_plain_requests_each_get_their_thread(aiohttp_client, baseline):
    """Two requests meet at a barrier in their database threads: only if each has its own."""
    barrier = threading.Barrier(2, timeout=5)

    async def meet(request):
        await sync_to_async(barrier.wait)()
        return await count_users(request)

    app = get_aio_application(middlewares=[django_request_cycle_middleware])
    app.router.add_get("/plain/meet/", meet)
    client = await aiohttp_client(app)

    async def one():
        r = await client.get("/plain/meet/")
        assert r.status == 200
        return (await r.json())["thread"]

    first, second = await asyncio.gather(one(), one())
    assert first != second
    assert open_db_files() == baseline
