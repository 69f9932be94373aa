"""The view that answers is always the one ``django.urls.resolve()`` picks.

Checked two ways for many URLconf shapes and paths (listed and generated
with hypothesis): on the lifted routes directly, and through real HTTP
against the combined app, where every test view names itself and its route.
"""

import asyncio
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings
from django.urls import Resolver404, clear_url_caches, resolve, reverse
from django.utils import translation
from hypothesis import HealthCheck, given, settings, strategies as st

from aiodjango import get_aio_application
from aiodjango.application import APP_KEY
from aiodjango.routing import lift_kind

URLCONF = "tests.parity_urls"

LISTED_PATHS = [
    "/shadow/", "/first/", "/catch/a/b/special/", "/catch/a/b/", "/catch/special/",
    "/pos/1/2/", "/pos/1/", "/int/5/", "/int/abc/", "/int/-1/",
    "/uuid/12345678-1234-5678-1234-567812345678/", "/uuid/nope/", "/path/a/b/c",
    "/blog/", "/blog/2024/", "/blog/1800/", "/blog/2024/5/", "/blog/2024/5/my-post/",
    "/blog/tag/news/", "/blog/feed/", "/blog/feed/rss/", "/blog/feed/xml/",
    "/other-blog/2024/", "/m/s/deep/slug-1/", "/m/s/deep/ab/12/", "/m/s/deep/leaf/",
    "/m/s/deep/3/slug/", "/m/s/deep/3/leaf/", "/m/s/x/", "/extra/", "/inc-extra/4/",
    "/tail/", "/x/y/tail/", "/end/7", "/a/end/7", "/case/", "/CASE/", "/CaSe/", "/café/",
    "/async-def/", "/with space/", "/zz/after/", "/zz/", "/about/", "/live/", "/en-us/about/",
    "/fr/live/", "/de/live/", "/", "/nothing/", "/blog", "/int/5", "//int/5/", "/int//5/",
]

SEGMENTS = [
    "shadow", "first", "catch", "special", "pos", "int", "uuid", "path", "blog", "other-blog",
    "tag", "feed", "rss", "atom", "m", "deep", "leaf", "x", "extra", "inc-extra", "tail",
    "end", "case", "CASE", "café", "zz", "after", "about", "live", "fr", "de", "en-us",
    "2024", "1800", "5", "0", "12", "ab", "news", "a-b", "", "%2F", "async-def",
    "12345678-1234-5678-1234-567812345678",
]
paths = st.builds(
    lambda parts, slash: "/" + "/".join(parts) + ("/" if slash else ""),
    st.lists(st.sampled_from(SEGMENTS), max_size=5),
    st.booleans(),
)


def django_pick(path):
    """What Django routes ``path`` to (None for a 404), as LocaleMiddleware would."""
    language = translation.get_language_from_path(path) or "en-us"
    with translation.override(language):
        try:
            match = resolve(path, URLCONF)
        except Resolver404:
            return None
    return match


def assert_same(path, routes):
    expected = django_pick(path)
    found = routes.find(path)
    if expected is None or lift_kind(expected.func) is None:
        assert found is None, f"{path!r}: lifted {found!r}, Django picks {expected!r}"
        return
    assert found is not None, f"{path!r}: Django picks lifted {expected!r}, aiodjango doesn't"
    with translation.override(translation.get_language_from_path(path) or "en-us"):
        got = found.resolver_match
    for attribute in (
        "func", "args", "kwargs", "url_name", "route", "namespaces", "app_names",
        "captured_kwargs", "extra_kwargs", "view_name",
    ):
        assert getattr(got, attribute) == getattr(expected, attribute), (path, attribute)


MIDDLEWARE = [
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
]


@pytest.fixture(scope="module")
def combined():
    """A real server over the parity URLconf, and its event loop."""
    with override_settings(ROOT_URLCONF=URLCONF, MIDDLEWARE=MIDDLEWARE, APPEND_SLASH=False):
        clear_url_caches()
        app = get_aio_application(WSGIHandler(), urlconf=URLCONF)
        loop = asyncio.new_event_loop()

        async def start():
            client = TestClient(TestServer(app))
            await client.start_server()
            return client

        client = loop.run_until_complete(start())
        try:
            yield app, client, loop
        finally:
            loop.run_until_complete(client.close())
            loop.close()
            clear_url_caches()


def fetch(combined, path):
    app, client, loop = combined

    async def get():
        url = client.make_url("/").with_path(quote(path, safe="/%"), encoded=True)
        async with client.session.get(url, allow_redirects=False) as response:
            await response.read()
            return response.status, response.headers.get("X-View"), response.headers.get("X-Route")

    return loop.run_until_complete(get())


def assert_same_over_http(combined, path):
    expected = django_pick(path.replace("%2F", "/"))
    status, view, route = fetch(combined, path)
    if expected is None:
        assert status == 404 and view is None, (path, status, view)
    else:
        assert status == 200, (path, status)
        assert (view, route) == (expected.func.__name__, expected.route), path


@pytest.mark.parametrize("path", LISTED_PATHS)
def test_listed_paths_route_like_django(combined, path):
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        assert_same(path, combined[0][APP_KEY].routes)
        assert_same_over_http(combined, path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths)
def test_generated_paths_route_like_django(combined, path):
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        assert_same(path.replace("%2F", "/"), combined[0][APP_KEY].routes)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths)
def test_generated_paths_over_http_route_like_django(combined, path):
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        assert_same_over_http(combined, path)


def test_url_for_equals_reverse_for_every_named_lifted_route(combined):
    app = combined[0]
    router = app.router
    checked = 0
    for path in LISTED_PATHS:
        with override_settings(MIDDLEWARE=MIDDLEWARE):
            found = app[APP_KEY].routes.find(path)
        if found is None or found.endpoint.name is None:
            continue
        name = found.endpoint.name
        match = found.resolver_match
        if match.args:  # positional: url_for takes keywords only; reverse(args=...) still works
            assert reverse(name, args=match.args, urlconf=URLCONF) == path
            continue
        language = translation.get_language_from_path(path) or "en-us"
        with translation.override(language):
            captured = {k: v for k, v in match.kwargs.items() if k not in match.extra_kwargs}
            expected = reverse(name, kwargs=captured or None, urlconf=URLCONF)
            assert str(router[name].url_for(**dict(found))) == expected
        checked += 1
    assert checked >= 15
    assert str(router["with space"].url_for()) == reverse("with space", urlconf=URLCONF)
    assert str(router["blog:year"].url_for(year="2024")) == "/blog/2024/"
    assert str(router["other-blog:year"].url_for(year="2024")) == "/other-blog/2024/"


def test_case_insensitive_regexes_route_like_django():
    from django.urls import get_resolver

    from aiodjango.routing import LiftedRoutes
    from tests import parity_urls

    class Conf:
        urlpatterns = parity_urls.case_insensitive

    routes = LiftedRoutes.from_resolver(get_resolver(Conf), lambda e, k: e.callback, urlconf=Conf)
    for path in ["/case/", "/CASE/", "/CaSe/", "/cAsE/", "/CaSe/1/", "/mixed/", "/MIXED/", "/MiXeD/"]:
        try:
            expected = resolve(path, Conf).func
        except Resolver404:
            expected = None
        found = routes.find(path)
        got = found.endpoint.callback if found is not None else None
        if expected is not None and lift_kind(expected) is None:
            expected = None
        assert got is expected, path
