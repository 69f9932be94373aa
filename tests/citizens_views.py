"""Lifted handlers (and one Django view) for the Django-citizenship tests.

Each handler uses one of aiodjango's helpers: sessions and users, login,
CSRF, the Host and Origin switches, the async ORM.
"""

import threading

from aiohttp import web
from asgiref.sync import sync_to_async
from django.contrib import auth as django_auth
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required as django_login_required
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.template import engines

from aiodjango import keep_in_django
from aiodjango.auth import get_session, get_user, login, login_required, logout, save_session
from aiodjango.security import check_host, check_origin, csrf_protect, get_csrf_token

LOGIN_TEMPLATE = (
    '<form method="post">{% csrf_token %}{{ form.as_p }}'
    '<input type="hidden" name="next" value="{{ next }}"></form>'
)


class LoginView(auth_views.LoginView):
    """Django's own login view; its template is inline (the tests have no template files)."""

    def render_to_response(self, context, **kwargs):
        template = engines["django"].from_string(LOGIN_TEMPLATE)
        return HttpResponse(template.render(context, self.request))


def _describe(user):
    return user.get_username() if user.is_authenticated else None


async def whoami(request):
    user = await get_user(request)
    session = await get_session(request)
    session["visits"] = session.get("visits", 0) + 1
    return web.json_response({"user": _describe(user), "visits": session["visits"]})


async def whoami_ws(request):
    user = await get_user(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"user": _describe(user)})
    async for message in ws:
        if message.data == "count":
            session = await get_session(request)
            session["ws_messages"] = session.get("ws_messages", 0) + 1
            await save_session(request)
            await ws.send_json({"ws_messages": session["ws_messages"]})
        elif message.data == "logout":
            await logout(request)  # the cookie can't follow: aiodjango warns
    return ws


@login_required
async def protected(request):
    return web.json_response({"user": _describe(await get_user(request))})


@login_required(raise_exception=True)
async def protected_api(request):
    return web.json_response({"user": _describe(await get_user(request))})


@login_required
async def protected_ws(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"user": _describe(await get_user(request))})
    await ws.close()
    return ws


class ProtectedView(web.View):
    @login_required(raise_exception=True)
    async def get(self):
        return web.json_response({"user": _describe(await get_user(self.request))})


async def aio_login(request):
    data = await request.post()
    user = await sync_to_async(django_auth.authenticate)(
        None, username=data.get("username"), password=data.get("password")
    )
    if user is None:
        return web.json_response({"ok": False}, status=401)
    await login(request, user)
    return web.json_response({"ok": True, "user": user.get_username()})


async def aio_logout(request):
    await logout(request)
    return web.json_response({"user": _describe(await get_user(request))})


async def raise_after_login(request):
    """Logs in, then answers with an aiohttp HTTPException: the cookie must still go out."""
    user = await sync_to_async(User.objects.get)(username=request.query["username"])
    await login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    raise web.HTTPFound("/citizens/whoami/")


@csrf_protect
async def csrf_form(request):
    if request.method == "GET":
        return web.json_response({"token": await get_csrf_token(request)})
    data = await request.post()
    return web.json_response({"accepted": True, "field": data.get("field")})


class CsrfView(web.View):
    async def get(self):
        return web.json_response({"token": await get_csrf_token(self.request)})

    @csrf_protect
    async def post(self):
        return web.json_response({"accepted": True})


async def count_users(request):
    return web.json_response({"users": await User.objects.acount()})


async def hello(request):
    return web.Response(text="hello citizen")


@check_host(False)
async def any_host(request):
    return web.Response(text="any host")


async def echo_ws(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        await ws.send_str("echo: " + message.data)
    return ws


@check_origin(False)
async def public_ws(request):
    return await echo_ws(request)


def django_hello(request):
    return HttpResponse("hello from django")


@django_login_required
def django_protected(request):
    return HttpResponse("django view, logged in")


def _thread():
    return {"ident": threading.get_ident(), "name": threading.current_thread().name}


async def db_threads(request):
    """Where the thread-sensitive calls of one request run."""
    first = await sync_to_async(_thread)()
    users = await User.objects.acount()
    second = await sync_to_async(_thread)()
    return web.json_response({"threads": [first, second], "users": users})


BARRIER = threading.Barrier(2, timeout=5)


async def db_barrier(request):
    """Two requests meet here: they can only if each has its own thread."""
    await sync_to_async(BARRIER.wait)()
    return web.json_response(await sync_to_async(_thread)())


async def db_then_raise(request):
    await User.objects.acount()
    raise RuntimeError("boom after a query")


@django_login_required
async def mistaken(request):
    """A Django-native async view without @keep_in_django: aiodjango.W010 says so.

    (Django 5.0+: before, Django's decorators didn't keep views coroutines.)
    """
    return HttpResponse("never lifted correctly")


@keep_in_django
@django_login_required
async def kept(request):
    """The same, kept in Django: no warning."""
    return HttpResponse("a Django async view")


def application_with_an_extra_route():
    """An AIODJANGO_APPLICATION: the combined app plus a route added in aiohttp."""
    from aiodjango import get_aio_application

    app = get_aio_application()
    app.router.add_get("/extra/{name}/", hello, name="extra")
    return app
