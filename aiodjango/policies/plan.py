"""The policies of one application (:class:`Policies`) and of one lifted view (:class:`ViewPlan`).

Built once, when the application is built, from ``MIDDLEWARE``: each entry
becomes a :class:`Policy`.  Per request:

* before the view, the policies that have a request half (an HTTPS
  redirect, the CSRF check, the login check, the language, ...) run as
  layers around it, in ``MIDDLEWARE`` order.  There are two chains per view,
  one for safe methods and one for the others, so a ``GET`` pays only for
  what applies to a ``GET``: with ``startproject``'s ``MIDDLEWARE``, nothing;
* after the view (on what it returns or raises, in the lifted view's
  handler), or when the response is prepared if the view prepares it itself
  (``app.on_response_prepare``: a websocket handshake, a stream), the
  response halves that only add headers run (:meth:`ViewPlan.respond`).  What they add for "any response" is
  worked out at start-up by Django's own ``process_response`` on a stand-in
  and replayed (set when absent, as those middleware do); the request's
  own stand-in is used only when something about the request or the
  response calls for it (its language, a CSP nonce, Django's decorators).
"""

from __future__ import annotations

import contextvars
from contextlib import nullcontext
from typing import Any, Awaitable, Callable, Optional

from aiohttp import hdrs, web
from django.core.exceptions import ImproperlyConfigured
from django.utils import translation
from multidict import istr

from ..django_request import django_request
from ..urlconf import Endpoint
from . import registry
from .decorators import RESPONSE_MARKS, django_decorators, quiet_header_items
from .scheme import ProxyScheme
from .standin import copy_back, empty_response, mirror, probe_request

Call = Callable[[web.Request], Awaitable[Any]]

#: The attribute of a lifted handler holding its :class:`ViewPlan`.
PLAN_ATTR = "aiodjango_plan"

_ALL = 1 << 30  # a cut that keeps every response half
_FIXED_MAX = 1024  # combinations of security, language and path language kept


class PolicyRun:
    """Per-request facts the response phase needs: set by the request half."""

    __slots__ = ("request", "match_info", "cut", "exact", "locale", "path_language")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.match_info = request.match_info
        #: Response halves of the policies at positions below this run (a
        #: middleware that answers early is seen only by those before it).
        self.cut = _ALL
        #: The response halves must run on this request's own stand-in (a CSP nonce).
        self.exact = False
        #: LocaleMiddleware's request half ran; the language of the path's prefix.
        self.locale = False
        self.path_language: Optional[str] = None


# aiohttp runs every request in a task of its own: the run set by the
# handler (or the view) is the request's, and is seen by the response phase,
# after the view or when the view prepares its response.
_RUN: contextvars.ContextVar[Optional[PolicyRun]] = contextvars.ContextVar(
    "aiodjango_policy_run", default=None
)


def run_of(request: web.Request) -> PolicyRun:
    """The request's :class:`PolicyRun`, created on first use."""
    run = _RUN.get()
    if run is None or run.match_info is not request.match_info:
        run = PolicyRun(request)
        _RUN.set(run)
    return run


def cut_at(request: web.Request, index: int) -> None:
    """Only the policies before ``index`` see this request's response."""
    run = run_of(request)
    if index < run.cut:
        run.cut = index


class ViewInfo:
    """What policies look at in a lifted view, worked out once."""

    def __init__(self, endpoint: Endpoint, view: Any) -> None:
        self.endpoint = endpoint
        self.callback = endpoint.callback
        self.view = view
        self.decorators = django_decorators(endpoint.callback)
        self.where = f"lifted view {endpoint.lookup_str} (URL pattern {endpoint.route!r})"


class Policy:
    """What one ``MIDDLEWARE`` entry does for lifted views (base: nothing)."""

    #: A Django middleware instance whose ``process_response`` adds headers
    #: (run in the response phase, :meth:`ViewPlan.respond`), or ``None``.
    headers: Any = None
    #: Its ``process_response`` needs the request's own stand-in every time.
    per_request = False
    #: It may start a :class:`PolicyRun` (the response phase then looks for one).
    starts_runs = False

    def __init__(self, index: int, path: str, policies: "Policies") -> None:
        self.index = index
        self.path = path
        self.policies = policies

    def wrap(self, view: ViewInfo, inner: Call, safe: bool) -> Call:
        """``inner`` with this policy's request half around it, for safe or other methods."""
        return inner

    async def startup(self, app: web.Application) -> None:
        """Work to do before the application serves (``on_startup``)."""


class Policies:
    """The policies of one application, from the settings read when it is built."""

    def __init__(self, *, urlconf: Any = None) -> None:
        self.urlconf = urlconf
        self.proxy = ProxyScheme.from_settings()
        self.policies: list[Policy] = []
        self.csp: Any = None  # Django's ContentSecurityPolicyMiddleware, if listed
        from .generic import AiohttpPolicy, RunPolicy, ViewMiddleware

        for entry in registry.entries():
            action = entry.action
            if action == "adapted":
                try:
                    policy: Optional[Policy] = registry.adapter_class(entry.path)(
                        entry.index, entry.path, self
                    )
                except ImportError as exc:  # LoginRequiredMiddleware before Django 5.1...
                    raise ImproperlyConfigured(
                        f"MIDDLEWARE lists {entry.path!r}, which can't be imported: {exc}"
                    ) from exc
            elif action == registry.RUN:
                policy = RunPolicy(entry.index, entry.path, self)
            elif callable(action):
                policy = AiohttpPolicy(entry.index, entry.path, self, action)
            else:  # silent, skipped, or not applied (aiodjango.W030)
                policy = None
            if policy is not None:
                self.policies.append(policy)
        self.view_middleware = ViewMiddleware(
            [p for p in self.policies if isinstance(p, RunPolicy)]
        )
        self.header_policies = [p for p in self.policies if p.headers is not None]
        self.starts_runs = any(p.starts_runs for p in self.policies)
        self._fixed: dict[tuple[Any, ...], tuple[tuple[istr, str], ...]] = {}
        self._probes: dict[bool, Any] = {}  # stand-ins for "any request", plain and HTTPS

    # -- start-up ---------------------------------------------------------

    def plan(self, endpoint: Endpoint, view: Any) -> "ViewPlan":
        return ViewPlan(self, ViewInfo(endpoint, view))

    def install(self, app: web.Application) -> None:
        """Register the policies' start-up work on ``app`` (their response phase is
        :meth:`ViewPlan.respond`, called by ``get_aio_application()``'s receiver)."""
        for policy in self.policies:
            if type(policy).startup is not Policy.startup:
                app.on_startup.append(policy.startup)

    def fixed(
        self, secure: bool, language: Optional[str] = None, path_language: Optional[str] = None
    ) -> tuple[tuple[istr, str], ...]:
        """The headers the response halves add to a response without them,
        computed once by their ``process_response`` on a stand-in.

        What Django's code reads there is the request's security
        (``is_secure()``) and, for ``LocaleMiddleware``, the active language
        and the language of the path's prefix (its 404 redirect aside): the
        result is kept per combination of those.  Without a ``language``,
        ``LocaleMiddleware`` is left out.  Names are ``istr``: aiohttp's
        headers take them without case-folding again.
        """
        key = (secure, language, path_language)
        found = self._fixed.get(key)
        if found is None:
            request = probe_request(secure, f"/{path_language}/" if path_language else "/")
            if self.urlconf is not None:
                request.urlconf = self.urlconf
            response = empty_response()
            with translation.override(language) if language is not None else nullcontext():
                for policy in reversed(self.header_policies):
                    if language is not None or not policy.per_request:
                        policy.headers.process_response(request, response)
            found = tuple((istr(name), value) for name, value in response.items())
            if len(self._fixed) < _FIXED_MAX:
                self._fixed[key] = found
        return found

    def is_secure(self, request: web.BaseRequest) -> bool:
        """Whether Django would call ``request`` secure (either one aiohttp hands over)."""
        proxy = self.proxy
        return proxy.is_secure(request) if proxy is not None else request.secure

    # -- per response ---------------------------------------------------------

    def respond(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        run: Optional[PolicyRun],
        marks: bool,
    ) -> None:
        """The header policies' response halves for a request that has a run (or marks)."""
        if (
            not marks
            and run is not None
            and run.cut == _ALL
            and not run.exact
            and not (run.locale and (response.status == 404 or hdrs.VARY in response.headers))
        ):
            # What Django's code would do is known: the headers for this
            # security, language and path prefix, set where absent.  (A Vary
            # to merge with, or a 404 that LocaleMiddleware may redirect:
            # Django's code runs on the response's mirror instead.)
            language = translation.get_language() if run.locale else None
            set_absent(response.headers, self.fixed(self.is_secure(request), language, run.path_language))
            return
        self.respond_exactly(request, response, run)

    def respond_exactly(
        self, request: web.BaseRequest, response: web.StreamResponse, run: Optional[PolicyRun]
    ) -> None:
        """The header policies' ``process_response`` on a mirror of ``response``."""
        cut = run.cut if run is not None else _ALL
        if run is not None:
            dj = django_request(run.request)
        else:
            secure = self.is_secure(request)
            dj = self._probes.get(secure)
            if dj is None:
                dj = self._probes[secure] = probe_request(secure)
        stand_in, snapshot = mirror(response)
        for policy in reversed(self.header_policies):
            if policy.index < cut:
                # A response half answering with another response (the
                # language redirect of a 404 under i18n_patterns) can't
                # replace one being prepared: what it did to this one stays.
                policy.headers.process_response(dj, stand_in)
        copy_back(stand_in, snapshot, response)


class ViewPlan:
    """The policies of one lifted view."""

    def __init__(self, policies: Policies, view: ViewInfo) -> None:
        self.policies = policies
        self.view = view
        inner: Call = policies.view_middleware.wrap(view, view.view)
        safe = unsafe = inner
        for policy in reversed(policies.policies):
            safe = policy.wrap(view, safe, True)
            unsafe = policy.wrap(view, unsafe, False)
        #: What the handler awaits for a safe method, and for the others.
        self.safe_call: Call = safe
        self.unsafe_call: Call = unsafe
        #: The view's responses may carry marks of Django's decorators.
        self.marks = bool(view.decorators & RESPONSE_MARKS)
        if view.decorators & {"xframe_options_deny", "xframe_options_sameorigin"}:
            quiet_header_items()
        self.uses_runs = policies.starts_runs
        self.fixed_http = policies.fixed(False)
        self.fixed_https = policies.fixed(True)
        self.check_secure = self.fixed_http != self.fixed_https

    def respond(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """The response phase of the header policies, for ``response``."""
        run = _RUN.get() if self.uses_runs else None
        if run is not None and run.match_info is not request.match_info:
            run = None  # not this request's
        if run is None and not self.marks:
            fixed = (
                self.fixed_https
                if self.check_secure and self.policies.is_secure(request)
                else self.fixed_http
            )
            set_absent(response.headers, fixed)
            return
        self.policies.respond(request, response, run, self.marks)


def set_absent(headers: Any, fixed: tuple[tuple[istr, str], ...]) -> None:
    """Set each of ``fixed`` that ``headers`` lacks, as the header middleware do."""
    for name, value in fixed:
        if name not in headers:
            headers[name] = value
