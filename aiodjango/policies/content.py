"""Django's middleware that read the response body: GZip and conditional GET.

Their ``process_response`` runs after the view on a mirror holding the
body, for a ``web.Response`` whose body is bytes and that the view has not
sent yet (``json_response``, ``Response(text=...)``); the result is copied
back.  Streams, websockets, files (``FileResponse``) and responses the view
compresses itself (``enable_compression()``) are left as they are: Django
does not compress or tag streams either, and aiohttp's own
``enable_compression()`` is there for them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import hdrs, web
from django.utils.module_loading import import_string

from ..django_request import django_request
from ..django_request import _no_response
from .plan import Call, Policies, Policy, ViewInfo, cut_at
from .standin import copy_back, from_django, has_bytes_body, mirror

#: Bodies larger than this are compressed off the event loop.
COMPRESS_IN_THREAD = 64 * 1024


class GZipPolicy(Policy):
    """``GZipMiddleware``: Django's compression (with its BREACH mitigation), its
    ``Vary: Accept-Encoding`` and weakened ``ETag``."""

    def __init__(self, index: int, path: str, policies: Policies) -> None:
        super().__init__(index, path, policies)
        self.middleware = import_string(path)(_no_response)

    def wrap(self, view: ViewInfo, inner: Call, safe: bool) -> Call:
        process_response = self.middleware.process_response

        async def gzip(request: web.Request) -> Any:
            response = await inner(request)
            if has_bytes_body(response):
                stand_in, snapshot = mirror(response, body=True)
                dj = django_request(request)
                if len(response.body) > COMPRESS_IN_THREAD:
                    loop = asyncio.get_running_loop()
                    stand_in = await loop.run_in_executor(None, process_response, dj, stand_in)
                else:
                    stand_in = process_response(dj, stand_in)
                copy_back(stand_in, snapshot, response, body=True)
            return response

        return gzip


class ConditionalGetPolicy(Policy):
    """``ConditionalGetMiddleware``: an ``ETag`` for GET responses, and 304 (or
    412) when the request's conditions say so (``If-None-Match``,
    ``If-Modified-Since``, ...), by Django's ``get_conditional_response()``."""

    def __init__(self, index: int, path: str, policies: Policies) -> None:
        super().__init__(index, path, policies)
        self.middleware = import_string(path)(_no_response)
        self.starts_runs = True

    def wrap(self, view: ViewInfo, inner: Call, safe: bool) -> Call:
        if not safe:
            return inner  # process_response leaves every method but GET alone
        process_response = self.middleware.process_response
        index = self.index

        async def conditional_get(request: web.Request) -> Any:
            response = await inner(request)
            if request.method != "GET" or not has_bytes_body(response):
                return response
            stand_in, snapshot = mirror(response, body=True)
            result = process_response(django_request(request), stand_in)
            if result is stand_in:
                copy_back(stand_in, snapshot, response, body=True)
                return response
            # 304 Not Modified (or 412): a new response, which the response
            # halves of the middleware listed before this one see.
            cut_at(request, index)
            answer = from_django(result, "ConditionalGetMiddleware")
            for cookie in response.headers.getall(hdrs.SET_COOKIE, ()):
                answer.headers.add(hdrs.SET_COOKIE, cookie)
            return answer

        return conditional_get
