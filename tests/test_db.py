"""Database connections of lifted views: Django's request cycle, CONN_MAX_AGE, no leaks."""

import asyncio
import logging
import threading

import pytest
from django.contrib.auth.models import User
from django.core import signals
from django.db import connections
from django.db.backends.signals import connection_created

from aiodjango.db import LiftedHandler, close_idle_threads

from .support.db import baseline, conn_max_age, db_threads, open_db_files, poll  # noqa: F401 (fixtures)

pytest_plugins = ["aiodjango.testing"]  # aio_app, aio_client

pytestmark = [pytest.mark.urls("tests.citizens_urls"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def created():
    """Thread ids of the database connections opened during the test."""
    opened = []

    def receiver(sender, connection, **kwargs):
        opened.append(threading.get_ident())

    connection_created.connect(receiver)
    yield opened
    connection_created.disconnect(receiver)


async def fetch_users(client, count, concurrency):
    async def one():
        r = await client.get("/citizens/users/")
        assert r.status == 200
        assert await r.json() == {"users": 1}

    done = 0
    while done < count:
        batch = min(concurrency, count - done)
        await asyncio.gather(*(one() for _ in range(batch)))
        done += batch


async def test_no_connection_leak_over_1000_requests(aio_client, baseline, created):
    peak = 0
    for _ in range(10):
        await fetch_users(aio_client, 100, concurrency=10)
        peak = max(peak, open_db_files())
    # CONN_MAX_AGE = 0: every request opened a connection and closed it.
    assert len(created) == 1000
    assert open_db_files() == baseline
    assert peak == baseline
    # AIODJANGO_DB_THREADS threads at most, ever.
    assert len(db_threads()) <= 8


async def test_persistent_connections_are_reused(aio_client, baseline, created, conn_max_age):
    conn_max_age(60)
    await fetch_users(aio_client, 200, concurrency=1)
    # One idle thread served every request with its one connection.
    assert len(created) == 1
    assert open_db_files() == baseline + 1
    # As many concurrent requests as threads (AIODJANGO_DB_THREADS = 8):
    # at most 8 connections, then reused.
    await fetch_users(aio_client, 200, concurrency=8)
    assert len(created) <= 8
    assert open_db_files() <= baseline + 8  # the idle threads keep theirs
    # More concurrent requests than that: they wait for the 8 threads.
    await fetch_users(aio_client, 100, concurrency=12)
    assert len(created) <= 8
    assert open_db_files() <= baseline + 8
    await close_idle_threads()  # what the application's cleanup does
    assert open_db_files() == baseline


async def test_expired_persistent_connections_are_replaced(aio_client, baseline, created, conn_max_age):
    from aiodjango.db import _pool

    conn_max_age(60)
    await fetch_users(aio_client, 3, concurrency=1)
    assert len(created) == 1
    (worker,) = _pool.idle

    def age():
        connections["default"].close_at = 0  # as if CONN_MAX_AGE had passed

    await asyncio.wrap_future(worker.submit(age))
    # Django's request_started closes it; the request opens a new one.
    await fetch_users(aio_client, 3, concurrency=1)
    assert len(created) == 2
    assert open_db_files() == baseline + 1


async def test_application_cleanup_closes_pooled_connections(aiohttp_client, baseline, conn_max_age):
    from aiodjango import get_aio_application

    conn_max_age(None)  # persistent, unlimited
    client = await aiohttp_client(get_aio_application())
    await fetch_users(client, 20, concurrency=4)
    assert open_db_files() > baseline
    await client.close()  # runs the application's on_cleanup
    assert open_db_files() == baseline
    assert await poll(lambda: db_threads() == [])


async def test_request_started_and_finished_in_the_request_thread(aio_client, baseline):
    events = []

    def started(sender, **kwargs):
        events.append(("started", sender, threading.get_ident(), kwargs["request"].path))

    def finished(sender, **kwargs):
        events.append(("finished", sender, threading.get_ident(), kwargs["request"].path))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        r = await aio_client.get("/citizens/hello/")
        assert r.status == 200
        assert events == []  # no database, no thread, no signal
        r = await aio_client.get("/citizens/db/threads/")
        body = await r.json()
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    first, second = body["threads"]
    assert first == second  # one thread for the whole request
    assert first["name"].startswith("aiodjango-db")
    ident = first["ident"]
    path = "/citizens/db/threads/"
    assert events == [
        ("started", LiftedHandler, ident, path),
        ("finished", LiftedHandler, ident, path),
    ]


async def test_concurrent_requests_get_their_own_threads(aio_client, baseline):
    from tests import citizens_views

    citizens_views.BARRIER.reset()
    first, second = await asyncio.gather(
        aio_client.get("/citizens/db/barrier/"), aio_client.get("/citizens/db/barrier/")
    )
    assert first.status == second.status == 200
    assert (await first.json())["ident"] != (await second.json())["ident"]


async def test_connection_closed_after_a_view_error(aio_client, baseline, caplog):
    caplog.set_level(logging.CRITICAL, "django.request")
    for _ in range(20):
        r = await aio_client.get("/citizens/db/raise/")
        assert r.status == 500
    assert open_db_files() == baseline


async def test_close_old_connections_helper(aio_client, baseline, conn_max_age):
    from aiodjango.db import close_old_connections, RequestContext

    conn_max_age(0)
    context = RequestContext(None).enter()
    try:
        assert await User.objects.acount() == 1
        assert open_db_files() == baseline + 1
        await close_old_connections()  # CONN_MAX_AGE = 0: obsolete at once
        assert open_db_files() == baseline
    finally:
        context.leave()
        await context.finish()


async def test_control_an_unlifted_handler_keeps_its_connection(aiohttp_client, baseline):
    """The counting above would see a leak: aiohttp routes aiodjango doesn't wrap keep theirs."""
    from aiohttp import web

    from aiodjango import get_aio_application

    async def raw_users(request):
        return web.json_response({"users": await User.objects.acount()})

    app = get_aio_application()
    app.router.add_get("/raw/users/", raw_users)
    client = await aiohttp_client(app)
    r = await client.get("/raw/users/")
    assert await r.json() == {"users": 1}
    assert open_db_files() == baseline + 1  # closed by the fixture, not by a request cycle
