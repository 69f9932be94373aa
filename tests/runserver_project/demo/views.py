from aiohttp import WSMsgType, web
from django.http import HttpResponse

GREETING = "Hello from aiohttp"


async def hello(request):
    """A lifted view: served by aiohttp."""
    return web.Response(text=GREETING)


def django_view(request):
    """A Django view: served through the WSGI bridge."""
    return HttpResponse("Hello from Django")


async def echo(request):
    """A websocket handler."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str("echo: " + msg.data)
    return ws
