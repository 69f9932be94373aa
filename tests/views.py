"""Views of the test URLconfs: Django views and lifted aiohttp handlers.

Every view says who answered in the ``X-View`` header, so tests can compare
the combined app's choice with ``django.urls.resolve()``.
"""

import functools

from aiohttp import web
from asgiref.sync import markcoroutinefunction
from django.http import HttpResponse, JsonResponse
from django.views import View

from aiodjango import keep_in_django


def sync_view(request, *args, **kwargs):
    response = JsonResponse({"view": "sync_view", "args": list(args), "kwargs": {k: str(v) for k, v in kwargs.items()}})
    response["X-View"] = "sync_view"
    return response


def other_sync_view(request, *args, **kwargs):
    response = HttpResponse("other")
    response["X-View"] = "other_sync_view"
    return response


async def hello(request):
    return web.Response(text="Hello, aiohttp!", headers={"X-View": "hello"})


async def lifted_view(request):
    match = request.match_info.resolver_match
    return web.json_response(
        {
            "view": "lifted_view",
            "match_info": dict(request.match_info),
            "args": list(request.match_info.args),
            "kwargs": {k: str(v) for k, v in match.kwargs.items()},
            "url_name": match.url_name,
            "namespaces": match.namespaces,
            "route": match.route,
        },
        headers={"X-View": "lifted_view"},
    )


async def other_lifted_view(request):
    return web.json_response(
        {"view": "other_lifted_view", "match_info": dict(request.match_info)},
        headers={"X-View": "other_lifted_view"},
    )


async def _with_greeting(request, greeting):
    return web.Response(text=greeting, headers={"X-View": "partial_view"})


partial_view = functools.partial(_with_greeting, greeting="partial hello")


class CallableView:
    async def __call__(self, request):
        return web.Response(text="callable", headers={"X-View": "callable_view"})


callable_view = CallableView()


def _marked(request):
    async def respond():
        return web.Response(text="marked", headers={"X-View": "marked_view"})

    return respond()


marked_view = markcoroutinefunction(_marked)


class ItemView(web.View):
    async def get(self):
        return web.Response(text="item get", headers={"X-View": "ItemView"})

    async def post(self):
        return web.Response(text="item post", headers={"X-View": "ItemView"})


class DjangoAsyncView(View):
    async def get(self, request, *args, **kwargs):
        response = HttpResponse("django async cbv")
        response["X-View"] = "DjangoAsyncView"
        return response


@keep_in_django
async def django_async_view(request, **kwargs):
    response = HttpResponse("django async fbv")
    response["X-View"] = "django_async_view"
    return response


async def websocket_echo(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        await ws.send_str("echo: " + message.data)
    return ws


async def returns_django_response(request):
    return HttpResponse("wrong kind")


async def returns_none(request):
    return None


async def raises(request):
    raise ValueError("boom in lifted view")


async def bad_signature(request, pk):  # pragma: no cover - refused at start-up
    return web.Response()

