"""Route lookup cost in-process, without the network (started by run.py).

    python micro.py            # BENCH_URLCONF chooses the URLconf

Prints one JSON object: microseconds per lookup, median of 5 batches, for
aiohttp's router in the app ``get_aio_application()`` builds (the lifted
view defined last, and a sync view listed last that falls back to Django),
for ``django.urls.resolve()`` of the same paths, and for a bare aiohttp
router holding the one route.  Far less sensitive to a busy machine than
requests/s, it shows what the URLconf's size costs each router.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BATCHES = 5


def per_call(fn, calls: int) -> float:
    samples = []
    for _ in range(BATCHES):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


async def per_await(fn, calls: int) -> float:
    samples = []
    for _ in range(BATCHES):
        started = time.perf_counter()
        for _ in range(calls):
            await fn()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


async def measure() -> dict[str, float]:
    import django
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request
    from django.urls import resolve

    from aiodjango import get_aio_application

    django.setup()
    from benchproject import views

    app = get_aio_application()
    bare = web.Application()
    bare.router.add_route("*", "/lifted/hello/", views.lifted_hello)
    found = {}
    for name, router, path in [
        ("aiodjango_lifted_us", app.router, "/lifted/hello/"),
        ("aiodjango_fallback_us", app.router, "/sync/last/"),
        ("bare_aiohttp_us", bare.router, "/lifted/hello/"),
    ]:
        request = make_mocked_request("GET", path, headers={"Host": "127.0.0.1"})
        match = await router.resolve(request)
        if match.http_exception is not None:
            raise RuntimeError(f"{path} did not resolve: {match.http_exception}")
        found[name] = await per_await(lambda: router.resolve(request), 20_000)
    for name, path in [("django_resolve_lifted_us", "/lifted/hello/"),
                       ("django_resolve_fallback_us", "/sync/last/")]:
        resolve(path)
        found[name] = per_call(lambda: resolve(path), 200)
    return found


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")
    sys.path[:0] = [os.path.join(HERE, "project"), os.path.dirname(HERE)]
    print(json.dumps(asyncio.run(measure())))


if __name__ == "__main__":
    main()
