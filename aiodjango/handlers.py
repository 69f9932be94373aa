"""The aiohttp handler around each lifted view.

Errors are answered and logged as Django does; Django's per-request duties
(Host and Origin checks, database connections, session cookies) are done
here for the view, cheaply when the view doesn't use them.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.hdrs import HOST, UPGRADE
from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404

from .db import RequestContext
from .django_request import finish
from .security import request_checks
from .urlconf import Endpoint

request_logger = logging.getLogger("django.request")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _log(level: int, message: str, request: web.Request, status: int, exc_info: Any = None) -> None:
    request_logger.log(
        level,
        message,
        extra={"status_code": status, "request": request},
        exc_info=exc_info,
    )


def _response_started(request: web.Request) -> bool:
    writer = request.writer if request.transport is not None else None
    return bool(getattr(writer, "output_size", 0))


def _error_response(status: int, reason: str, detail: str = "") -> web.Response:
    text = f"{status} {reason}"
    if detail and settings.DEBUG:
        text += "\n\n" + detail
    return web.Response(status=status, text=text + "\n")


def make_handler(endpoint: Endpoint, kind: str) -> Handler:
    """Wrap a lifted view (a coroutine function or an aiohttp class-based view).

    Per request, before the view: the Host check and, for websocket
    handshakes, the Origin check (:mod:`aiodjango.security`, set up here
    once from the settings).  Around it: the request's thread-sensitive
    context (:mod:`aiodjango.db`).  After it: the session and cookies, if the
    view used them (:mod:`aiodjango.django_request`).
    """
    view = endpoint.callback
    where = f"lifted view {endpoint.lookup_str} (URL pattern {endpoint.route!r})"
    check_host, check_origin = request_checks(view)
    # The Host check's fast path, inlined: Host headers already found good.
    good_hosts = check_host.good_hosts if check_host is not None else None
    Response = web.Response

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = request.headers
        if check_host is not None and (good_hosts is None or headers.get(HOST) not in good_hosts):
            refusal = check_host(request)
            if refusal is not None:
                return refusal
        if check_origin is not None and UPGRADE in headers:
            refusal = check_origin(request)
            if refusal is not None:
                return refusal
        context = RequestContext(request).enter()
        try:
            finishing = False
            try:
                response = await view(request)
                if context.auth is not None and isinstance(response, web.StreamResponse):
                    finishing = True
                    await finish(context.auth, response)
            except web.HTTPException as exc:
                if context.auth is not None and exc.status < 500 and not finishing:
                    finishing = True
                    await finish(context.auth, exc)
                raise
            except asyncio.CancelledError:
                if context.auth is not None and not finishing:
                    await finish(context.auth, None)
                raise
            except Http404 as exc:
                _log(logging.WARNING, f"Not Found: {request.path}", request, 404)
                return _error_response(404, "Not Found", str(exc))
            except PermissionDenied as exc:
                _log(logging.WARNING, f"Forbidden (Permission denied): {request.path}", request, 403, exc)
                return _error_response(403, "Forbidden")
            except SuspiciousOperation as exc:
                logging.getLogger(f"django.security.{exc.__class__.__name__}").error(
                    str(exc), extra={"status_code": 400, "request": request}
                )
                return _error_response(400, "Bad Request")
            except BadRequest as exc:
                _log(logging.WARNING, f"Bad request: {request.path}", request, 400, exc)
                return _error_response(400, "Bad Request")
            except Exception as exc:
                _log(
                    logging.ERROR,
                    f"Internal Server Error: {request.path} (raised by {where})",
                    request,
                    500,
                    exc,
                )
                if _response_started(request):
                    raise  # aiohttp closes the connection
                return _error_response(500, "Internal Server Error", traceback.format_exc())
        finally:
            context.leave()
            if context.auth is not None:
                context.auth.close()
            if context.worker is not None:
                await context.finish()
        if response.__class__ is not Response and not isinstance(response, web.StreamResponse):
            _log(
                logging.ERROR,
                f"Internal Server Error: {request.path}: the {where} returned "
                f"{type(response).__module__}.{type(response).__qualname__}, not an "
                f"aiohttp response. Return an aiohttp.web.Response (or StreamResponse, "
                f"WebSocketResponse); for a Django view returning HttpResponse, decorate "
                f"it with @aiodjango.keep_in_django so that Django calls it.",
                request,
                500,
            )
            return _error_response(500, "Internal Server Error")
        return response

    handler.__qualname__ = handler.__name__ = getattr(view, "__name__", "lifted_view")
    handler.__module__ = getattr(view, "__module__", __name__)
    handler.__wrapped__ = view  # type: ignore[attr-defined]
    return handler
