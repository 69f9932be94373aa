"""Errors of lifted views reach Django's error reporting; 4xx answers keep the session.

A real server, Django's own ``AdminEmailHandler`` and locmem mail backend,
real sessions in the test database.
"""

import logging

import pytest
from aiohttp import web
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core import signals
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from django.utils.log import AdminEmailHandler

from aiodjango import get_aio_application
from aiodjango.auth import get_session, get_user

from .support.db import poll

# -- the views ----------------------------------------------------------------

ERRORS = {
    "not-found": (Http404("no such thing"), 404),
    "denied": (PermissionDenied("not yours"), 403),
    "bad": (BadRequest("bad thing"), 400),
    "suspicious": (SuspiciousOperation("odd thing"), 400),
    "boom": (RuntimeError("boom in a lifted view"), 500),
}


async def remember_then_raise(request):
    """Puts the error's name in the session, then raises it."""
    name = request.match_info["name"]
    session = await get_session(request)
    session["last"] = name
    raise ERRORS[name][0]


async def boom(request):
    raise RuntimeError("boom in a lifted view")


async def unsaveable_then_404(request):
    session = await get_session(request)
    session["unsaveable"] = object()  # JSONSerializer can't
    raise Http404("gone")


async def whoami(request):
    session = await get_session(request)
    return web.json_response({"last": session.get("last")})


async def not_found(request):
    raise Http404("nothing at " + request.path)


async def ws_user(request):
    user = await get_user(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"user": user.get_username() if user.is_authenticated else None})
    await ws.close()
    return ws


def django_session(request):
    """A Django view reading the session, for comparison."""
    return HttpResponse(str(request.session.get("last")))


urlpatterns = [
    path("raise/<str:name>/", remember_then_raise),
    path("boom/", boom),
    path("unsaveable/", unsaveable_then_404),
    path("whoami/", whoami),
    path("nf/<str:tail>/", not_found),
    path("ws/user/", ws_user),
    path("django/session/", django_session),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db(transaction=True)]


# -- helpers ------------------------------------------------------------------


@pytest.fixture
def admin_email(settings, mailoutbox):
    """Serve the application with Django's AdminEmailHandler on django.request and django.security.

    Mail goes to the test environment's locmem backend (``mailoutbox``).

    Attached after the application is built: building it sets Django up,
    which configures logging again (and drops handlers added by hand).
    """
    import django

    settings.ADMINS = (
        ["admin@example.com"] if django.VERSION >= (6, 0) else [("Admin", "admin@example.com")]
    )
    handler = AdminEmailHandler()
    handler.setLevel(logging.ERROR)
    loggers = [logging.getLogger("django.request"), logging.getLogger("django.security")]

    async def serve(aiohttp_client):
        client = await aiohttp_client(get_aio_application())
        for logger in loggers:
            logger.addHandler(handler)
        return client

    yield serve
    for logger in loggers:
        logger.removeHandler(handler)


# -- error reporting ----------------------------------------------------------


async def test_a_500_is_emailed_to_the_admins_with_the_request(aiohttp_client, admin_email, mailoutbox, caplog):
    client = await admin_email(aiohttp_client)
    got = []

    def receiver(sender, request, **kwargs):
        got.append(request)

    signals.got_request_exception.connect(receiver)
    try:
        with caplog.at_level(logging.ERROR, "django.request"):
            r = await client.get("/boom/?q=needle", headers={"X-Trace": "trace-value"})
    finally:
        signals.got_request_exception.disconnect(receiver)
    assert r.status == 500
    assert "boom" not in await r.text()
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert isinstance(record.request, HttpRequest)
    assert record.request.path == "/boom/" and record.request.GET["q"] == "needle"
    assert record.exc_info[0] is RuntimeError
    assert got == [record.request]  # got_request_exception, as Django sends it
    (mail,) = mailoutbox
    assert mail.to == ["admin@example.com"]
    # The subject as for a Django view: the request's IP class and the message.
    assert mail.subject.startswith("[Django] ERROR (EXTERNAL IP): Internal Server Error: /boom/")
    body = mail.body
    assert "RuntimeError" in body and "boom in a lifted view" in body
    assert "Request Method: GET" in body
    assert "Request URL: http://127.0.0.1:" in body and "/boom/?q=needle" in body
    assert "HTTP_X_TRACE = 'trace-value'" in body  # META
    assert "q = 'needle'" in body  # GET


async def test_a_malformed_form_does_not_stop_the_report(aiohttp_client, admin_email, mailoutbox, caplog):
    client = await admin_email(aiohttp_client)
    caplog.set_level(logging.CRITICAL)
    r = await client.post("/boom/", data=b"--x\r\n", headers={"Content-Type": "multipart/form-data"})
    assert r.status == 500
    (mail,) = mailoutbox
    assert "Internal Server Error: /boom/" in mail.subject
    assert "Request Method: POST" in mail.body and "CONTENT_TYPE = 'multipart/form-data'" in mail.body


async def test_4xx_log_records_carry_the_django_request(aiohttp_client, admin_email, mailoutbox, caplog):
    client = await admin_email(aiohttp_client)
    caplog.set_level(logging.WARNING)
    r = await client.get("/raise/denied/")
    assert r.status == 403
    r = await client.get("/raise/bad/")
    assert r.status == 400
    r = await client.get("/raise/suspicious/")
    assert r.status == 400
    records = [r for r in caplog.records if r.name.startswith("django.")]
    messages = [(r.name, r.levelname, r.getMessage()) for r in records]
    assert messages == [
        ("django.request", "WARNING", "Forbidden (Permission denied): /raise/denied/"),
        ("django.request", "WARNING", "bad thing: /raise/bad/"),
        ("django.security.SuspiciousOperation", "ERROR", "odd thing"),
    ]
    assert all(isinstance(r.request, HttpRequest) for r in records)
    assert [r.status_code for r in records] == [403, 400, 400]
    assert records[2].exc_info[0] is SuspiciousOperation
    # Only the error is mailed, as for Django views (its handler's level).
    (mail,) = mailoutbox
    assert "odd thing" in mail.subject and "/raise/suspicious/" in mail.body


async def test_paths_in_log_lines_are_escaped(aiohttp_client, caplog):
    client = await aiohttp_client(get_aio_application())
    caplog.set_level(logging.WARNING, "django.request")
    r = await client.get("/nf/x%0D%0AFORGED%20line/")
    assert r.status == 404
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage() == "Not Found: /nf/x\\r\\nFORGED line/"
    assert isinstance(record.request, HttpRequest)


# -- the session after a 4xx ----------------------------------------------------


@pytest.mark.parametrize("name", ["not-found", "denied", "bad", "suspicious"])
async def test_the_session_is_saved_for_4xx_answers(aiohttp_client, caplog, name):
    caplog.set_level(logging.CRITICAL)
    client = await aiohttp_client(get_aio_application())
    r = await client.get(f"/raise/{name}/")
    assert r.status == ERRORS[name][1]
    assert "sessionid=" in r.headers.get("Set-Cookie", "")
    assert "Cookie" in r.headers.get("Vary", "")
    r = await client.get("/whoami/")
    assert await r.json() == {"last": name}
    # Django's own view sees the same session.
    r = await client.get("/django/session/")
    assert (r.status, await r.text()) == (200, name)


async def test_the_session_is_not_saved_for_a_500(aiohttp_client, caplog):
    caplog.set_level(logging.CRITICAL)
    client = await aiohttp_client(get_aio_application())
    r = await client.get("/raise/boom/")
    assert r.status == 500
    assert "Set-Cookie" not in r.headers  # SessionMiddleware skips 5xx
    r = await client.get("/whoami/")
    assert await r.json() == {"last": None}


async def test_a_session_that_cannot_be_saved_after_a_404_is_a_logged_500(aiohttp_client, caplog):
    client = await aiohttp_client(get_aio_application())
    with caplog.at_level(logging.WARNING, "django.request"):
        r = await client.get("/unsaveable/")
    assert r.status == 500
    assert "Set-Cookie" not in r.headers
    messages = [r.getMessage() for r in caplog.records if r.name == "django.request"]
    assert messages[0] == "Not Found: /unsaveable/"
    assert messages[1].startswith("Internal Server Error: /unsaveable/ (raised by lifted view ")
    assert (await client.get("/whoami/")).status == 200  # still serving


# -- a bogus session cookie ----------------------------------------------------


@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.signed_cookies",
        "django.contrib.sessions.backends.cache",
    ],
)
async def test_a_bogus_session_cookie_logs_nothing(aiohttp_client, settings, caplog, engine):
    settings.SESSION_ENGINE = engine
    client = await aiohttp_client(get_aio_application())
    finished = []

    def receiver(sender, **kwargs):
        finished.append(sender)

    cookie = {"Cookie": "sessionid=bogus-cookie-value-1234"}
    caplog.set_level(logging.DEBUG)
    signals.request_finished.connect(receiver)
    try:
        for _ in range(3):
            ws = await client.ws_connect("/ws/user/", headers=cookie)
            try:
                assert (await ws.receive_json(timeout=5)) == {"user": None}
            finally:
                await ws.close()
            # The handler has finished (and its session too) when its
            # request_finished is sent.
            assert await poll(lambda: len(finished) >= 1)
            finished.clear()
        # HTTP, lifted and Django: the cookie is renewed or deleted, silently.
        r = await client.get("/whoami/", headers=cookie)
        assert await r.json() == {"last": None}
        r = await client.get("/django/session/", headers=cookie)
        assert (r.status, await r.text()) == (200, "None")
    finally:
        signals.request_finished.disconnect(receiver)
    noisy = [
        (r.name, r.getMessage())
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name != "aiohttp.access"
    ]
    assert noisy == []


async def test_a_real_session_change_on_a_websocket_still_warns(aiohttp_client, caplog):
    """The control: a logged-in user's cookie that can't follow is still reported."""
    from django.contrib.sessions.backends.db import SessionStore

    user = await User.objects.acreate(username="ada")
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = "wrong"  # the hash check fails: Django flushes the session
    await sync_to_async(session.save)()
    client = await aiohttp_client(get_aio_application())
    caplog.set_level(logging.WARNING, "aiodjango.auth")
    ws = await client.ws_connect("/ws/user/", headers={"Cookie": f"sessionid={session.session_key}"})
    try:
        assert (await ws.receive_json(timeout=5)) == {"user": None}
    finally:
        await ws.close()
    assert await poll(lambda: any("could not be sent" in r.getMessage() for r in caplog.records))
