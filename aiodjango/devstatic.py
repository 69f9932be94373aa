"""Static files for ``runserver``, found by the staticfiles finders.

This is what ``django.contrib.staticfiles``' runserver does with its
``StaticFilesHandler``, done as an aiohttp middleware so that it also works
for an application named by ``AIODJANGO_APPLICATION`` and does not occupy a
thread of the WSGI bridge.  Files come from the finders (the apps' ``static/``
directories and ``STATICFILES_DIRS``), never from ``STATIC_ROOT``.  It is for
development only, like Django's.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
from typing import Awaitable, Callable
from urllib.parse import urlsplit
from urllib.request import url2pathname

from aiohttp import web
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def find_file(path: str) -> str | None:
    """The absolute path of the static file ``path`` (as in the URL), or ``None``."""
    from django.contrib.staticfiles import finders

    normalized = posixpath.normpath(url2pathname(path)).lstrip("/")
    try:
        found = finders.find(normalized)
    except SuspiciousFileOperation:
        return None
    if not found or not os.path.isfile(found):
        return None
    return found


def static_files_middleware() -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware serving ``STATIC_URL`` with the staticfiles finders.

    Like ``StaticFilesHandler``, it only takes requests under ``STATIC_URL``
    when ``STATIC_URL`` is a path (not a URL on another host), and answers
    404 for files that are not found instead of passing them on.
    """
    from django.contrib.staticfiles.utils import check_settings

    check_settings()  # The ImproperlyConfigured errors StaticFilesHandler gives.
    base = urlsplit(str(settings.STATIC_URL))
    prefix = base.path
    handles_nothing = bool(base.netloc)

    @web.middleware
    async def static_files(request: web.Request, handler: Handler) -> web.StreamResponse:
        if handles_nothing or not request.path.startswith(prefix):
            return await handler(request)
        path = request.path[len(prefix):]
        found = await asyncio.get_running_loop().run_in_executor(None, find_file, path)
        if found is None:
            if path.endswith("/") or path == "":
                raise web.HTTPNotFound(text="Directory indexes are not allowed here.")
            raise web.HTTPNotFound(text=f"'{path}' could not be found")
        return web.FileResponse(found)

    return static_files
