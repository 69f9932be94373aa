"""Lifted views' database threads are bounded (AIODJANGO_DB_THREADS), idle websockets hold none.

Real servers (aiohttp's TestServer with the combined application), real
websockets, many requests at once against few threads.  The test database is
a file: its open descriptors in /proc/self/fd are the open connections.
"""

import asyncio
import logging
import threading
import time

import pytest
from aiohttp import WSMsgType, web
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core import signals
from django.db import connections
from django.db.backends.signals import connection_created
from django.urls import path

from aiodjango.auth import get_session, get_user
from aiodjango.checks import check_db_threads
from aiodjango.db import (
    DatabaseThreadsBusy,
    LiftedHandler,
    RequestContext,
    _pool,
    close_idle_threads,
    current_context,
)

from .support.db import conn_max_age, db_threads, open_db_files  # noqa: F401 (a fixture)
from .support.db import poll as support_poll

pytest_plugins = ["aiodjango.testing"]  # aio_app, aio_client

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db(transaction=True)]

WAIT = 10.0  # seconds: the bound on every wait below


# -- Views (this module is the URLconf)


class Probe:
    """What the database threads do: how many run at once, in which threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.gate = threading.Event()
        self.gate.set()
        self.running = 0
        self.peak = 0
        self.peak_threads = 0
        self.peak_files = 0
        self.idents = set()
        self.order = []

    def hold(self, tag, seconds):
        """In a database thread: count it, wait at the gate (bounded), query."""
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.peak_threads = max(self.peak_threads, len(db_threads()))
            self.idents.add(threading.get_ident())
            self.order.append(tag)
        try:
            if not self.gate.wait(WAIT):
                raise TimeoutError("the test never opened the gate")
            if seconds:
                time.sleep(seconds)
            count = User.objects.count()
            with self.lock:
                self.peak_files = max(self.peak_files, open_db_files())
            return count
        finally:
            with self.lock:
                self.running -= 1


PROBE = Probe()


async def users(request):
    return web.json_response({"users": await User.objects.acount()})


async def users_or_busy(request):
    """Catches the error itself: an HTTP view may answer what it likes."""
    try:
        return web.json_response({"users": await User.objects.acount()})
    except DatabaseThreadsBusy as exc:
        return web.json_response({"busy": isinstance(exc, web.HTTPServiceUnavailable)}, status=429)


async def hold(request):
    seconds = float(request.query.get("seconds", "0"))
    count = await sync_to_async(PROBE.hold)(request.query.get("tag", ""), seconds)
    return web.json_response({"users": count})


async def hello(request):
    return web.Response(text="hello")


BARRIER = {"barrier": None}


def _meet():
    BARRIER["barrier"].wait()
    return threading.get_ident()


async def meet(request):
    """Requests meet here: they all can only if each has its own thread at once."""
    return web.json_response({"ident": await sync_to_async(_meet)()})


async def ws_user(request):
    """The user (before the handshake), a query (after it), then a query per message."""
    user = await get_user(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"user": user.get_username(), "users": await User.objects.acount()})
    async for message in ws:
        if message.data == "query":
            try:
                await ws.send_json({"users": await User.objects.acount()})
            except DatabaseThreadsBusy as exc:
                await ws.send_json({"busy": str(exc)})
        elif message.data == "uncaught":
            await ws.send_json({"users": await User.objects.acount()})
    return ws


async def ws_session(request):
    """Changes the session after the handshake; aiodjango saves it after the view."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    session = await get_session(request)
    session["from_ws"] = (await ws.receive_str())
    await ws.send_str("noted")
    await ws.close()
    return ws


async def read_session(request):
    session = await get_session(request)
    return web.json_response({"from_ws": session.get("from_ws")})


LATE = {"event": None, "errors": None, "task": None}


async def starts_a_late_task(request):
    """Starts a task that uses the ORM after the view returned (a mistake)."""
    event, errors = LATE["event"], LATE["errors"]

    async def late():
        await event.wait()
        try:
            await User.objects.acount()
        except Exception as exc:
            errors.append(exc)
        else:
            errors.append(None)

    LATE["task"] = asyncio.ensure_future(late())
    return web.Response(text="started")


async def stream(request):
    """A streamed response: a query before it starts, one after."""
    before = await User.objects.acount()
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(f"{before}\n".encode())
    after = await User.objects.acount()
    await response.write(f"{after}\n".encode())
    await response.write_eof()
    return response


urlpatterns = [
    path("users/", users),
    path("users-or-busy/", users_or_busy),
    path("hold/", hold),
    path("hello/", hello),
    path("meet/", meet),
    path("ws/user/", ws_user),
    path("ws/session/", ws_session),
    path("session/", read_session),
    path("late/", starts_a_late_task),
    path("stream/", stream),
]


# -- Helpers and fixtures


def lent():
    """Threads of the pool that requests hold now."""
    with _pool.lock:
        assert len(_pool.lent) == _pool.size - len(_pool.idle)
        return len(_pool.lent)


async def poll(probe, timeout=WAIT):
    """:func:`tests.support.db.poll`, bounded by this module's WAIT."""
    return await support_poll(probe, timeout)


@pytest.fixture
async def baseline():
    """One user; every connection and pooled thread closed before and after."""
    PROBE.reset()
    await close_idle_threads()
    assert await poll(lambda: db_threads() == [] and lent() == 0)
    await sync_to_async(User.objects.create_user)("ada")
    await sync_to_async(connections.close_all)()
    try:
        yield open_db_files()
    finally:
        PROBE.gate.set()
        await close_idle_threads()
        await sync_to_async(connections.close_all)()


class Created(list):
    """Thread ids of the connections lifted views opened; ``peak``: files open then, at most."""

    peak = 0


@pytest.fixture
def created():
    opened = Created()

    def receiver(sender, connection, **kwargs):
        if threading.current_thread().name.startswith("aiodjango-db"):
            opened.append(threading.get_ident())
            opened.peak = max(opened.peak, open_db_files())

    connection_created.connect(receiver)
    yield opened
    connection_created.disconnect(receiver)


async def logged_in(client):
    from aiodjango.testing import aforce_login  # (a plugin: imported by pytest first)

    user = await sync_to_async(User.objects.get)(username="ada")
    await aforce_login(client, user)
    await sync_to_async(connections.close_all)()  # the login's connection (asgiref's thread)


# -- Idle websockets


@pytest.mark.parametrize("max_age", [0, 60])
async def test_idle_websockets_hold_no_database_thread(
    aio_client, baseline, settings, conn_max_age, max_age, created
):
    settings.AIODJANGO_DB_THREADS = 4
    conn_max_age(max_age)
    await logged_in(aio_client)
    sockets = await asyncio.gather(*(aio_client.ws_connect("/ws/user/") for _ in range(48)))
    try:
        greetings = await asyncio.gather(*(ws.receive_json(timeout=WAIT) for ws in sockets))
        # Each got the user before its handshake and queried after it.
        assert greetings == [{"user": "ada", "users": 1}] * 48
        # Idle: no thread is held, at most the bound exist, and their connections
        # are closed (CONN_MAX_AGE = 0) or kept by idle pooled threads only.
        assert await poll(lambda: lent() == 0)
        assert len(db_threads()) <= 4
        assert len(set(created)) <= 4
        if max_age == 0:
            assert await poll(lambda: open_db_files() == baseline)
        else:
            assert open_db_files() <= baseline + 4
        # The 4 threads are free: 4 requests that each need a thread at once meet.
        BARRIER["barrier"] = threading.Barrier(4, timeout=WAIT)
        met = await asyncio.gather(*(aio_client.get("/meet/") for _ in range(4)))
        assert [r.status for r in met] == [200] * 4
        assert len({(await r.json())["ident"] for r in met}) == 4
        # All 48 query at once: 4 threads serve them, each call borrowing one.
        for ws in sockets:
            await ws.send_str("query")
        answers = await asyncio.gather(*(ws.receive_json(timeout=WAIT) for ws in sockets))
        assert answers == [{"users": 1}] * 48
        assert len(db_threads()) <= 4
        assert len(set(created)) <= 4
        assert created.peak <= baseline + 4  # connections open at once, at most
        assert await poll(lambda: lent() == 0)
        if max_age == 0:
            assert await poll(lambda: open_db_files() == baseline)
        else:
            assert open_db_files() <= baseline + 4
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    assert await poll(lambda: lent() == 0)


async def test_websocket_request_cycle_ends_at_the_handshake(aio_client, baseline):
    events = []

    def started(sender, **kwargs):
        events.append(("started", sender, threading.get_ident()))

    def finished(sender, **kwargs):
        events.append(("finished", sender, threading.get_ident()))

    await logged_in(aio_client)
    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        ws = await aio_client.ws_connect("/ws/user/")
        assert await ws.receive_json(timeout=WAIT) == {"user": "ada", "users": 1}
        await ws.send_str("query")
        assert await ws.receive_json(timeout=WAIT) == {"users": 1}
        await ws.close()
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    # get_user() before the handshake: one request cycle, in one thread, ended
    # by the handshake; the calls after it have no signals.
    (_, _, ident), _ = events
    assert events == [("started", LiftedHandler, ident), ("finished", LiftedHandler, ident)]
    assert await poll(lambda: lent() == 0)


async def test_session_changed_after_the_handshake_is_saved(aio_client, baseline):
    await logged_in(aio_client)
    ws = await aio_client.ws_connect("/ws/session/")
    await ws.send_str("hello from the socket")
    assert await ws.receive_str(timeout=WAIT) == "noted"
    assert (await ws.receive(timeout=WAIT)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    await ws.close()
    # The session is saved after the view (which the client doesn't wait for),
    # in a call of its own: no thread was held.
    seen = []

    async def read():
        r = await aio_client.get("/session/")
        seen.append((await r.json())["from_ws"])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    await read()
    while seen[-1] is None and loop.time() < deadline:
        await asyncio.sleep(0.01)
        await read()
    assert seen[-1] == "hello from the socket"
    assert await poll(lambda: lent() == 0)


async def test_streamed_response_gives_its_thread_back(aio_client, baseline, created):
    r = await aio_client.get("/stream/")
    assert r.status == 200
    assert await r.text() == "1\n1\n"
    assert await poll(lambda: lent() == 0)
    assert open_db_files() == baseline


# -- The bound


async def test_more_requests_than_threads_wait_their_turn(aio_client, baseline, settings, created):
    settings.AIODJANGO_DB_THREADS = 3
    responses = await asyncio.gather(
        *(aio_client.get(f"/hold/?seconds=0.02&tag={n}") for n in range(30))
    )
    assert [r.status for r in responses] == [200] * 30
    assert [await r.json() for r in responses] == [{"users": 1}] * 30
    assert PROBE.peak == 3  # the bound reached, never passed
    assert PROBE.peak_threads <= 3
    assert len(PROBE.idents) <= 3
    assert len(set(created)) <= 3
    assert PROBE.peak_files <= baseline + 3
    assert created.peak <= baseline + 3
    assert await poll(lambda: lent() == 0)
    assert open_db_files() == baseline


async def test_waiting_requests_are_served_first_come_first_served(aio_client, baseline, settings):
    settings.AIODJANGO_DB_THREADS = 1
    PROBE.gate.clear()
    first = asyncio.ensure_future(aio_client.get("/hold/?tag=first"))
    assert await poll(lambda: PROBE.order == ["first"])
    later = []
    for n in range(5):
        later.append(asyncio.ensure_future(aio_client.get(f"/hold/?tag={n}")))
        assert await poll(lambda: len(_pool.waiters) == n + 1)
    PROBE.gate.set()
    responses = await asyncio.gather(first, *later)
    assert [r.status for r in responses] == [200] * 6
    assert PROBE.order == ["first", "0", "1", "2", "3", "4"]
    assert PROBE.peak == 1


async def test_wait_timeout_answers_503_and_logs_it(aio_client, baseline, settings, caplog):
    settings.AIODJANGO_DB_THREADS = 1
    settings.AIODJANGO_DB_TIMEOUT = 0.1
    PROBE.gate.clear()
    holder = asyncio.ensure_future(aio_client.get("/hold/?tag=holder"))
    try:
        assert await poll(lambda: PROBE.order == ["holder"])
        with caplog.at_level(logging.ERROR, "django.request"):
            r = await aio_client.get("/users/")
            assert r.status == 503
            assert await r.text() == "503 Service Unavailable\n"
            # The event loop is not blocked: a view without the database answers.
            assert (await aio_client.get("/hello/")).status == 200
            # Logged in a thread (as the lifted handler logs errors): soon.
            assert await poll(lambda: [r for r in caplog.records if r.name == "django.request"])
        (record,) = [rec for rec in caplog.records if rec.name == "django.request"]
        assert record.status_code == 503
        assert record.request.path == "/users/"  # Django's stand-in, as handlers log
        assert record.request.META["REQUEST_METHOD"] == "GET"
        message = record.getMessage()
        assert message.startswith("Service Unavailable: /users/")
        assert "AIODJANGO_DB_TIMEOUT (0.1 s)" in message
        assert "AIODJANGO_DB_THREADS (1)" in message
        # A view may catch it (before the response started it is also a 503).
        r = await aio_client.get("/users-or-busy/")
        assert r.status == 429 and await r.json() == {"busy": True}
    finally:
        PROBE.gate.set()
    assert (await holder).status == 200
    r = await aio_client.get("/users/")  # a thread is free again
    assert r.status == 200
    assert lent() == 0 and len(_pool.waiters) == 0


async def test_websocket_call_timeout_raises_in_the_view(aio_client, baseline, settings, caplog):
    settings.AIODJANGO_DB_THREADS = 1
    settings.AIODJANGO_DB_TIMEOUT = 0.1
    caplog.set_level(logging.CRITICAL, "django.request")
    await logged_in(aio_client)
    ws = await aio_client.ws_connect("/ws/user/")
    try:
        assert await ws.receive_json(timeout=WAIT) == {"user": "ada", "users": 1}
        PROBE.gate.clear()
        holder = asyncio.ensure_future(aio_client.get("/hold/?tag=holder"))
        assert await poll(lambda: PROBE.order == ["holder"])
        await ws.send_str("query")
        answer = await ws.receive_json(timeout=WAIT)
        assert "AIODJANGO_DB_THREADS" in answer["busy"]
        # Not caught by the view: the websocket is closed, nothing hangs.
        await ws.send_str("uncaught")
        message = await ws.receive(timeout=WAIT)
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
        PROBE.gate.set()
        assert (await holder).status == 200
    finally:
        PROBE.gate.set()
        await ws.close()
    assert await poll(lambda: lent() == 0)


async def in_request(call):
    """``await call()`` in a request's context, as the lifted handler runs a view."""
    context = RequestContext(None).enter()
    try:
        return await call()
    finally:
        context.leave()
        if context.worker is not None:
            await context.finish()


async def test_a_cancelled_wait_loses_no_thread(baseline, settings):
    settings.AIODJANGO_DB_THREADS = 1
    PROBE.gate.clear()
    holder = asyncio.ensure_future(in_request(sync_to_async(lambda: PROBE.hold("holder", 0))))
    try:
        assert await poll(lambda: PROBE.order == ["holder"])
        waiting = asyncio.ensure_future(in_request(User.objects.acount))
        assert await poll(lambda: len(_pool.waiters) == 1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        PROBE.gate.set()
    assert await holder == 1
    # The thread went to the cancelled request, which gave it straight back.
    assert await poll(lambda: lent() == 0 and len(_pool.idle) == 1)
    assert len(_pool.waiters) == 0
    assert await in_request(User.objects.acount) == 1


async def test_a_call_cancelled_in_the_queue_loses_no_thread(baseline, settings):
    """After the response started: a call queued behind another, cancelled."""
    settings.AIODJANGO_DB_THREADS = 1
    PROBE.gate.clear()

    async def two_calls():
        context = current_context()
        context.response_started()  # as a websocket's handshake does
        first = asyncio.ensure_future(sync_to_async(lambda: PROBE.hold("first", 0))())
        assert await poll(lambda: PROBE.order == ["first"])
        second = asyncio.ensure_future(User.objects.acount())  # queued on the same thread
        await asyncio.sleep(0.05)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        PROBE.gate.set()
        return await first

    try:
        assert await in_request(two_calls) == 1
    finally:
        PROBE.gate.set()
    assert await poll(lambda: lent() == 0 and len(_pool.idle) == 1)
    assert await in_request(User.objects.acount) == 1


async def test_a_request_that_vanishes_gives_its_thread_back(baseline, settings):
    """A request whose handler never finished (its event loop closed under it)."""
    import gc

    settings.AIODJANGO_DB_THREADS = 1
    finished = []

    def receiver(sender, **kwargs):
        finished.append(threading.get_ident())

    signals.request_finished.connect(receiver)
    try:

        async def vanish():
            context = RequestContext(None).enter()
            assert await User.objects.acount() == 1
            context.leave()  # ... and no finish(): the thread stays held
            return context.worker is not None

        assert await asyncio.ensure_future(vanish())
        gc.collect()
        # Given back, after request_finished in it: the one thread serves again.
        assert await poll(lambda: lent() == 0 and len(finished) == 1)
        assert await in_request(User.objects.acount) == 1
    finally:
        signals.request_finished.disconnect(receiver)


async def test_a_thread_handed_to_a_closed_event_loop_comes_back(baseline, settings, caplog):
    import gc

    caplog.set_level(logging.CRITICAL, "asyncio")  # "Task was destroyed but it is pending!"
    settings.AIODJANGO_DB_THREADS = 1
    PROBE.gate.clear()
    holder = asyncio.ensure_future(in_request(sync_to_async(lambda: PROBE.hold("holder", 0))))
    assert await poll(lambda: PROBE.order == ["holder"])
    other = asyncio.new_event_loop()

    async def wait_there():
        RequestContext(None).enter()
        asyncio.ensure_future(User.objects.acount())  # waits for the thread
        while not _pool.waiters:
            await asyncio.sleep(0.01)

    # The other loop runs in a thread of its own, until its request waits.
    thread = threading.Thread(target=other.run_until_complete, args=(wait_there(),))
    thread.start()
    try:
        assert await poll(lambda: not thread.is_alive())
    finally:
        PROBE.gate.set()
    assert await holder == 1
    # The thread was handed to the other loop, which never runs again.
    assert await poll(lambda: len(_pool.waiters) == 0)
    assert lent() == 1
    other.close()
    del other
    gc.collect()
    assert await poll(lambda: lent() == 0)
    assert await in_request(User.objects.acount) == 1


# -- Lifecycle


async def test_threads_given_back_after_cleanup_are_closed(aio_client, baseline, conn_max_age):
    conn_max_age(60)
    # A thread in use (with a connection) while the application cleans up.
    r = await aio_client.get("/users/")
    assert r.status == 200
    PROBE.gate.clear()
    holder = asyncio.ensure_future(aio_client.get("/hold/?tag=holder"))
    assert await poll(lambda: PROBE.order == ["holder"])
    # The holder took the idle thread, with its connection.
    assert len(db_threads()) == 1 and lent() == 1
    assert open_db_files() == baseline + 1
    await close_idle_threads()  # what the application's cleanup does
    assert len(db_threads()) == 1
    PROBE.gate.set()
    assert (await holder).status == 200
    # Given back after the cleanup: closed, not kept idle.
    assert await poll(lambda: db_threads() == [])
    assert _pool.idle == [] and lent() == 0
    assert open_db_files() == baseline
    # The pool serves later requests (new threads, kept as usual).
    assert (await aio_client.get("/users/")).status == 200
    assert len(_pool.idle) == 1


async def test_task_outliving_its_view_is_refused(aio_client, baseline):
    LATE["event"], LATE["errors"] = asyncio.Event(), []
    r = await aio_client.get("/late/")
    assert await r.text() == "started"
    LATE["event"].set()
    assert await poll(lambda: LATE["errors"])
    (error,) = LATE["errors"]
    assert isinstance(error, RuntimeError)
    assert "Await such tasks before the view returns" in str(error)


# -- Settings


async def test_bad_settings_name_the_setting(aio_client, baseline, settings, caplog):
    caplog.set_level(logging.ERROR, "django.request")
    settings.AIODJANGO_DB_THREADS = 0
    r = await aio_client.get("/users/")
    assert r.status == 500
    (record,) = [rec for rec in caplog.records if rec.name == "django.request"]
    assert "AIODJANGO_DB_THREADS must be a positive integer" in str(record.exc_info[1])
    settings.AIODJANGO_DB_THREADS = 8
    settings.AIODJANGO_DB_TIMEOUT = -1
    caplog.clear()
    r = await aio_client.get("/users/")
    assert r.status == 500
    (record,) = [rec for rec in caplog.records if rec.name == "django.request"]
    assert "AIODJANGO_DB_TIMEOUT must be a finite number" in str(record.exc_info[1])


def test_system_checks(settings):
    assert check_db_threads() == []
    for value in (1, 32):
        settings.AIODJANGO_DB_THREADS = value
        assert check_db_threads() == []
    for value in (0, -1, "8", 2.5, True, None):
        settings.AIODJANGO_DB_THREADS = value
        (error,) = check_db_threads()
        assert error.id == "aiodjango.E010"
        assert repr(value) in error.msg
        assert "AIODJANGO_DB_THREADS" in error.hint
    settings.AIODJANGO_DB_THREADS = 8
    for value in (0, 0.5, 30):
        settings.AIODJANGO_DB_TIMEOUT = value
        assert check_db_threads() == []
    for value in (-1, "10", None, True, float("inf"), float("nan")):
        settings.AIODJANGO_DB_TIMEOUT = value
        (error,) = check_db_threads()
        assert error.id == "aiodjango.E011"
        assert "AIODJANGO_DB_TIMEOUT" in error.hint
