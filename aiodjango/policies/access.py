"""Django's middleware that may refuse a request: CSRF, login required, common checks.

Each runs the middleware's own ``process_request`` / ``process_view`` on
the request's Django stand-in, with the lifted view as the ``callback`` so
that Django reads its markers (``csrf_exempt``, ``login_required = False``
from ``login_not_required``) itself.  What Django answers is what the client
gets, except on a websocket handshake, where a redirect means nothing: 403.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils.module_loading import import_string

from ..django_request import django_request
from ..security import csrf_rejection, is_websocket
from ..django_request import _no_response
from .plan import Call, Policies, Policy, ViewInfo, cut_at
from .standin import from_django

#: Set on a view by :func:`aiodjango.auth.login_required`: the view checks
#: the login itself (with its own options), the middleware need not.
CHECKS_LOGIN_ATTR = "_aiodjango_checks_login"


def _forbidden() -> web.Response:
    return web.Response(status=403, text="403 Forbidden\n")


class CsrfPolicy(Policy):
    """``CsrfViewMiddleware``: unsafe methods of lifted views are checked, as Django views are.

    Its ``process_request`` and ``process_view`` run on the request's
    stand-in, in the request's database thread (``CSRF_USE_SESSIONS`` and
    ``CSRF_FAILURE_VIEW`` may touch the database); see
    :func:`aiodjango.security.csrf_rejection`.  Safe methods (GET, HEAD,
    OPTIONS, TRACE: websocket handshakes too, whose ``Origin`` is checked
    instead) are not, as in Django.  A view marked with Django's
    ``csrf_exempt`` (or ``csrf_exempt = True``) is not checked at all.
    """

    def wrap(self, view: ViewInfo, inner: Call, safe: bool) -> Call:
        callback = view.callback
        if safe or getattr(callback, "csrf_exempt", False):
            return inner  # what process_view would decide: no need to ask it per request

        async def csrf_check(request: web.Request) -> Any:
            rejection = await csrf_rejection(request, callback)
            if rejection is not None:
                return rejection
            return await inner(request)

        return csrf_check


class LoginRequiredPolicy(Policy):
    """``LoginRequiredMiddleware`` (Django 5.1+): anonymous users are sent to log in.

    Its ``process_view`` on the stand-in, whose ``user`` is the request's
    (:func:`aiodjango.auth.get_user`: the only database access).  An
    anonymous HTTP request gets Django's redirect to ``LOGIN_URL?next=...``;
    a websocket handshake gets 403.  Views marked with Django's
    ``login_not_required`` are not checked (no session is loaded for them);
    nor are views wrapped by :func:`aiodjango.auth.login_required`, which
    check with their own options.
    """

    def __init__(self, index: int, path: str, policies: Policies) -> None:
        super().__init__(index, path, policies)
        self.middleware = import_string(path)(_no_response)

    def wrap(self, view: ViewInfo, inner: Call, safe: bool) -> Call:
        callback = view.callback
        if not getattr(callback, "login_required", True):
            return inner  # login_not_required: process_view lets every request through
        if getattr(callback, CHECKS_LOGIN_ATTR, False):
            return inner
        process_view = self.middleware.process_view

        async def login_check(request: web.Request) -> Any:
            from ..auth import get_user

            await get_user(request)  # sets the stand-in's user
            refusal = process_view(django_request(request), callback, (), {})
            if refusal is None:
                return await inner(request)
            if is_websocket(request):
                return _forbidden()  # a browser can't follow a redirect there
            return from_django(refusal, "LoginRequiredMiddleware")

        return login_check


class CommonPolicy(Policy):
    """``CommonMiddleware``: ``DISALLOWED_USER_AGENTS`` and ``PREPEND_WWW``.

    Its ``process_request`` on the stand-in, when either is set (otherwise it
    does nothing a lifted view needs: the Host is checked already).  Its
    response half only acts on 404s for ``APPEND_SLASH``, and a path that
    reaches a lifted view is a valid path, so it never applies; a path
    missing its slash reaches Django, which redirects it.
    """

    def __init__(self, index: int, path: str, policies: Policies) -> None:
        super().__init__(index, path, policies)
        self.middleware = import_string(path)(_no_response)
        self.active = bool(settings.DISALLOWED_USER_AGENTS or settings.PREPEND_WWW)
        self.starts_runs = self.active

    def wrap(self, view: ViewInfo, inner: Call, safe: bool) -> Call:
        if not self.active:
            return inner
        process_request = self.middleware.process_request
        index = self.index

        async def common_checks(request: web.Request) -> Any:
            try:
                redirect = process_request(django_request(request))
            except PermissionDenied:
                cut_at(request, index)  # answered around it, as Django's handler does
                raise
            if redirect is not None:
                cut_at(request, index + 1)
                return from_django(redirect, "CommonMiddleware")
            return await inner(request)

        return common_checks
