"""A Django ``HttpRequest`` standing for an aiohttp request, and its response phase.

Sessions, users and CSRF are Django's own code (``SessionMiddleware``,
``django.contrib.auth``, ``CsrfViewMiddleware``), and they work on an
``HttpRequest``.  For a lifted view aiodjango builds one lazily, from the same
WSGI environ the bridge would give Django, and keeps it with the request's
state.  After the view, the middleware's response half runs on a stand-in
response and its cookies (and ``Vary``) are copied to the aiohttp response.
"""

from __future__ import annotations

import asyncio
import io
import logging
from http.cookies import SimpleCookie
from typing import Any, Optional, Sequence

from aiohttp import hdrs, web
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse

from .db import current_context
from .wsgi.environ import base_environ, build_environ

logger = logging.getLogger("aiodjango.auth")


class RequestState:
    """What aiodjango knows about one aiohttp request on Django's side."""

    __slots__ = (
        "request", "django", "session", "session_had_data", "user", "uses_csrf", "cookies", "form"
    )

    def __init__(self, request: web.BaseRequest) -> None:
        self.request = request
        self.django: Optional[WSGIRequest] = None
        self.session: Any = None
        self.session_had_data = False  # whether the session held data when loaded
        self.user: Any = None
        self.uses_csrf = False
        self.cookies: SimpleCookie = SimpleCookie()
        self.form: Any = None  # ``await request.post()``, if aiodjango read it

    def close(self) -> None:
        """Close uploaded files, as Django does after a response."""
        if self.django is not None:
            self.django.close()
        if self.form is not None:
            for value in self.form.values():
                file = getattr(value, "file", None)
                if file is not None and not isinstance(value, str):
                    file.close()


_RequestKey = getattr(web, "RequestKey", None)
STATE_KEY: Any = (
    _RequestKey("aiodjango_state", RequestState) if _RequestKey is not None else "aiodjango_state"
)


def request_of(args: Sequence[Any]) -> web.Request:
    """The request of a handler call: ``(request)`` or ``(aiohttp_view_instance)``."""
    if not args:
        raise TypeError("An aiohttp handler takes the request as its first argument.")
    first = args[0]
    if isinstance(first, web.View):
        return first.request
    if isinstance(first, web.BaseRequest):
        return first  # type: ignore[return-value]
    raise TypeError(
        f"Expected an aiohttp.web.Request (or web.View) as first argument, got "
        f"{type(first).__module__}.{type(first).__qualname__}. aiodjango's decorators "
        f"are for aiohttp handlers; Django views use Django's own decorators."
    )


def state_of(request: web.BaseRequest) -> RequestState:
    """The request's :class:`RequestState`, created on first use."""
    state: Optional[RequestState] = request.get(STATE_KEY)
    if state is None:
        state = RequestState(request)
        request[STATE_KEY] = state
    context = current_context()
    if context is not None and context.auth is None and context.request is request:
        # The handler finishes it after the view.  Also when the state was made
        # before the request cycle began (by the Host or Origin check's log line).
        context.auth = state
    return state


def django_request(request: web.BaseRequest) -> WSGIRequest:
    """The ``HttpRequest`` standing for ``request`` (one per request, without the body)."""
    state = state_of(request)
    dj = state.django
    if dj is None:
        dj = state.django = WSGIRequest(build_environ(request, base_environ(), io.BytesIO(), None))
    return dj


def log_request(request: web.BaseRequest) -> Any:
    """The request to put in a log record (``record.request``), as Django does.

    Django's handlers (``AdminEmailHandler``, Sentry's, ...) expect an
    ``HttpRequest``: this is the stand-in of :func:`django_request`, its form
    read now (the body is the aiohttp handler's, so it is empty here: a
    report shows the headers, the query string and the cookies).
    """
    try:
        dj = django_request(request)
    except Exception:  # pragma: no cover - a request aiohttp parsed always has an environ
        logger.exception("No Django request could stand for %s.", request.path)
        return request
    try:
        # Parsed now (a no-op if @csrf_protect put the form there), so that a
        # report reading it can't fail: with a malformed Content-Type Django
        # raises once and marks the form empty.
        dj.POST  # noqa: B018
    except Exception:
        pass
    return dj


def log_escaped(text: str) -> str:
    """``text`` (a path) for a log line, escaped as Django's ``log_response`` escapes it."""
    return text.encode("unicode_escape").decode("ascii")


def to_aiohttp_response(response: HttpResponse) -> web.Response:
    """An aiohttp copy of a (non-streaming) Django response, cookies included."""
    result = web.Response(status=response.status_code, body=response.content)
    for name, value in response.items():
        if name.lower() != "content-length":
            result.headers.add(name, value)
    for morsel in response.cookies.values():
        result.headers.add(hdrs.SET_COOKIE, morsel.OutputString())
    return result


def _no_response(request: Any) -> None:  # pragma: no cover - never called
    return None


def response_phase(dj: WSGIRequest, status: int, vary: Optional[str]) -> tuple[SimpleCookie, Optional[str]]:
    """Run the response half of CSRF and session middleware (in Django's order).

    Saves the session if it changed; returns the cookies to set and ``Vary``.
    Thread-sensitive: it may touch the database.
    """
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.middleware.csrf import CsrfViewMiddleware

    stand_in = HttpResponse(status=status)
    if vary:
        stand_in.headers["Vary"] = vary
    if dj.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        CsrfViewMiddleware(_no_response).process_response(dj, stand_in)
    if hasattr(dj, "session"):
        SessionMiddleware(_no_response).process_response(dj, stand_in)
    return stand_in.cookies, stand_in.headers.get("Vary")


async def run_response_phase(state: RequestState, response: Optional[web.StreamResponse]) -> None:
    """Save what needs saving; note the cookies to send on ``response``."""
    dj = state.django
    if dj is None or not (hasattr(dj, "session") or dj.META.get("CSRF_COOKIE_NEEDS_UPDATE")):
        return
    if response is not None and not response.prepared:
        status, vary = response.status, response.headers.get(hdrs.VARY)
    else:
        status, vary = 200, None
    cookies, new_vary = await sync_to_async(response_phase, thread_sensitive=True)(dj, status, vary)
    state.cookies.update(cookies)
    if response is not None and not response.prepared and new_vary:
        response.headers[hdrs.VARY] = new_vary


def send_cookies(state: RequestState, response: Optional[web.StreamResponse]) -> None:
    """Put the pending cookies on ``response``, or warn if it already started (or is gone)."""
    cookies = state.cookies
    if not cookies:
        return
    if response is not None and not response.prepared:
        for morsel in cookies.values():
            response.headers.add(hdrs.SET_COOKIE, morsel.OutputString())
        if hdrs.VARY not in response.headers:
            response.headers[hdrs.VARY] = "Cookie"
        cookies.clear()
        return
    sent = state.request.cookies
    changed = [
        name
        for name, morsel in cookies.items()
        if sent.get(name) != morsel.value and not _nothing_to_keep(state, name)
    ]
    cookies.clear()
    if changed:
        logger.warning(
            "The %s cookie of %s changed but could not be sent: the response had already "
            "started (a websocket or a stream). Log users in and out, and set up their "
            "session, in HTTP views.",
            " and ".join(repr(name) for name in changed),
            state.request.path,
        )


def _nothing_to_keep(state: RequestState, name: str) -> bool:
    """Whether the client loses nothing by keeping its ``name`` cookie.

    True for the session cookie of a session that was empty when loaded (a
    bogus or expired cookie) and still is: Django's ``SessionMiddleware``
    would delete or renew that cookie, silently; the websocket's client keeps
    its cookie, which still means "no session".
    """
    session = state.session
    if session is None or state.session_had_data or name != settings.SESSION_COOKIE_NAME:
        return False
    return not session.keys()


async def _finish(state: RequestState, response: Optional[web.StreamResponse]) -> None:
    await run_response_phase(state, response)
    send_cookies(state, response)


async def finish(state: RequestState, response: Optional[web.StreamResponse]) -> None:
    """After a lifted view: save the session, send cookies.

    ``response`` is ``None`` when the view was cancelled (its client went
    away, e.g. a websocket closed under ``handler_cancellation``): the
    session is still saved.  Shielded: a cancellation of the handler does
    not stop it half-way.
    """
    dj = state.django
    if not state.cookies and (
        dj is None or not (hasattr(dj, "session") or dj.META.get("CSRF_COOKIE_NEEDS_UPDATE"))
    ):
        return  # nothing to save or send (a stand-in used only to read the request)
    await asyncio.shield(_finish(state, response))
