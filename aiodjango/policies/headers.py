"""Django's middleware that set response headers: security, framing, CSP, language.

Each keeps its Django middleware instance (made once, as Django makes it)
as :attr:`Policy.headers`: its ``process_response`` runs in the response
phase (:mod:`aiodjango.policies.plan`).  Their request halves, where they
have one, run here with Django's own methods on the request's stand-in.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from aiohttp import hdrs, web
from django.conf import settings
from django.http import HttpRequest
from django.http.cookie import parse_cookie
from django.utils import translation
from django.utils.module_loading import import_string

from ..django_request import _no_response, django_request
from .plan import PLAN_ATTR, Call, Policies, Policy, ViewInfo, cut_at, run_of
from .standin import from_django

logger = logging.getLogger("aiodjango.policies")

_CHOICES_MAX = 4096  # combinations of path prefix, cookie and Accept-Language kept



class HeaderPolicy(Policy):
    """A Django middleware whose response half adds headers (``XFrameOptionsMiddleware``)."""

    def __init__(self, index: int, path: str, policies: Policies) -> None:
        super().__init__(index, path, policies)
        self.middleware = import_string(path)(_no_response)
        self.headers = self.middleware


class SecurityPolicy(HeaderPolicy):
    """``SecurityMiddleware``: its headers, and ``SECURE_SSL_REDIRECT``.

    The redirect is its ``process_request`` on the stand-in of a request
    that isn't secure (``SECURE_REDIRECT_EXEMPT`` and ``SECURE_SSL_HOST``
    as Django reads them).
    """

    def __init__(self, index: int, path: str, policies: Policies) -> None:
        super().__init__(index, path, policies)
        self.starts_runs = bool(self.middleware.redirect)

    def wrap(self, view: ViewInfo, inner: Call, safe: bool) -> Call:
        if not self.middleware.redirect:
            return inner
        process_request = self.middleware.process_request
        index = self.index

        async def ssl_redirect(request: web.Request) -> Any:
            # request.secure already says what Django's is_secure() says
            # (SECURE_PROXY_SSL_HEADER: the handler cloned the request).
            if not request.secure:
                redirect = process_request(django_request(request))
                if redirect is not None:
                    cut_at(request, index + 1)  # its own response half sees it
                    return from_django(redirect, "SecurityMiddleware")
            return await inner(request)

        return ssl_redirect


class CspPolicy(HeaderPolicy):
    """``ContentSecurityPolicyMiddleware`` (Django 6.0+): its headers, and the nonce.

    The header without a nonce is worked out at start-up; a view that uses
    :func:`csp_nonce` gets Django's ``process_response`` on its own request,
    which puts that nonce in the header.
    """

    starts_runs = True

    def __init__(self, index: int, path: str, policies: Policies) -> None:
        super().__init__(index, path, policies)
        policies.csp = self.middleware


def csp_nonce(request: web.Request) -> Optional[Any]:
    """The CSP nonce of a lifted view's request (Django 6.0+), or ``None``.

    Django's ``LazyNonce``, set by ``ContentSecurityPolicyMiddleware``'s
    ``process_request`` on the request's Django stand-in: ``str(nonce)`` is
    the value for ``<script nonce="...">``, and once used, the response's
    ``Content-Security-Policy`` header carries it wherever the policy says
    ``CSP.NONCE``.  A Django template rendered with
    ``request=aiodjango.django_request.django_request(request)`` sees the same
    nonce (``{{ csp_nonce }}`` with the ``csp`` context processor).  ``None``
    when ``ContentSecurityPolicyMiddleware`` is not in ``MIDDLEWARE``, as
    Django's ``get_nonce()`` says, and outside lifted views.
    """
    match_info = getattr(request, "match_info", None)
    plan = getattr(getattr(match_info, "handler", None), PLAN_ATTR, None)
    middleware = plan.policies.csp if plan is not None else None
    if middleware is None:
        return None
    from django.middleware.csp import get_nonce

    dj = django_request(request)
    nonce = get_nonce(dj)
    if nonce is None:
        middleware.process_request(dj)
        nonce = get_nonce(dj)
    run_of(request).exact = True  # the response phase runs on this request's stand-in
    return nonce


class LocalePolicy(HeaderPolicy):
    """``LocaleMiddleware``: the request's language, active while the view runs.

    Its ``process_request`` picks the language (the path's prefix, the
    ``LANGUAGE_COOKIE_NAME`` cookie, ``Accept-Language``) and activates it.
    Django's translation state is an ``asgiref.local.Local``, per context in
    async code, and aiohttp serves every request in a task of its own: the
    language is the request's, for the view, the code it awaits and its
    ``sync_to_async`` calls, and no other request's.  The response half sets
    ``Content-Language`` and ``Vary``.  The catalogues of ``LANGUAGES`` are
    loaded before the application serves, in a thread: never from disk on
    the event loop.

    What ``process_request`` reads is the path's first segment, that cookie
    and ``Accept-Language``: its choice is kept per combination of those
    (on a stand-in holding just them), and replayed with
    ``translation.activate()``.
    """

    per_request = True
    starts_runs = True

    def __init__(self, index: int, path: str, policies: Policies) -> None:
        super().__init__(index, path, policies)
        self._choices: dict[tuple[str, Optional[str], Optional[str]], tuple[str, Optional[str]]] = {}

    def choose(self, path: str, cookie: Optional[str], accept: Optional[str]) -> tuple[str, Optional[str]]:
        """``process_request`` on a stand-in: ``(language activated, language of the path)``."""
        stand_in = HttpRequest()
        stand_in.path = stand_in.path_info = path
        if cookie is not None:
            stand_in.COOKIES = {settings.LANGUAGE_COOKIE_NAME: cookie}
        if accept is not None:
            stand_in.META["HTTP_ACCEPT_LANGUAGE"] = accept
        if self.policies.urlconf is not None:
            stand_in.urlconf = self.policies.urlconf
        self.middleware.process_request(stand_in)
        return stand_in.LANGUAGE_CODE, translation.get_language_from_path(path)

    def wrap(self, view: ViewInfo, inner: Call, safe: bool) -> Call:
        choices = self._choices
        choose = self.choose
        cookie_name = settings.LANGUAGE_COOKIE_NAME
        activate = translation.activate

        async def activate_language(request: web.Request) -> Any:
            path = request.path
            headers = request.headers
            cookie = None
            raw = headers.get(hdrs.COOKIE)
            if raw is not None and cookie_name in raw:
                cookie = parse_cookie(raw).get(cookie_name)  # as Django parses it
            accept = headers.getall(hdrs.ACCEPT_LANGUAGE, None)
            accept = None if accept is None else ",".join(accept)
            key = (path.split("/", 2)[1] if path.startswith("/") else path, cookie, accept)
            chosen = choices.get(key)
            if chosen is None:
                chosen = choose(path, cookie, accept)  # activates it, too
                if len(choices) < _CHOICES_MAX:
                    choices[key] = chosen
            else:
                activate(chosen[0])
            run = run_of(request)
            run.locale = True
            run.path_language = chosen[1]
            return await inner(request)

        return activate_language

    async def startup(self, app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, load_catalogues)


def load_catalogues() -> None:
    """Load the translation catalogue of every language in ``LANGUAGES``."""
    if not settings.USE_I18N:
        return
    for code, _name in settings.LANGUAGES:
        translation.check_for_language(code)
        try:
            with translation.override(code, deactivate=True):
                pass
        except Exception:  # no catalogue at all: Django says so when the language is used
            logger.debug("No translation catalogue could be loaded for %r.", code, exc_info=True)
