"""The aiohttp handler around each lifted view.

Errors are answered and logged as Django does; Django's per-request duties
(Host and Origin checks, the policies of ``MIDDLEWARE``, database
connections, session cookies) are done here for the view, cheaply when the
view doesn't use them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import traceback
from typing import Any, Awaitable, Callable, Optional, TypeVar

from aiohttp import web
from aiohttp.hdrs import HOST, UPGRADE
from django.conf import settings
from django.core import signals
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404

from .db import RequestContext, current_context
from .django_request import RequestState, finish, log_escaped, log_request, request_of
from .policies import PLAN_ATTR, Policies
from .routing import FallbackResource, LiftedResource
from .security import SAFE_METHODS, request_checks
from .urlconf import Endpoint

request_logger = logging.getLogger("django.request")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _log(
    level: int,
    message: str,
    request: web.Request,
    status: int,
    exc_info: Any = None,
    *,
    args: tuple[Any, ...] = (),
    logger: logging.Logger = request_logger,
    uncaught: bool = False,
) -> None:
    """Log as Django does: ``record.request`` is the request's Django stand-in.

    Errors are logged in a thread, as Django's async handler does (an
    ``AdminEmailHandler`` sending mail must not stop the event loop); for an
    ``uncaught`` exception ``got_request_exception`` is sent there first.
    """
    extra = {"status_code": status, "request": log_request(request)}
    if level < logging.ERROR:
        logger.log(level, message, *args, extra=extra, exc_info=exc_info)
        return

    def report() -> None:
        if uncaught:
            try:
                signals.got_request_exception.send(sender=None, request=extra["request"])
            except Exception:
                logging.getLogger("aiodjango.handlers").exception(
                    "Error in a got_request_exception receiver."
                )
        logger.log(level, message, *args, extra=extra, exc_info=exc_info)

    await asyncio.get_running_loop().run_in_executor(None, report)


async def answer_exception(request: web.Request, exc: Exception, where: str) -> Optional[web.Response]:
    """Django's answer to ``exc``, raised by a handler, logged as Django logs it.

    ``None`` when the response had already started (re-raise it: aiohttp
    closes the connection).  ``where`` names the handler in the 500's log line.
    """
    path = log_escaped(request.path)
    if isinstance(exc, Http404):
        await _log(logging.WARNING, "Not Found: %s", request, 404, args=(path,))
        return _error_response(404, "Not Found", str(exc))
    if isinstance(exc, PermissionDenied):
        await _log(
            logging.WARNING, "Forbidden (Permission denied): %s", request, 403, exc, args=(path,)
        )
        return _error_response(403, "Forbidden")
    if isinstance(exc, BadRequest):
        await _log(
            logging.WARNING, "%s: %s", request, 400, exc, args=(log_escaped(str(exc)), path)
        )
        return _error_response(400, "Bad Request")
    if isinstance(exc, SuspiciousOperation):
        logger = logging.getLogger(f"django.security.{exc.__class__.__name__}")
        await _log(logging.ERROR, str(exc), request, 400, exc, logger=logger)
        return _error_response(400, "Bad Request")
    await _log(
        logging.ERROR,
        "Internal Server Error: %s (raised by %s)",
        request,
        500,
        exc,
        args=(path, where),
        uncaught=True,
    )
    if _response_started(request):
        return None
    return _error_response(
        500, "Internal Server Error", "".join(traceback.format_exception(exc))
    )


async def finish_answer(
    state: RequestState, answer: web.Response, request: web.Request, where: str
) -> web.Response:
    """Save the session and set cookies on an error answer, as Django does for them.

    (``SessionMiddleware`` saves for 4xx, not for 5xx.)  If that fails,
    the failure is answered instead.
    """
    try:
        await finish(state, answer)
    except Exception as exc:
        again = await answer_exception(request, exc, where)
        if again is None:
            raise
        return again
    return answer


def _response_started(request: web.Request) -> bool:
    writer = request.writer if request.transport is not None else None
    return bool(getattr(writer, "output_size", 0))


def _error_response(status: int, reason: str, detail: str = "") -> web.Response:
    text = f"{status} {reason}"
    if detail and settings.DEBUG:
        text += "\n\n" + detail
    return web.Response(status=status, text=text + "\n")


async def in_request_cycle(
    request: web.Request, call: Callable[[Any], Awaitable[Any]], arg: Any, where: str
) -> web.StreamResponse:
    """``await call(arg)`` in Django's request cycle: what surrounds every lifted view.

    The request's thread-sensitive context (:mod:`aiodjango.db`) around it;
    after it, the session and cookies if it used them
    (:mod:`aiodjango.django_request`), also for 4xx answers; Django's answers
    and log records for its exceptions; a 500 naming ``where`` for a result
    that is no aiohttp response.
    """
    context = RequestContext(request).enter()
    try:
        response = await call(arg)
    except BaseException as exc:
        return await end_cycle(context, where, exc=exc)
    if context.auth is not None or context.worker is not None:
        return await end_cycle(context, where, response)
    context.leave()
    if response.__class__ is _Response:
        return response  # type: ignore[no-any-return]
    return await checked_response(response, request, where)


async def end_cycle(
    context: RequestContext,
    where: str,
    response: Any = None,
    *,
    exc: Optional[BaseException] = None,
) -> web.StreamResponse:
    """The end of :func:`in_request_cycle` after an exception, a session, or a database thread.

    The context is still entered; it is left here.
    """
    request = context.request
    try:
        finishing = False
        try:
            if exc is not None:
                raise exc
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
        except Exception as exc:
            answer = await answer_exception(request, exc, where)
            if answer is None:
                raise  # the response had started: aiohttp closes the connection
            if context.auth is not None and not finishing:
                answer = await finish_answer(context.auth, answer, request, where)
            return answer
    finally:
        context.leave()
        if context.auth is not None:
            context.auth.close()
        if context.worker is not None:
            await context.finish()
    return await checked_response(response, request, where)


async def checked_response(response: Any, request: web.Request, where: str) -> web.StreamResponse:
    """``response``, if it is an aiohttp response; else a 500 saying what it is."""
    if isinstance(response, web.StreamResponse):
        return response
    await _log(
        logging.ERROR,
        f"Internal Server Error: {log_escaped(request.path)}: the {where} returned "
        f"{type(response).__module__}.{type(response).__qualname__}, not an "
        f"aiohttp response. Return an aiohttp.web.Response (or StreamResponse, "
        f"WebSocketResponse); for a Django view returning HttpResponse, decorate "
        f"it with @aiodjango.keep_in_django so that Django calls it.",
        request,
        500,
    )
    return _error_response(500, "Internal Server Error")


_Response = web.Response


def make_handler(endpoint: Endpoint, kind: str, *, policies: Policies) -> Handler:
    """Wrap a lifted view (a coroutine function or an aiohttp class-based view).

    Per request, before the view: the Host check and, for websocket
    handshakes, the Origin check (:mod:`aiodjango.security`, set up here
    once from the settings), then the request halves of ``MIDDLEWARE``'s
    policies (:mod:`aiodjango.policies`; ``policies`` are the application's).  Around it: the request's
    thread-sensitive context (:mod:`aiodjango.db`).  After it: the session
    and cookies, if the view used them (:mod:`aiodjango.django_request`),
    then the policies' headers (on a response the view prepares itself, when
    it is prepared: ``application._response_prepare``).
    """
    view = endpoint.callback
    check_host, check_origin = request_checks(view)
    # The Host check's fast path, inlined: Host headers already found good.
    good_hosts = check_host.good_hosts if check_host is not None else None
    plan = policies.plan(endpoint, view)
    where = plan.view.where  # "lifted view <dotted path> (URL pattern '<route>')", in error logs
    # The view with the policies' request halves around it, per kind of method.
    safe_call, unsafe_call = plan.safe_call, plan.unsafe_call
    # SECURE_PROXY_SSL_HEADER: the request as Django sees its scheme.
    proxy_scheme = policies.proxy
    # The header policies' response halves: on the response the view returns
    # or raises, here; on one it prepares itself (a websocket, a stream),
    # when it is prepared (application._response_prepare).
    respond = plan.respond if policies.header_policies else None

    async def handler(request: web.Request) -> web.StreamResponse:
        if proxy_scheme is not None:
            request = proxy_scheme(request)
        headers = request.headers
        response = None
        if check_host is not None and (good_hosts is None or headers.get(HOST) not in good_hosts):
            response = check_host(request)
        if response is None and check_origin is not None and UPGRADE in headers:
            response = check_origin(request)
        if response is None:
            call = safe_call if request.method in SAFE_METHODS else unsafe_call
            # in_request_cycle(), inlined: the path every lifted request takes
            # (one coroutine less: 1,800 of ~243,000 instructions per request).
            context = RequestContext(request).enter()
            try:
                try:
                    response = await call(request)
                except BaseException as exc:
                    response = await end_cycle(context, where, exc=exc)
                else:
                    if context.auth is not None or context.worker is not None:
                        response = await end_cycle(context, where, response)
                    else:
                        context.leave()
                        if response.__class__ is not _Response:
                            response = await checked_response(response, request, where)
            except web.HTTPException as exc:  # aiohttp answers with its status and headers
                if respond is not None:
                    respond(request, exc)
                raise
        if respond is not None and not response.prepared:
            # (A response the view prepared got them then: application._response_prepare.)
            respond(request, response)
        return response

    handler.__qualname__ = handler.__name__ = getattr(view, "__name__", "lifted_view")
    handler.__module__ = getattr(view, "__module__", __name__)
    handler.__wrapped__ = view  # type: ignore[attr-defined]
    setattr(handler, PLAN_ATTR, plan)  # the response phase finds it from the route
    return handler


# -- aiohttp handlers that are not lifted ------------------------------------

H = TypeVar("H", bound=Callable[..., Any])


def _name(handler: Any) -> str:
    module = getattr(handler, "__module__", None)
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    return f"{module}.{name}" if module else name


def _in_cycle(request: web.BaseRequest) -> bool:
    context = current_context()
    return context is not None and context.request is request


def django_request_cycle(handler: H) -> H:
    """Run an aiohttp handler that is not lifted in Django's request cycle.

    For handlers added to the application directly (``app.router.add_get``),
    what aiodjango does around a lifted view: the request's database thread
    with ``request_started``/``request_finished`` (``CONN_MAX_AGE``
    honoured), the session saved and cookies set after the handler, and
    Django's answers and log records for ``Http404``, ``PermissionDenied``,
    ``BadRequest``, ``SuspiciousOperation`` and errors.  Works on functions
    and on the methods of an ``aiohttp.web.View``.  (The Host and Origin
    checks stay the lifted views'.)
    """

    where = f"aiohttp handler {_name(handler)}"

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        request = request_of(args)
        if _in_cycle(request):  # the middleware is there too
            return await handler(*args, **kwargs)
        call = functools.partial(handler, *args[1:], **kwargs)  # called with args[0]
        return await in_request_cycle(request, call, args[0], where)

    return wrapper  # type: ignore[return-value]


@web.middleware
async def django_request_cycle_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """:func:`django_request_cycle` for every route of the application that is not lifted.

    ``get_aio_application(middlewares=[django_request_cycle_middleware])``.
    Lifted views have the cycle already and Django's views have Django's:
    both pass through untouched.
    """
    route = request.match_info.route
    if isinstance(getattr(route, "resource", None), (LiftedResource, FallbackResource)) or _in_cycle(request):
        return await handler(request)
    where = f"aiohttp handler {_name(getattr(route, 'handler', handler))}"
    return await in_request_cycle(request, handler, request, where)
