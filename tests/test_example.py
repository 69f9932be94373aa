"""The example project, served for real by gunicorn's aiohttp worker.

Each side of aiodjango as a user meets it: Django pages (templates, static
files, the admin with a login), a lifted JSON endpoint, the chat room's
websocket and the room's server-sent events.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess

import aiohttp
import pytest

from tests.example_servers import (
    ADMIN,
    ADMIN_PASSWORD,
    EXAMPLE,
    PYTHON,
    ROOT,
    db_with_admin,
    example_env,
    free_port,
    gunicorn,
    migrated_db,
    stop,
    wait_for_http,
)

TIMEOUT = aiohttp.ClientTimeout(total=10)


@pytest.fixture(scope="module")
def example_db(tmp_path_factory):
    return db_with_admin(tmp_path_factory)


@pytest.fixture(scope="module")
def server(tmp_path_factory, example_db):
    with gunicorn(tmp_path_factory.mktemp("logs"), example_db) as running:
        yield running


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=TIMEOUT, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def next_json(ws: aiohttp.ClientWebSocketResponse) -> dict:
    message = await asyncio.wait_for(ws.receive(), 10)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


def test_migrate_creates_the_sqlite_database(tmp_path_factory):
    db = migrated_db(tmp_path_factory)
    with sqlite3.connect(db) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert {"auth_user", "django_session", "django_admin_log"} <= tables


async def test_readme_commands_run_the_example(tmp_path, http):
    # README: python example/manage.py migrate && python example/manage.py runserver
    env = example_env(tmp_path / "db.sqlite3")
    subprocess.run(
        [PYTHON, "example/manage.py", "migrate", "--noinput"],
        cwd=ROOT, env=env, check=True, timeout=120, capture_output=True,
    )
    port = free_port()
    log = tmp_path / "runserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [PYTHON, "example/manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_for_http, url + "/api/hello/readme/", proc, log)
        async with http.get(url + "/") as response:
            assert response.status == 200
            assert "Django and aiohttp, one server" in await response.text()
        async with http.get(url + "/static/chat/chat.css") as response:
            assert response.status == 200
        async with http.get(url + "/api/hello/readme/") as response:
            assert await response.json() == {"hello": "readme", "served_by": "aiohttp", "pid": proc.pid}
        async with http.ws_connect(url + "/chat/readme/ws/") as ws:
            assert await next_json(ws) == {"type": "join", "user": "anonymous"}
            await ws.send_str("hi")
            assert (await next_json(ws))["text"] == "hi"
    finally:
        stop(proc)


async def test_home_page_is_a_django_template(server, http):
    async with http.get(server.url + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        # Django's middleware ran: it is a Django response.
        assert response.headers["X-Frame-Options"] == "DENY"
        body = await response.text()
    assert "<h1>Django and aiohttp, one server</h1>" in body
    assert 'href="/static/chat/chat.css"' in body
    assert 'data-events-url="/chat/lobby/events/"' in body


async def test_static_css_and_js_are_served(server, http):
    async with http.get(server.url + "/static/chat/chat.css") as response:
        assert response.status == 200
        assert response.content_type == "text/css"
        assert "background-color: rgb(12, 75, 51)" in await response.text()
    async with http.get(server.url + "/static/chat/chat.js") as response:
        assert response.status == 200
        assert "new WebSocket" in await response.text()


async def test_lifted_json_endpoint_takes_its_url_parameter(server, http):
    async with http.get(server.url + "/api/hello/w%C3%B6rld/") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        # Served by aiohttp directly, with MIDDLEWARE's policies applied by
        # aiodjango (XFrameOptionsMiddleware's header, as on Django's pages).
        assert response.headers["X-Frame-Options"] == "DENY"
        data = await response.json()
    assert data["hello"] == "wörld"
    assert data["served_by"] == "aiohttp"
    assert data["pid"] != server.proc.pid  # a worker, not the gunicorn master


async def test_room_page_reverses_the_lifted_socket_url(server, http):
    async with http.get(server.url + "/chat/general/") as response:
        assert response.status == 200
        body = await response.text()
    assert "<h1>#general</h1>" in body
    assert 'data-socket-url="/chat/general/ws/"' in body


async def test_bad_room_name_is_a_django_404(server, http):
    async with http.get(server.url + "/chat/not.a.slug/ws/") as response:
        assert response.status == 404
        assert response.headers["X-Frame-Options"] == "DENY"


async def test_chat_between_two_websockets(server, http):
    url = server.url + "/chat/two-people/ws/"
    async with http.ws_connect(url) as first:
        assert await next_json(first) == {"type": "join", "user": "anonymous"}
        async with http.ws_connect(url) as second:
            assert await next_json(second) == {"type": "join", "user": "anonymous"}
            assert await next_json(first) == {"type": "join", "user": "anonymous"}

            await first.send_str("  hello, second  ")
            expected = {"type": "message", "user": "anonymous", "text": "hello, second"}
            assert await next_json(second) == expected
            assert await next_json(first) == expected

            await second.send_str("   ")  # blank: ignored
            await second.send_str("x" * 2000)  # too long: cut
            reply = await next_json(first)
            assert reply["text"] == "x" * 500
        assert await next_json(first) == {"type": "leave", "user": "anonymous"}


async def test_rooms_do_not_hear_each_other(server, http):
    async with http.ws_connect(server.url + "/chat/room-a/ws/") as a, http.ws_connect(
        server.url + "/chat/room-b/ws/"
    ) as b:
        assert (await next_json(a))["type"] == "join"
        assert (await next_json(b))["type"] == "join"
        await a.send_str("for room a")
        assert (await next_json(a))["text"] == "for room a"
        await b.send_str("for room b")
        # b's next message is its own: a's never arrived.
        assert (await next_json(b))["text"] == "for room b"


async def test_server_sent_events_follow_the_room(server, http):
    async with http.get(server.url + "/chat/sse/events/") as stream:
        assert stream.status == 200
        assert stream.content_type == "text/event-stream"
        assert stream.headers["Cache-Control"] == "no-cache"
        assert await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10) == b"retry: 2000\n\n"
        async with http.ws_connect(server.url + "/chat/sse/ws/") as ws:
            await ws.send_str("to the listeners")
            events = []
            while len(events) < 2:
                raw = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
                fields = dict(line.split(": ", 1) for line in raw.decode().strip().split("\n"))
                events.append((fields["event"], json.loads(fields["data"])))
    assert events == [
        ("join", {"type": "join", "user": "anonymous"}),
        ("message", {"type": "message", "user": "anonymous", "text": "to the listeners"}),
    ]


async def test_blocking_django_view_leaves_lifted_routes_free(server, http):
    slow = asyncio.ensure_future(http.get(server.url + "/slow/?seconds=1.5"))
    try:
        async with http.get(server.url + "/api/hello/fast/") as response:
            assert response.status == 200
        assert not slow.done()
        response = await slow
        assert response.status == 200
        assert (await response.json())["slept"] == 1.5
        response.release()
    finally:
        slow.cancel()


async def admin_login(http: aiohttp.ClientSession, url: str) -> None:
    """Log in through Django's own login view (the admin's), as a browser would."""
    async with http.get(url + "/admin/login/?next=/admin/") as response:
        assert response.status == 200
        page = await response.text()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = {
        "csrfmiddlewaretoken": token,
        "username": ADMIN,
        "password": ADMIN_PASSWORD,
        "next": "/admin/",
    }
    async with http.post(
        url + "/admin/login/?next=/admin/",
        data=form,
        headers={"Referer": url + "/admin/login/"},
        allow_redirects=False,
    ) as response:
        assert response.status == 302, await response.text()
        assert response.headers["Location"] == "/admin/"


async def test_admin_login_through_django(server, http):
    await admin_login(http, server.url)
    async with http.get(server.url + "/admin/") as response:
        assert response.status == 200
        assert "Site administration" in await response.text()


async def test_logged_in_user_chats_under_their_username(server, http):
    async with aiohttp.ClientSession(timeout=TIMEOUT) as stranger:
        async with stranger.ws_connect(server.url + "/chat/names/ws/") as anonymous:
            assert await next_json(anonymous) == {"type": "join", "user": "anonymous"}
            await admin_login(http, server.url)
            # The session cookie of Django's login goes along with the handshake.
            async with http.ws_connect(server.url + "/chat/names/ws/") as admin:
                assert await next_json(admin) == {"type": "join", "user": "admin"}
                assert await next_json(anonymous) == {"type": "join", "user": "admin"}
                await admin.send_str("hello")
                said = {"type": "message", "user": "admin", "text": "hello"}
                assert await next_json(anonymous) == said
                assert await next_json(admin) == said
                await anonymous.send_str("hi")
                assert await next_json(admin) == {"type": "message", "user": "anonymous", "text": "hi"}


# The chat's broadcast, from a management command ----------------------------


def run_announce(db, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", "announce", *args],
        cwd=EXAMPLE, env=example_env(db, **env), capture_output=True, text=True, timeout=60,
    )


def test_announce_without_redis_says_why_it_cannot_reach_the_server(tmp_path_factory):
    # In-process broadcast (no REDIS_URL): a command is another process.
    done = run_announce(migrated_db(tmp_path_factory), "lobby", "hello")
    assert done.returncode == 1
    assert "in-memory backend" in done.stderr
    assert "RedisBroadcast" in done.stderr
    assert "Traceback" not in done.stderr


def test_announce_refuses_a_bad_room_name(tmp_path_factory):
    done = run_announce(migrated_db(tmp_path_factory), "not a room", "hello")
    assert done.returncode == 1
    assert "'not a room' is not a room name" in done.stderr
