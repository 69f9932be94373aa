"""The combined app through real HTTP: what is lifted, what the handler sees, errors, names."""

import logging

import pytest
from aiohttp import web
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import resolve, reverse

from aiodjango import get_aio_application
from aiodjango.application import APP_KEY
from tests.wsgi import application


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(get_aio_application(application))


@pytest.fixture
async def client_without_csrf(aiohttp_client):
    """Unsafe methods without a CSRF token: CsrfViewMiddleware skipped for lifted views."""
    skip = {"django.middleware.csrf.CsrfViewMiddleware": "skip"}
    with override_settings(AIODJANGO_MIDDLEWARE=skip):
        app = get_aio_application(application)
    return await aiohttp_client(app)


@pytest.mark.parametrize(
    "path, view",
    [
        ("/hello/", "hello"),
        ("/partial/", "partial_view"),
        ("/callable/", "callable_view"),
        ("/marked/", "marked_view"),
        ("/itemview/", "ItemView"),
        ("/sync/", "sync_view"),
        ("/django-cbv/", "DjangoAsyncView"),
        ("/django-async/", "django_async_view"),
    ],
)
async def test_each_kind_of_view_answers_from_the_right_side(client, path, view):
    response = await client.get(path)
    assert response.status == 200, await response.text()
    assert response.headers["X-View"] == view
    state = client.server.app[APP_KEY]
    lifted = state.routes.find(path) is not None
    assert lifted == (view not in {"sync_view", "DjangoAsyncView", "django_async_view"})


async def test_lifted_functions_answer_every_method(client_without_csrf):
    client = client_without_csrf
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        response = await client.request(method, "/hello/")
        assert response.status == 200, method
        assert response.headers["X-View"] == "hello"


async def test_aiohttp_class_based_view_answers_its_methods_and_405_with_allow(client_without_csrf):
    client = client_without_csrf
    assert await (await client.post("/itemview/")).text() == "item post"
    response = await client.put("/itemview/")
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) == {"GET", "POST"}


async def test_match_info_holds_strings_and_resolver_match_is_djangos(client):
    body = await (await client.get("/items/0042/")).json()
    assert body["match_info"] == {"pk": "0042"}
    assert body["kwargs"] == {"pk": "42"}  # after the int converter
    assert body["url_name"] == "item"
    assert body["namespaces"] == ["items"]
    assert body["route"] == resolve("/items/0042/").route == "items/<int:pk>/"


async def test_positional_groups_are_in_match_info_args(client):
    body = await (await client.get("/archive/2024/05/")).json()
    assert body["args"] == ["2024", "05"]
    assert body["match_info"] == {}
    assert resolve("/archive/2024/05/").args == ("2024", "05")


async def test_extra_kwargs_reach_resolver_match_not_match_info(client):
    body = await (await client.get("/extra/")).json()
    assert body["kwargs"] == {"flavour": "vanilla"}
    assert body["match_info"] == {}


async def test_converter_mismatch_falls_back_to_django_404(client):
    response = await client.get("/items/abc/")
    assert response.status == 404
    assert "X-View" not in response.headers
    assert "Not Found" in await response.text()  # Django's own 404 page


async def test_append_slash_redirect_comes_from_django(client):
    response = await client.get("/hello", allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == "/hello/"


async def test_websocket_on_a_lifted_route(client):
    async with client.ws_connect("/ws/") as ws:
        await ws.send_str("ping")
        assert (await ws.receive(timeout=5)).data == "echo: ping"


async def test_url_for_matches_reverse_for_every_named_lifted_route(client):
    router = client.server.app.router
    assert str(router["hello"].url_for()) == reverse("hello") == "/hello/"
    assert str(router["async-hello"].url_for()) == reverse("async-hello")
    assert str(router["items:item"].url_for(pk="7")) == reverse("items:item", kwargs={"pk": 7})
    assert str(router["extra"].url_for()) == reverse("extra")
    for resource in client.server.app[APP_KEY].routes.resources:
        if resource.route_name and "<" not in resource.endpoint.route and "(" not in resource.endpoint.route:
            assert str(router[resource.route_name].url_for()) == reverse(resource.route_name)


# -- errors -----------------------------------------------------------------


async def test_a_lifted_view_returning_a_django_response_is_a_500_naming_the_view(client, caplog):
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = await client.get("/errors/django-response/")
    assert response.status == 500
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert "tests.views.returns_django_response" in record.getMessage()
    assert "django.http.response.HttpResponse" in record.getMessage()
    assert "keep_in_django" in record.getMessage()
    assert (await client.get("/hello/")).status == 200  # still serving


async def test_a_lifted_view_returning_none_is_a_500(client, caplog):
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = await client.get("/errors/none/")
    assert response.status == 500
    assert any("tests.views.returns_none" in r.getMessage() for r in caplog.records)


async def test_an_exception_is_a_500_logged_like_django_and_the_server_keeps_serving(client, caplog):
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = await client.get("/errors/raises/")
    assert response.status == 500
    assert "boom" not in await response.text()  # DEBUG is off: no traceback leaks
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage().startswith("Internal Server Error: /errors/raises/")
    assert "tests.views.raises" in record.getMessage()
    assert record.status_code == 500
    assert record.exc_info[0] is ValueError
    assert (await client.get("/hello/")).status == 200


def test_a_view_that_cannot_take_one_request_is_refused_at_start_up():
    with pytest.raises(ImproperlyConfigured) as info:
        get_aio_application(application, urlconf="tests.urls_bad_signature")
    message = str(info.value)
    assert "tests.views.bad_signature" in message
    assert "'bad/<int:pk>/'" in message
    assert "keep_in_django" in message


def test_a_non_callable_wsgi_argument_is_refused():
    with pytest.raises(TypeError, match="WSGI application"):
        get_aio_application("tests.wsgi.application")


@pytest.mark.parametrize("threads", [0, -1, "8"])
def test_a_bad_thread_count_names_the_setting(threads):
    with pytest.raises(ImproperlyConfigured, match="AIODJANGO_THREADS"):
        get_aio_application(application, threads=threads)


def test_no_argument_builds_djangos_wsgi_application():
    app = get_aio_application()
    assert app[APP_KEY].bridge.application.__class__.__name__ == "WSGIHandler"


# -- the returned app stays an ordinary aiohttp application -------------------


async def test_routes_middlewares_and_signals_added_afterwards_work(aiohttp_client):
    app = get_aio_application(application)
    events = []

    async def root(request):
        return web.Response(text="user root")

    async def extra(request):
        return web.Response(text="user route")

    @web.middleware
    async def tag(request, handler):
        response = await handler(request)
        response.headers["X-Middleware"] = "yes"
        return response

    async def on_startup(app):
        events.append("startup")

    async def context(app):
        events.append("ctx-enter")
        yield
        events.append("ctx-exit")

    app.router.add_get("/", root)
    app.router.add_get("/user/{tail:.*}", extra)
    app.middlewares.append(tag)
    app.on_startup.append(on_startup)
    app.cleanup_ctx.append(context)
    client = await aiohttp_client(app)
    assert await (await client.get("/")).text() == "user root"
    response = await client.get("/user/x/y")
    assert await response.text() == "user route"
    assert response.headers["X-Middleware"] == "yes"
    for path in ("/sync/", "/hello/"):  # the middleware wraps both sides
        response = await client.get(path)
        assert response.status == 200
        assert response.headers["X-Middleware"] == "yes"
    assert sorted(events) == ["ctx-enter", "startup"]
    await client.close()
    assert events[-1] == "ctx-exit"


async def test_include_static_serves_static_root(aiohttp_client, tmp_path):
    (tmp_path / "site.css").write_text("body { color: red }")
    with override_settings(STATIC_ROOT=str(tmp_path), STATIC_URL="/assets/"):
        app = get_aio_application(application, include_static=True)
    client = await aiohttp_client(app)
    response = await client.get("/assets/site.css")
    assert response.status == 200
    assert await response.text() == "body { color: red }"
    assert (await client.get("/assets/missing.css")).status == 404


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"STATIC_ROOT": None}, "STATIC_ROOT"),
        ({"STATIC_ROOT": "/nonexistent/dir"}, "collectstatic"),
        ({"STATIC_URL": "https://cdn.example.com/static/", "STATIC_ROOT": "/tmp"}, "absolute URL"),
    ],
)
def test_include_static_misconfiguration_names_the_setting(overrides, message):
    with override_settings(**overrides), pytest.raises(ImproperlyConfigured, match=message):
        get_aio_application(application, include_static=True)


async def test_run_with_app_runner_on_a_real_port():
    import aiohttp

    runner = web.AppRunner(get_aio_application(application))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/hello/") as response:
                assert await response.text() == "Hello, aiohttp!"
            async with session.get(f"http://127.0.0.1:{port}/sync/") as response:
                assert response.headers["X-View"] == "sync_view"
    finally:
        await runner.cleanup()
