"""Django's own responses through the bridge (``get_wsgi_application()``)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp import web
from django.core.signals import request_finished
from django.core.wsgi import get_wsgi_application
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.test import override_settings
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from aiodjango.wsgi import WSGIBridge


def hello(request):
    return HttpResponse(f"hello {request.path} {request.GET.get('q', '')}")


@csrf_exempt
def echo_post(request):
    return HttpResponse(request.body, content_type="application/octet-stream")


def stream(request):
    return StreamingHttpResponse(b"part %d;" % i for i in range(3))


def download(request):
    return FileResponse(open(__file__, "rb"), as_attachment=True, filename="x.py")


urlpatterns = [
    path("café/", hello),
    path("hello/", hello),
    path("echo/", echo_post),
    path("stream/", stream),
    path("download/", download),
]

pytestmark = [pytest.mark.urls(__name__)]


class CountingExecutor(ThreadPoolExecutor):
    """A real executor that counts the jobs it is given."""

    def __init__(self) -> None:
        super().__init__(2)
        self.jobs = 0

    def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        self.jobs += 1
        return super().submit(*args, **kwargs)


@pytest.fixture
def executor():
    with CountingExecutor() as executor:
        yield executor


@pytest.fixture
async def client(aiohttp_client, executor):
    bridge = WSGIBridge(get_wsgi_application(), executor=executor)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bridge.handle)
    app.on_cleanup.append(lambda app: bridge.shutdown())
    with override_settings(ALLOWED_HOSTS=["*"]):
        yield await aiohttp_client(app)


async def test_http_response_takes_one_thread_hop(client, executor):
    finished = []

    def on_finished(sender, **kwargs):
        finished.append(threading.current_thread().name)

    request_finished.connect(on_finished)
    try:
        resp = await client.get("/caf%C3%A9/?q=1")
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len("hello /café/ 1".encode()))
        assert await resp.text() == "hello /café/ 1"
        assert executor.jobs == 1  # app call + body + close(): one hop
        assert finished and finished[0] != threading.current_thread().name
    finally:
        request_finished.disconnect(on_finished)


async def test_post_body(client):
    resp = await client.post("/echo/", data=b"\x00binary\xff")
    assert resp.status == 200
    assert await resp.read() == b"\x00binary\xff"


async def test_streaming_http_response(client):
    resp = await client.get("/stream/")
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert await resp.read() == b"part 0;part 1;part 2;"


async def test_file_response(client):
    resp = await client.get("/download/")
    with open(__file__, "rb") as f:
        content = f.read()
    assert resp.headers["Content-Length"] == str(len(content))
    assert resp.headers["Content-Disposition"] == 'attachment; filename="x.py"'
    assert await resp.read() == content


async def test_head_file_response(client):
    resp = await client.head("/download/")
    assert resp.status == 200 and await resp.read() == b""
    assert resp.headers["Content-Length"] == str(len(Path(__file__).read_bytes()))
