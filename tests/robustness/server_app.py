"""The project the robustness suite attacks, run as a real server subprocess.

One URLconf with every kind of view aiodjango serves: lifted aiohttp
handlers (plain, echo, streaming, websocket, slow, raising, never
returning) and Django sync views (plain, echo, upload, streaming, slow,
raising).  Around the Django WSGI app sits :func:`checked_wsgi`, which
inspects every environ before Django sees it (PEP 3333 types and the
characters a parser must never let through) and counts the iterables that
are never closed.  ``/__diag__/`` reports those counters with the process's
threads, file descriptors, temporary files and RSS.

Run it as ``python -m tests.robustness.server_app --port 0``: it prints
``READY <port>`` once it accepts connections.  Under gunicorn use
``tests.robustness.server_app:gunicorn_app`` with
``aiohttp.worker.GunicornWebWorker``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import socket
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Iterable

from aiohttp import web
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

_lock = threading.Lock()
STATS: dict[str, Any] = {
    "django_calls": 0,
    "wsgi_inflight": 0,
    "wsgi_not_closed": 0,
    "violations": [],
    "canary": 0,
    "django_stream_started": 0,
    "django_stream_closed": 0,
    "lifted_inflight": 0,
    "lifted_stream_started": 0,
    "lifted_stream_done": 0,
    "ws_open": 0,
    "sync_slow_inflight": 0,
}
_release = threading.Event()


def _bump(key: str, delta: int = 1) -> None:
    with _lock:
        STATS[key] += delta


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes both sides can produce and check."""
    block = hashlib.sha256(str(seed).encode()).digest() * 128  # 4 KiB
    return (block * (size // len(block) + 1))[:size]


# --- the environ check around Django -------------------------------------

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# A header's key: its name upper-cased, "-" as "_" (other token characters stay, as in CGI).
_HTTP_KEY = re.compile(r"^HTTP_[!#$%&'*+.^_`|~0-9A-Z]+\Z")
_REQUIRED = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
    "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.version", "wsgi.url_scheme", "wsgi.input",
    "wsgi.errors", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
)


def environ_problems(environ: dict[str, Any]) -> list[str]:
    """What is wrong with ``environ`` for PEP 3333 and for a careful parser."""
    problems = [f"missing {key}" for key in _REQUIRED if key not in environ]
    for key, value in environ.items():
        if "." in key:
            continue
        if not isinstance(value, str):
            problems.append(f"{key} is {type(value).__name__}, not str")
            continue
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            problems.append(f"{key}={value!r} is not a latin-1 native string")
        if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if not _HTTP_KEY.match(key) and key.startswith("HTTP_"):
                problems.append(f"header key {key!r}")
            if any(c in value for c in "\r\n\x00"):
                problems.append(f"{key}={value!r} holds CR, LF or NUL")
    method = environ.get("REQUEST_METHOD", "")
    if not isinstance(method, str) or not _TOKEN.match(method):
        problems.append(f"REQUEST_METHOD={method!r}")
    length = environ.get("CONTENT_LENGTH", "")
    if length and not (isinstance(length, str) and length.isdigit() and length.isascii()):
        problems.append(f"CONTENT_LENGTH={length!r}")
    if environ.get("SERVER_PROTOCOL") not in ("HTTP/1.0", "HTTP/1.1"):
        problems.append(f"SERVER_PROTOCOL={environ.get('SERVER_PROTOCOL')!r}")
    path_info = environ.get("PATH_INFO", "")
    if isinstance(path_info, str) and path_info not in ("", "*") and not path_info.startswith("/"):
        problems.append(f"PATH_INFO={path_info!r} does not start with /")
    query = environ.get("QUERY_STRING", "")
    if isinstance(query, str) and any(c in query for c in " \r\n\x00#"):
        problems.append(f"QUERY_STRING={query!r} holds characters the wire can't carry")
    return problems


class _Closing:
    """The app's iterable, counting whether the server closes it."""

    def __init__(self, iterable: Iterable[bytes]) -> None:
        self._iterable = iterable
        self._closed = False

    def __iter__(self):
        return iter(self._iterable)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _bump("wsgi_inflight", -1)
        close = getattr(self._iterable, "close", None)
        if close is not None:
            close()

    def __del__(self) -> None:
        if not self._closed:
            _bump("wsgi_not_closed")
            _bump("wsgi_inflight", -1)


def checked_wsgi(application: Callable[..., Any]) -> Callable[..., Any]:
    def checked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        problems = environ_problems(environ)
        if problems:
            with _lock:
                STATS["violations"].append(problems)
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"corrupted environ\n"]
        _bump("django_calls")
        _bump("wsgi_inflight")
        try:
            iterable = application(environ, start_response)
        except BaseException:
            _bump("wsgi_inflight", -1)
            raise
        wrapper = getattr(environ.get("wsgi.file_wrapper"), "__name__", None)
        if wrapper is not None and type(iterable).__name__ == wrapper:
            # Keep a file wrapper recognisable for sendfile.
            _bump("wsgi_inflight", -1)
            return iterable
        return _Closing(iterable)

    return checked


# --- lifted views ---------------------------------------------------------


async def lifted_hello(request: web.Request) -> web.Response:
    return web.Response(text="lifted hello", headers={"X-View": "lifted_hello"})


async def lifted_echo(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    chunks = []
    async for chunk in request.content.iter_chunked(65536):
        digest.update(chunk)
        chunks.append(chunk)
    body = b"".join(chunks)
    return web.Response(
        body=body,
        headers={"X-View": "lifted_echo", "X-SHA256": digest.hexdigest(), "X-Length": str(len(body))},
    )


async def lifted_stream(request: web.Request) -> web.StreamResponse:
    chunks = int(request.query.get("chunks", "16"))
    size = int(request.query.get("size", "16384"))
    delay = float(request.query.get("delay", "0"))
    response = web.StreamResponse(headers={"X-View": "lifted_stream"})
    _bump("lifted_stream_started")
    try:
        await response.prepare(request)
        for index in range(chunks):
            await response.write(pattern(size, index))
            if delay:
                await asyncio.sleep(delay)
        await response.write_eof()
    finally:
        _bump("lifted_stream_done")
    return response


async def lifted_ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    _bump("ws_open")
    try:
        async for message in ws:
            if message.type == web.WSMsgType.TEXT:
                await ws.send_str(hashlib.sha256(message.data.encode()).hexdigest() + ":" + message.data)
            elif message.type == web.WSMsgType.BINARY:
                await ws.send_bytes(message.data)
    finally:
        _bump("ws_open", -1)
    return ws


async def lifted_sleep(request: web.Request) -> web.Response:
    _bump("lifted_inflight")
    try:
        await asyncio.sleep(float(request.query.get("t", "0.1")))
    finally:
        _bump("lifted_inflight", -1)
    return web.Response(text="slept", headers={"X-View": "lifted_sleep"})


async def lifted_forever(request: web.Request) -> web.Response:
    """Never returns: only a client timeout, a disconnect or shutdown ends it."""
    _bump("lifted_inflight")
    try:
        await asyncio.Event().wait()
    finally:
        _bump("lifted_inflight", -1)
    return web.Response()  # pragma: no cover


async def lifted_raise(request: web.Request) -> web.Response:
    raise RuntimeError("robustness: a lifted view raised")


async def lifted_canary(request: web.Request) -> web.Response:
    _bump("canary")
    return web.Response(text="canary", headers={"X-View": "lifted_canary"})


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0  # pragma: no cover


async def release(request: web.Request) -> web.Response:
    """Let every waiting ``django_slow`` view return now."""
    _release.set()
    return web.Response(text="released")


async def diag(request: web.Request) -> web.Response:
    with _lock:
        stats = {k: (list(v) if isinstance(v, list) else v) for k, v in STATS.items()}
    tmpdir = tempfile.gettempdir()
    stats.update(
        pid=os.getpid(),
        rss_kib=_rss_kib(),
        fds=len(os.listdir("/proc/self/fd")),
        threads=[t.name for t in threading.enumerate()],
        tmpdir=tmpdir,
        tmp_files=sorted(os.listdir(tmpdir)),
        tasks=len(asyncio.all_tasks()),
    )
    return web.json_response(stats)


# --- Django views -----------------------------------------------------------


def django_hello(request):
    response = HttpResponse("django hello")
    response["X-View"] = "django_hello"
    return response


def _check_length(request, size: int) -> None:
    """A view must never see a body shorter or longer than announced."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if int(declared) != size:
        with _lock:
            STATS["violations"].append([f"{request.path}: CONTENT_LENGTH={declared} but {size} bytes read"])


@csrf_exempt
def django_echo(request):
    body = request.body
    _check_length(request, len(body))
    response = HttpResponse(body, content_type="application/octet-stream")
    response["X-View"] = "django_echo"
    response["X-SHA256"] = hashlib.sha256(body).hexdigest()
    response["X-Length"] = str(len(body))
    return response


@csrf_exempt
def django_upload(request):
    results = {}
    for name, upload in request.FILES.items():
        digest = hashlib.sha256()
        for chunk in upload.chunks():
            digest.update(chunk)
        results[name] = {
            "sha256": digest.hexdigest(),
            "size": upload.size,
            "spooled": hasattr(upload, "temporary_file_path"),
        }
    response = JsonResponse({"files": results, "fields": dict(request.POST.items())})
    response["X-View"] = "django_upload"
    return response


def django_stream(request):
    chunks = int(request.GET.get("chunks", "16"))
    size = int(request.GET.get("size", "16384"))
    delay = float(request.GET.get("delay", "0"))

    def produce():
        _bump("django_stream_started")
        try:
            for index in range(chunks):
                yield pattern(size, index)
                if delay:
                    time.sleep(delay)
        finally:
            _bump("django_stream_closed")

    response = StreamingHttpResponse(produce(), content_type="application/octet-stream")
    response["X-View"] = "django_stream"
    return response


def django_slow(request):
    _bump("sync_slow_inflight")
    try:
        _release.wait(float(request.GET.get("t", "0.2")))
    finally:
        _bump("sync_slow_inflight", -1)
    response = HttpResponse("slow done")
    response["X-View"] = "django_slow"
    return response


def django_raise(request):
    raise RuntimeError("robustness: a Django view raised")


@csrf_exempt
def django_canary(request):
    _bump("canary")
    return HttpResponse("canary")


urlpatterns = [
    path("__diag__/", diag),
    path("__release__/", release),
    path("lifted/hello/", lifted_hello),
    path("lifted/echo/", lifted_echo),
    path("lifted/stream/", lifted_stream),
    path("lifted/sleep/", lifted_sleep),
    path("lifted/forever/", lifted_forever),
    path("lifted/raise/", lifted_raise),
    path("lifted/canary/", lifted_canary),
    path("ws/", lifted_ws),
    path("django/hello/", django_hello),
    path("django/echo/", django_echo),
    path("django/upload/", django_upload),
    path("django/stream/", django_stream),
    path("django/slow/", django_slow),
    path("django/raise/", django_raise),
    path("django/canary/", django_canary),
]


# --- running it -------------------------------------------------------------


def build_app(threads: int | None = None) -> web.Application:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.robustness.settings")
    django.setup()
    from django.core.wsgi import get_wsgi_application

    from aiodjango import get_aio_application

    return get_aio_application(checked_wsgi(get_wsgi_application()), threads=threads)


async def gunicorn_app() -> web.Application:
    threads = os.environ.get("ROBUSTNESS_THREADS")
    return build_app(int(threads) if threads else None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--shutdown-timeout", type=float, default=10.0)
    parser.add_argument("--handler-cancellation", action="store_true")
    parser.add_argument("--keepalive-timeout", type=float, default=75.0)
    options = parser.parse_args(argv)
    app = build_app(options.threads)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", options.port))
    port = sock.getsockname()[1]

    def ready(*args: Any) -> None:
        print(f"READY {port}", flush=True)

    web.run_app(
        app,
        sock=sock,
        print=ready,
        access_log=None,
        shutdown_timeout=options.shutdown_timeout,
        handler_cancellation=options.handler_cancellation,
        keepalive_timeout=options.keepalive_timeout,
    )
    print("EXITED cleanly", flush=True)


if __name__ == "__main__":
    # Run the importable module, not a second copy of it as __main__:
    # Django imports this module as the URLconf and the counters must be one.
    from tests.robustness.server_app import main as _main

    _main()
    sys.exit(0)
