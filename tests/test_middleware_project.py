"""The project's and third-party middleware on lifted views: the system check that names
what lifted views bypass (aiodjango.W030), AIODJANGO_MIDDLEWARE ("run", "skip", an aiohttp
middleware), django-cors-headers run on the stand-in, and W010 with Django's honoured decorators."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import path

from aiodjango import get_aio_application
from aiodjango.checks import check_django_decorated_coroutines, check_middleware_on_lifted_views
from tests import middleware_views as views
from tests import middleware_support
from tests.middleware_support import STARTPROJECT, fetch, policy_headers

serve = middleware_support.serve  # the fixture

PROJECT = "tests.middleware_views.ProjectMiddleware"
CORS = "corsheaders.middleware.CorsMiddleware"


def ids(messages):
    return [(m.id, m.obj) for m in messages]


# -- the system check ---------------------------------------------------------


def test_startproject_middleware_all_apply(settings):
    settings.MIDDLEWARE = STARTPROJECT + [
        "django.middleware.locale.LocaleMiddleware",
        "django.middleware.gzip.GZipMiddleware",
        "django.middleware.http.ConditionalGetMiddleware",
    ]
    assert check_middleware_on_lifted_views() == []


NOT_APPLIED = [
    "django.middleware.cache.UpdateCacheMiddleware",
    "django.middleware.cache.FetchFromCacheMiddleware",
    "django.contrib.auth.middleware.RemoteUserMiddleware",
    "django.contrib.auth.middleware.PersistentRemoteUserMiddleware",
    "django.middleware.common.BrokenLinkEmailsMiddleware",
    "django.contrib.sites.middleware.CurrentSiteMiddleware",
    "django.contrib.admindocs.middleware.XViewMiddleware",
]
NOT_NEEDED = [
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
    "django.contrib.redirects.middleware.RedirectFallbackMiddleware",
]


def test_each_of_djangos_middleware_applies_or_is_named(settings):
    settings.MIDDLEWARE = STARTPROJECT + NOT_APPLIED + NOT_NEEDED
    assert ids(check_middleware_on_lifted_views()) == [("aiodjango.W030", p) for p in NOT_APPLIED]
    settings.AIODJANGO_MIDDLEWARE = {path: "skip" for path in NOT_APPLIED}
    assert check_middleware_on_lifted_views() == []


def test_check_names_every_middleware_lifted_views_bypass(settings):
    settings.MIDDLEWARE = STARTPROJECT + [PROJECT, CORS, "django.middleware.cache.UpdateCacheMiddleware"]
    messages = check_middleware_on_lifted_views()
    assert ids(messages) == [
        ("aiodjango.W030", PROJECT),
        ("aiodjango.W030", CORS),
        ("aiodjango.W030", "django.middleware.cache.UpdateCacheMiddleware"),
    ]
    message = messages[0]
    assert message.msg == (
        f"The middleware {PROJECT!r} in MIDDLEWARE does not apply to lifted views (aiohttp "
        f"handlers): their requests and responses bypass it."
    )
    assert "AIODJANGO_MIDDLEWARE" in message.hint and "'run'" in message.hint
    assert "'skip'" in message.hint and "aiohttp middleware" in message.hint


def test_mapped_middleware_is_not_named(settings):
    settings.MIDDLEWARE = STARTPROJECT + [PROJECT, CORS]
    settings.AIODJANGO_MIDDLEWARE = {
        PROJECT: "tests.middleware_views.project_aiohttp_middleware",
        CORS: "run",
        "myproject.Gone": "skip",
    }
    assert ids(check_middleware_on_lifted_views()) == [("aiodjango.W031", "AIODJANGO_MIDDLEWARE")]


@pytest.mark.parametrize(
    "mapping, message",
    [
        (["run"], "AIODJANGO_MIDDLEWARE must be a dict"),
        ({PROJECT: 42}, f"AIODJANGO_MIDDLEWARE[{PROJECT!r}] must be 'run', 'skip', or an aiohttp"),
        ({PROJECT: "tests.nowhere.middleware"}, "neither 'run' nor 'skip'"),
        ({PROJECT: "tests.middleware_views.DJANGO_5"}, "which is not callable"),
    ],
)
def test_bad_mapping_is_an_error_at_check_and_at_build(settings, mapping, message):
    settings.MIDDLEWARE = STARTPROJECT + [PROJECT]
    settings.AIODJANGO_MIDDLEWARE = mapping
    (error,) = check_middleware_on_lifted_views()
    assert error.id == "aiodjango.E030" and message in error.msg
    with pytest.raises(ImproperlyConfigured, match=message.replace("[", r"\[").replace("]", r"\]")):
        get_aio_application()


def test_a_sync_only_middleware_cannot_run(settings):
    sync_only = "tests.middleware_views.sync_only_middleware"
    settings.MIDDLEWARE = [sync_only]
    settings.AIODJANGO_MIDDLEWARE = {sync_only: "run"}
    (error,) = check_middleware_on_lifted_views()
    assert error.id == "aiodjango.E030" and "synchronous only" in error.msg
    with pytest.raises(ImproperlyConfigured, match="synchronous only"):
        get_aio_application()


# -- AIODJANGO_MIDDLEWARE on a real server -----------------------------------------


async def test_run_a_project_middleware_on_the_stand_in(serve):
    client = await serve(middleware=STARTPROJECT + [PROJECT], AIODJANGO_MIDDLEWARE={PROJECT: "run"})
    lifted, body = await fetch(client, "GET", "/lifted/page/")
    django, _ = await fetch(client, "GET", "/django/page/")
    assert (lifted.status, body) == (200, b"lifted page")
    assert lifted.headers["X-Project"] == django.headers["X-Project"] == "django"
    assert policy_headers(lifted) == policy_headers(django)
    # Its own answer, from process_request and from process_view, instead of the view's.
    for header, status in (("X-Refuse", 418), ("X-Refuse-View", 409)):
        lifted, _ = await fetch(client, "GET", "/lifted/page/", headers={header: "1"})
        django, _ = await fetch(client, "GET", "/django/page/", headers={header: "1"})
        assert lifted.status == django.status == status, header
        assert lifted.headers["X-Project"] == "django"
    # A websocket: the middleware runs around the whole connection.
    async with client.ws_connect("/lifted/ws/") as ws:
        assert await ws.receive_str(timeout=5) == "hello"


async def test_run_middlewares_process_exception_as_django(serve):
    errors = "tests.middleware_views.ErrorPageMiddleware"
    log = "tests.middleware_views.ExceptionLogMiddleware"
    client = await serve(
        middleware=STARTPROJECT + [PROJECT, errors, log],
        AIODJANGO_MIDDLEWARE={PROJECT: "run", errors: "run", log: "run"},
        DEBUG_PROPAGATE_EXCEPTIONS=False,
    )
    views.EXCEPTIONS_SEEN.clear()
    for side in ("django", "lifted"):
        # Answered by ErrorPageMiddleware; its answer goes back out through
        # the middleware listed before it (ProjectMiddleware, the headers).
        response, body = await fetch(client, "GET", f"/{side}/fails/?with=ValueError")
        assert (response.status, body) == (500, b'{"error": "bad input"}'), side
        assert response.headers["X-Project"] == "django", side
        assert policy_headers(response)["X-Frame-Options"] == "DENY", side
        # Not answered: the usual 500.
        response, _ = await fetch(client, "GET", f"/{side}/fails/?with=RuntimeError")
        assert response.status == 500 and response.content_type != "application/json", side
    seen = [(path, name) for path, name, _ in views.EXCEPTIONS_SEEN]
    assert seen == [
        ("/django/fails/", "ValueError"),
        ("/django/fails/", "RuntimeError"),
        ("/lifted/fails/", "ValueError"),
        ("/lifted/fails/", "RuntimeError"),
    ]  # ExceptionLogMiddleware first (reverse MIDDLEWARE order), once per exception
    lifted_threads = {thread for path, _, thread in views.EXCEPTIONS_SEEN if path.startswith("/lifted")}
    assert all(name.startswith("aiodjango-db") for name in lifted_threads)  # the request's thread
    # aiohttp's HTTPException is the view's answer, not an error: not passed.
    response, _ = await fetch(client, "GET", "/lifted/answers/?as=redirect")
    assert response.status == 302 and len(views.EXCEPTIONS_SEEN) == 4


async def test_run_a_middleware_that_is_not_used(serve):
    # MiddlewareNotUsed from its __init__: skipped on lifted views as Django skips it.
    unused = "tests.middleware_views.UnusedMiddleware"
    client = await serve(middleware=STARTPROJECT + [PROJECT, unused],
                         AIODJANGO_MIDDLEWARE={PROJECT: "run", unused: "run"})
    lifted, body = await fetch(client, "GET", "/lifted/page/")
    django, _ = await fetch(client, "GET", "/django/page/")
    assert (lifted.status, body) == (200, b"lifted page") and django.status == 200
    assert lifted.headers["X-Project"] == django.headers["X-Project"] == "django"


async def test_an_aiohttp_middleware_stands_for_a_django_one(serve):
    client = await serve(
        middleware=STARTPROJECT + [PROJECT],
        AIODJANGO_MIDDLEWARE={PROJECT: "tests.middleware_views.project_aiohttp_middleware"},
    )
    lifted, _ = await fetch(client, "GET", "/lifted/page/")
    django, _ = await fetch(client, "GET", "/django/page/")
    assert (lifted.headers["X-Project"], django.headers["X-Project"]) == ("aiohttp", "django")


async def test_skip_declares_it_not_needed(serve):
    client = await serve(middleware=STARTPROJECT + [PROJECT], AIODJANGO_MIDDLEWARE={PROJECT: "skip"})
    lifted, _ = await fetch(client, "GET", "/lifted/page/")
    assert "X-Project" not in lifted.headers


# -- django-cors-headers ------------------------------------------------------------------


async def test_cors_headers_and_preflight_through_corsmiddleware(serve):
    client = await serve(
        middleware=[CORS] + STARTPROJECT,
        AIODJANGO_MIDDLEWARE={CORS: "run"},
        CORS_ALLOWED_ORIGINS=["https://app.example"],
        CORS_URLS_REGEX=r"^/api/.*$",
        CORS_ALLOW_CREDENTIALS=True,
    )
    origin = {"Origin": "https://app.example"}
    lifted, body = await fetch(client, "GET", "/api/lifted/", headers=origin)
    django, _ = await fetch(client, "GET", "/api/django/", headers=origin)
    assert await lifted.json() == {"from": "lifted", "got": None}
    assert lifted.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert lifted.headers["Access-Control-Allow-Credentials"] == "true"
    assert policy_headers(lifted) == policy_headers(django)
    # The preflight: CorsMiddleware answers it, the view is not called.
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    lifted, body = await fetch(client, "OPTIONS", "/api/lifted/", headers=preflight)
    django, _ = await fetch(client, "OPTIONS", "/api/django/", headers=preflight)
    assert lifted.status == django.status == 200
    assert body == b""
    assert "POST" in lifted.headers["Access-Control-Allow-Methods"]
    assert policy_headers(lifted) == policy_headers(django)
    # Another origin, another path: no CORS headers.
    lifted, _ = await fetch(client, "GET", "/api/lifted/", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in lifted.headers
    lifted, _ = await fetch(client, "GET", "/lifted/page/", headers=origin)
    assert "Access-Control-Allow-Origin" not in lifted.headers


async def test_cors_without_mapping_is_bypassed_and_named(serve, settings):
    client = await serve(middleware=[CORS] + STARTPROJECT, CORS_ALLOWED_ORIGINS=["https://app.example"])
    lifted, _ = await fetch(client, "GET", "/api/lifted/", headers={"Origin": "https://app.example"})
    django, _ = await fetch(client, "GET", "/api/django/", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in lifted.headers
    assert "Access-Control-Allow-Origin" in django.headers
    assert ids(check_middleware_on_lifted_views()) == [("aiodjango.W030", CORS)]


# -- aiodjango.W010 and Django's honoured decorators ------------------------------------


class Decorated:
    urlpatterns = [
        path("exempt/", views.exempt),
        path("sameorigin/", views.sameorigin),
        path("frameable/", views.frameable),
        path("public/", views.public),
        path("csp/", views.csp_overridden),
    ]


class Misdecorated:
    from tests.citizens_views import mistaken  # Django's login_required on a lifted view

    urlpatterns = [path("mistake/", mistaken)]


@pytest.mark.skipif(not views.DJANGO_5, reason="Django's decorators keep coroutine views coroutines from Django 5.0")
def test_honoured_django_decorators_pass_w010(settings):
    settings.ROOT_URLCONF = Decorated
    assert check_django_decorated_coroutines() == []
    settings.ROOT_URLCONF = Misdecorated
    assert [m.id for m in check_django_decorated_coroutines()] == ["aiodjango.W010"]
