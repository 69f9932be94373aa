"""The Django session and user of an aiohttp request.

::

    from aiodjango.auth import get_session, get_user, login_required

    @login_required
    async def profile(request):
        user = await get_user(request)
        session = await get_session(request)
        session["visits"] = session.get("visits", 0) + 1
        return web.json_response({"user": user.get_username(), "visits": session["visits"]})

The session comes from the ``SESSION_COOKIE_NAME`` cookie through
``SESSION_ENGINE`` (any engine), the user from ``django.contrib.auth``
(``AUTHENTICATION_BACKENDS``, the session hash check).  Django's own
functions do the work, in the request's thread-sensitive thread.

For a lifted view, a session that changed is saved after the view and the
cookie is set on its response, as ``SessionMiddleware`` does.  A response
already started by then (a websocket, a stream) can't take a new cookie:
the session is still saved, and a warning is logged if its cookie changed;
call :func:`save_session` to save earlier.
"""

from __future__ import annotations

import functools
from importlib import import_module
from typing import Any, Callable, Optional, TypeVar, Union
from urllib.parse import urlsplit

from aiohttp import web
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth as django_auth
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import DisallowedHost
from django.shortcuts import resolve_url

from .django_request import django_request, request_of, run_response_phase, send_cookies, state_of
from .security import is_websocket

__all__ = ["get_session", "get_user", "login", "logout", "save_session", "login_required"]

V = TypeVar("V", bound=Callable[..., Any])


def _load(session: Any) -> bool:
    """Load the data (database, cache, signed cookie...); whether there is any."""
    return bool(session.keys())


async def get_session(request: web.BaseRequest) -> Any:
    """The request's Django session (a loaded ``SessionBase``).

    Read and change it like a dict (no database access: it is loaded here).
    Changes are saved after a lifted view, or by :func:`save_session`.
    """
    state = state_of(request)
    if state.session is None:
        dj = django_request(request)
        engine = import_module(settings.SESSION_ENGINE)
        session = engine.SessionStore(request.cookies.get(settings.SESSION_COOKIE_NAME))
        state.session_had_data = await sync_to_async(_load, thread_sensitive=True)(session)
        dj.session = session
        state.session = session
    return state.session


async def get_user(request: web.BaseRequest) -> Any:
    """The request's user, as ``request.user`` in a Django view (``AnonymousUser`` if none)."""
    state = state_of(request)
    if state.user is None:
        await get_session(request)
        dj = state.django
        user = await sync_to_async(django_auth.get_user, thread_sensitive=True)(dj)
        dj.user = user  # type: ignore[union-attr]
        state.user = user
    return state.user


async def login(request: web.BaseRequest, user: Any, backend: Optional[str] = None) -> None:
    """Log ``user`` in: ``django.contrib.auth.login()`` on this request.

    The session key changes and the CSRF token rotates; the new cookies go
    out on the lifted view's response.  Do it in an HTTP view: a websocket's
    handshake response has already been sent.
    """
    await get_session(request)
    state = state_of(request)
    dj = state.django
    await sync_to_async(django_auth.login, thread_sensitive=True)(dj, user, backend)
    state.user = user


async def logout(request: web.BaseRequest) -> None:
    """Log the user out: ``django.contrib.auth.logout()`` (the session is flushed)."""
    await get_user(request)
    state = state_of(request)
    await sync_to_async(django_auth.logout, thread_sensitive=True)(state.django)
    state.user = state.django.user  # type: ignore[union-attr]


async def save_session(request: web.BaseRequest, response: Optional[web.StreamResponse] = None) -> None:
    """Save the session now, as ``SessionMiddleware`` would after a view.

    Lifted views don't need it for HTTP (aiodjango saves after the view).
    Use it in long websocket handlers, or in aiohttp handlers that aren't
    lifted (pass their response: the cookie goes on it).
    """
    state = state_of(request)
    if state.session is None and not state.uses_csrf:
        return
    await run_response_phase(state, response)
    if state.session is not None:
        state.session.modified = False
    if response is not None:
        send_cookies(state, response)


def _redirect_to_login(request: web.BaseRequest, login_url: Optional[str], field: str) -> web.StreamResponse:
    # As django.contrib.auth.decorators.user_passes_test does it, on the
    # request's Django stand-in.
    from django.contrib.auth.views import redirect_to_login

    dj = django_request(request)
    resolved = resolve_url(login_url or settings.LOGIN_URL)
    path = dj.get_full_path()
    try:
        absolute = dj.build_absolute_uri()
    except DisallowedHost:  # the view opted out of the Host check
        absolute = path
    login_scheme, login_netloc = urlsplit(resolved)[:2]
    current_scheme, current_netloc = urlsplit(absolute)[:2]
    if (login_scheme and login_scheme != current_scheme) or (
        login_netloc and login_netloc != current_netloc
    ):
        path = absolute
    redirect = redirect_to_login(path, resolved, field)
    return web.Response(status=302, headers={"Location": redirect["Location"]})


def login_required(
    view: Optional[V] = None,
    *,
    login_url: Optional[str] = None,
    redirect_field_name: str = REDIRECT_FIELD_NAME,
    raise_exception: bool = False,
) -> Union[V, Callable[[V], V]]:
    """Serve a lifted view to logged-in users only.

    An anonymous request gets:

    * HTTP: a 302 redirect to ``LOGIN_URL`` (or ``login_url``) with the
      requested path in ``?next=``, as Django's ``login_required``; with
      ``raise_exception=True``, 403 instead (for APIs);
    * a websocket handshake: 403 (a browser can't follow a redirect there).

    Works on functions and on the methods of an ``aiohttp.web.View``.
    """

    def decorator(func: V) -> V:
        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = request_of(args)
            user = await get_user(request)
            if user.is_authenticated:
                return await func(*args, **kwargs)
            if raise_exception or is_websocket(request):
                return web.Response(status=403, text="403 Forbidden\n")
            return _redirect_to_login(request, login_url, redirect_field_name)

        # LoginRequiredMiddleware's policy leaves the check to this decorator
        # (its login_url, raise_exception...): see aiodjango.policies.access.
        wrapper._aiodjango_checks_login = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    if view is not None:
        return decorator(view)
    return decorator
