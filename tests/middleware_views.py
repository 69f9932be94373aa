"""Views of the MIDDLEWARE tests: each lifted handler next to a Django view doing the same.

The Django views are the control: the same server answers both, and the
tests compare what Django's middleware did to one with what aiodjango did
to the other.  Decorators that need a newer Django are applied only there
(the tests using them are skipped below it).
"""

import asyncio

import django
from aiohttp import web
from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.utils import translation
from django.utils.deprecation import MiddlewareMixin
from django.views.decorators import clickjacking
from django.views.decorators.csrf import csrf_exempt

from aiodjango.auth import login_required
from aiodjango.policies import csp_nonce
from aiodjango.security import csrf_protect

DJANGO_5 = django.VERSION >= (5, 0)  # Django's decorators keep coroutine views coroutines
DJANGO_51 = django.VERSION >= (5, 1)  # LoginRequiredMiddleware, login_not_required
DJANGO_6 = django.VERSION >= (6, 0)  # ContentSecurityPolicyMiddleware

BIG = "All work and no play makes Jack a dull boy. " * 40  # worth compressing


# -- the control: Django views ----------------------------------------------


def django_page(request):
    return HttpResponse("django page")


def django_form(request):
    return HttpResponse(f"django {request.method}")


@csrf_exempt
def django_exempt(request):
    return HttpResponse(f"django exempt {request.method}")


def django_big(request):
    return HttpResponse(BIG, content_type="text/plain")


def django_language(request):
    return JsonResponse({"language": translation.get_language()})


def django_json(request):
    return JsonResponse({"from": "django"})


def django_scheme(request):
    return JsonResponse({"scheme": request.scheme, "secure": request.is_secure()})


@clickjacking.xframe_options_sameorigin
def django_sameorigin(request):
    return HttpResponse("django sameorigin")


@clickjacking.xframe_options_exempt
def django_frameable(request):
    return HttpResponse("django frameable")


# -- lifted views ---------------------------------------------------------------


async def page(request):
    return web.Response(text="lifted page")


async def form(request):
    return web.Response(text=f"lifted {request.method}")


async def exempt_by_attribute(request):
    return web.Response(text=f"lifted exempt {request.method}")


exempt_by_attribute.csrf_exempt = True  # what Django's csrf_exempt sets (any Django version)


@csrf_protect
async def protected_form(request):
    return web.Response(text=f"protected {request.method}")


async def upload(request):
    """Streams a multipart body itself: the CSRF token comes in the header."""
    reader = await request.multipart()
    sizes = {}
    async for part in reader:
        sizes[part.name] = len(await part.read())
    return web.json_response(sizes)


async def json_api(request):
    body = await request.json() if request.body_exists else None
    return web.json_response({"from": "lifted", "got": body})


async def big(request):
    return web.Response(text=BIG)


async def stream(request):
    response = web.StreamResponse()
    response.content_type = "text/event-stream"
    await response.prepare(request)
    await response.write(b"data: hello\n\n")
    await response.write_eof()
    return response


async def answers(request):
    """Answers the view raises, or Django's answer to what it raises (``?as=``)."""
    kind = request.query.get("as")
    if kind == "redirect":
        raise web.HTTPFound("/lifted/page/")
    if kind == "gone":
        raise web.HTTPGone(text="gone")
    if kind == "404":
        raise Http404("no such thing")
    if kind == "403":
        raise PermissionDenied
    raise RuntimeError("lifted view failed")


async def websocket(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str("hello")
    await ws.close()
    return ws


async def scheme(request):
    try:
        url = str(request.url)
    except ValueError:  # aiohttp 3.9 with a recent yarl: request.url fails with a port
        url = None
    return web.json_response({"scheme": request.scheme, "secure": request.secure, "url": url})


# Rendezvous of concurrent requests, per group: each waits until all arrived.
_groups: dict = {}


async def language(request):
    """The active language, after every request of its group arrived (``?group=&n=``)."""
    group = request.query.get("group")
    if group:
        arrived, event = _groups.setdefault(group, ([], asyncio.Event()))
        arrived.append(request)
        if len(arrived) >= int(request.query["n"]):
            event.set()
        await asyncio.wait_for(event.wait(), 10)
    in_thread = await sync_to_async(translation.get_language)()
    return web.json_response(
        {
            "language": translation.get_language(),
            "in_thread": in_thread,
            "translated": translation.gettext("Enter a valid value."),
        }
    )


async def private(request):
    return web.Response(text="lifted private")


async def private_ws(request):
    return await websocket(request)


@login_required(raise_exception=True)
async def own_check(request):
    return web.Response(text="checked by aiodjango.auth.login_required")


async def nonce(request):
    value = csp_nonce(request)
    return web.json_response({"nonce": None if value is None else str(value)})


async def no_nonce(request):
    return web.Response(text="no nonce used")


class OpenView(web.View):
    """An aiohttp class-based view: the markers are class attributes."""

    csrf_exempt = True  # what csrf_exempt sets on a function
    login_required = False  # what login_not_required sets (it works on classes too)

    async def post(self):
        return web.Response(text="open POST")


if DJANGO_5:

    @csrf_exempt
    async def exempt(request):
        return web.Response(text=f"lifted exempt {request.method}")

    @clickjacking.xframe_options_exempt
    async def frameable(request):
        return web.Response(text="lifted frameable")

    @clickjacking.xframe_options_sameorigin
    async def sameorigin(request):
        return web.Response(text="lifted sameorigin")

    @clickjacking.xframe_options_deny
    async def deny_set_by_view(request):
        # The view's own header wins, as with Django views.
        return web.Response(text="lifted", headers={"X-Frame-Options": "SAMEORIGIN"})

else:
    exempt = frameable = sameorigin = deny_set_by_view = page

if DJANGO_51:
    from django.contrib.auth.decorators import login_not_required

    @login_not_required
    async def public(request):
        return web.Response(text="lifted public")

    @login_not_required
    def django_public(request):
        return HttpResponse("django public")

else:
    public = page
    django_public = django_page

if DJANGO_6:
    from django.utils.csp import CSP
    from django.views.decorators.csp import csp_override

    @csp_override({"default-src": [CSP.NONE]})
    async def csp_overridden(request):
        return web.Response(text="lifted, own policy")

    @csp_override({"default-src": [CSP.NONE]})
    def django_csp_overridden(request):
        return HttpResponse("django, own policy")

    def django_nonce(request):
        from django.middleware.csp import get_nonce

        return JsonResponse({"nonce": str(get_nonce(request))})

else:
    csp_overridden = page
    django_csp_overridden = django_nonce = django_page


# -- the project's own middleware ---------------------------------------------


class ProjectMiddleware(MiddlewareMixin):
    """A project's middleware: a header on every response, a refusal on demand."""

    def process_request(self, request):
        if request.headers.get("X-Refuse"):
            return HttpResponse("refused by the project", status=418)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.headers.get("X-Refuse-View"):
            return HttpResponse("refused in process_view", status=409)

    def process_response(self, request, response):
        response["X-Project"] = "django"
        return response


#: What ExceptionLogMiddleware saw: (path, exception class name, thread name).
EXCEPTIONS_SEEN = []


class ErrorPageMiddleware(MiddlewareMixin):
    """A project's error page: ``process_exception`` answers for a ValueError."""

    def process_exception(self, request, exception):
        if isinstance(exception, ValueError):
            return JsonResponse({"error": str(exception)}, status=500)
        return None


class ExceptionLogMiddleware(MiddlewareMixin):
    """Listed after ErrorPageMiddleware, so called first: records, answers nothing."""

    def process_exception(self, request, exception):
        import threading

        EXCEPTIONS_SEEN.append(
            (request.path, type(exception).__name__, threading.current_thread().name)
        )


def django_fails(request):
    raise {"ValueError": ValueError, "RuntimeError": RuntimeError}[request.GET["with"]]("bad input")


async def fails(request):
    raise {"ValueError": ValueError, "RuntimeError": RuntimeError}[request.query["with"]]("bad input")


class UnusedMiddleware(MiddlewareMixin):
    """A middleware that turns itself off (Django then skips it)."""

    def __init__(self, get_response):
        from django.core.exceptions import MiddlewareNotUsed

        raise MiddlewareNotUsed("not on this site")


def sync_only_middleware(get_response):
    def middleware(request):
        return get_response(request)

    return middleware


@web.middleware
async def project_aiohttp_middleware(request, handler):
    """The aiohttp side of ProjectMiddleware."""
    response = await handler(request)
    response.headers["X-Project"] = "aiohttp"
    return response

