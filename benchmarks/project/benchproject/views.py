"""The views every server answers: the same Hello World three ways, and the load views.

``lifted_hello`` and ``ws_echo`` are coroutine views: aiodjango lifts them to
aiohttp routes, and the bare-aiohttp server mounts the very same functions.
"""

import time

from aiohttp import web
from django.conf import settings
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from aiodjango import keep_in_django

HELLO = "Hello, World!"


def sync_hello(request, **kwargs):
    """A Django sync view: through a WSGI or ASGI server, or aiodjango's bridge."""
    return HttpResponse(HELLO, content_type="text/plain")


@keep_in_django
async def django_async_hello(request, **kwargs):
    """A Django-native async view: what Django users run under uvicorn today."""
    return HttpResponse(HELLO, content_type="text/plain")


async def lifted_hello(request):
    """An aiohttp handler: lifted by aiodjango, or mounted in a bare aiohttp app."""
    return web.Response(text=HELLO)


async def ws_echo(request):
    """A websocket echo handler (lifted)."""
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    async for message in ws:
        if message.type == web.WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type == web.WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


def file_download(request):
    """A FileResponse of the file the harness created (BENCH_FILE)."""
    return FileResponse(open(settings.BENCH_FILE, "rb"), content_type="application/octet-stream")


STREAM_CHUNK = b"s" * (64 * 1024)
STREAM_CHUNKS = 160  # 10 MiB


def sync_stream(request):
    """A 10 MiB StreamingHttpResponse in 64 KiB chunks, produced by a generator."""
    return StreamingHttpResponse(
        (STREAM_CHUNK for _ in range(STREAM_CHUNKS)), content_type="application/octet-stream"
    )


def sleep(request):
    """Holds a server thread: ``?s=`` seconds of time.sleep (default 0.1, at most 5)."""
    seconds = min(float(request.GET.get("s", "0.1")), 5.0)
    time.sleep(seconds)
    return HttpResponse("slept", content_type="text/plain")


@csrf_exempt  # the harness posts raw bytes, with no CSRF token
@require_POST
def sync_upload(request):
    """A POST upload: reads the whole body, answers its length (the stalled uploads).

    Under aiodjango a stalled upload never gets here: the bridge reads the body
    before it calls Django.  Under gunicorn's gthread worker each of its threads
    runs this view and blocks in ``request.body`` until the body is complete.
    """
    return HttpResponse(str(len(request.body)), content_type="text/plain")
