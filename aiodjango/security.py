"""Django's request safety checks for lifted views: Host, websocket Origin, CSRF.

* **Host**: every request to a lifted view is checked against
  ``ALLOWED_HOSTS`` as ``HttpRequest.get_host()`` does (Django's own
  ``split_domain_port()`` and ``validate_host()``, the implicit localhost
  entries under ``DEBUG``, ``USE_X_FORWARDED_HOST``).  A bad Host gets 400
  and a ``django.security.DisallowedHost`` log record.
* **Origin**: a websocket handshake whose ``Origin`` is not allowed gets 403
  and a ``django.security.csrf`` warning saying why.  Allowed, as by
  ``CsrfViewMiddleware``: the request's own origin (scheme, host and port;
  ``SECURE_PROXY_SSL_HEADER`` honoured; the host in ``ALLOWED_HOSTS``), or
  one listed in ``CSRF_TRUSTED_ORIGINS`` (wildcards as Django reads them).
  A handshake without ``Origin`` passes.
* **CSRF**: with ``CsrfViewMiddleware`` in ``MIDDLEWARE``, the unsafe methods
  of every lifted view are checked by its code (``aiodjango.policies``,
  through ``csrf_rejection()``); :func:`csrf_protect` asks for the same
  check per view (without the middleware, or where it is skipped).

The first two are on by default (``AIODJANGO_CHECK_HOST``,
``AIODJANGO_CHECK_ORIGIN``), and per view with :func:`check_host` /
:func:`check_origin`.  Settings are read when the application is built.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Optional, TypeVar, Union
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import QueryDict
from django.http.request import split_domain_port, validate_host
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.utils.datastructures import MultiValueDict
from django.utils.http import is_same_domain

from .conf import conf
from .django_request import (
    _no_response,
    django_request,
    log_escaped,
    log_request,
    request_of,
    state_of,
    to_aiohttp_response,
)

__all__ = ["check_host", "check_origin", "csrf_protect", "get_csrf_token"]

csrf_logger = logging.getLogger("django.security.csrf")
host_logger = logging.getLogger("django.security.DisallowedHost")

V = TypeVar("V", bound=Callable[..., Any])
Check = Callable[[web.Request], Optional[web.StreamResponse]]

_CHECK_HOST_ATTR = "_aiodjango_check_host"
_CHECK_ORIGIN_ATTR = "_aiodjango_check_origin"
_GOOD_HOSTS_MAX = 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})  # Django's CSRF "safe" methods


# -- per-view switches ------------------------------------------------------


def _switch(attr: str, what: str) -> Callable[..., Any]:
    def decorator(enabled: Union[bool, V] = True) -> Any:
        if callable(enabled):  # used bare: @check_origin
            setattr(enabled, attr, True)
            return enabled
        if not isinstance(enabled, bool):
            raise TypeError(f"@{what}() takes True or False, got {enabled!r}.")

        def mark(view: V) -> V:
            setattr(view, attr, enabled)
            return view

        return mark

    decorator.__name__ = decorator.__qualname__ = what
    return decorator


check_host = _switch(_CHECK_HOST_ATTR, "check_host")
check_host.__doc__ = """Turn the Host check of one lifted view on or off.

``@check_host(False)`` serves the view whatever its Host header; it overrides
``AIODJANGO_CHECK_HOST`` either way.  Put it above other decorators.
"""

check_origin = _switch(_CHECK_ORIGIN_ATTR, "check_origin")
check_origin.__doc__ = """Turn the websocket Origin check of one lifted view on or off.

``@check_origin(False)`` accepts websocket handshakes from any origin (for a
public API); ``@check_origin(True)`` checks even if
``AIODJANGO_CHECK_ORIGIN`` is off.  Put it above other decorators.
"""


def _view_switch(view: Any, attr: str, default: bool) -> bool:
    func = view
    while func is not None:
        value = getattr(func, attr, None)
        if value is not None:
            return bool(value)
        func = getattr(func, "func", None) if isinstance(func, functools.partial) else None
    return default


# -- Host -------------------------------------------------------------------


def allowed_hosts() -> list[str]:
    """``ALLOWED_HOSTS`` as ``HttpRequest.get_host()`` reads it (DEBUG adds localhost)."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def raw_host(request: web.BaseRequest, use_x_forwarded_host: bool) -> str:
    """The host ``HttpRequest._get_raw_host()`` would see for ``request``."""
    headers = request.headers
    if use_x_forwarded_host and hdrs.X_FORWARDED_HOST in headers:
        return ",".join(headers.getall(hdrs.X_FORWARDED_HOST))
    hosts = headers.getall(hdrs.HOST, None)
    if hosts is not None:
        # Repeated (old aiohttp lets it through): joined, as in the environ.
        return hosts[0] if len(hosts) == 1 else ",".join(hosts)
    # PEP 3333's reconstruction, from the server address the bridge reports.
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(sockname, tuple):
        return ""
    name, port = str(sockname[0]), str(sockname[1])
    return name if port == ("443" if request.secure else "80") else f"{name}:{port}"


def _rejects_repeated_host() -> bool:
    import aiohttp

    try:
        version = tuple(int(part) for part in aiohttp.__version__.split(".")[:3])
    except ValueError:  # a development version: assume the newest behaviour
        return True
    return version >= (3, 13, 4)


class HostCheck:
    """``HttpRequest.get_host()``'s validation, answering 400 for a bad Host."""

    def __init__(self, hosts: list[str], use_x_forwarded_host: bool) -> None:
        self.hosts = hosts
        self.use_x_forwarded_host = use_x_forwarded_host
        self._good: dict[str, bool] = {}
        #: Host header values known to pass, for a caller's fast path on
        #: ``headers.get("Host")``.  ``None`` with ``USE_X_FORWARDED_HOST``
        #: (the Host header isn't the host), and with aiohttp < 3.13.4, whose
        #: C parser lets a repeated Host header through (Django sees them joined).
        self.good_hosts: Optional[dict[str, bool]] = (
            self._good if not use_x_forwarded_host and _rejects_repeated_host() else None
        )

    def __call__(self, request: web.Request) -> Optional[web.StreamResponse]:
        host = raw_host(request, self.use_x_forwarded_host)
        if host in self._good:
            return None
        domain, _ = split_domain_port(host)
        if domain and validate_host(domain, self.hosts):
            if len(self._good) < _GOOD_HOSTS_MAX:
                self._good[host] = True
            return None
        message = "Invalid HTTP_HOST header: %r." % host
        if domain:
            message += " You may need to add %r to ALLOWED_HOSTS." % domain
        else:
            message += " The domain name provided is not valid according to RFC 1034/1035."
        exc = DisallowedHost(message)
        host_logger.error(
            message, exc_info=exc, extra={"status_code": 400, "request": log_request(request)}
        )
        text = "400 Bad Request\n"
        if settings.DEBUG:
            text += "\n" + message + "\n"
        return web.Response(status=400, text=text)


# -- websocket Origin -------------------------------------------------------


def is_websocket(request: web.BaseRequest) -> bool:
    """Whether ``request`` asks for a websocket handshake."""
    upgrade = request.headers.get(hdrs.UPGRADE)
    return upgrade is not None and upgrade.lower() == "websocket"


_DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginCheck:
    """Refuse websocket handshakes from origins that are not allowed (403).

    Django's rule, as ``CsrfViewMiddleware`` checks an ``Origin``: the origin
    is the request's own (same scheme, ``SECURE_PROXY_SSL_HEADER`` honoured;
    same host, allowed by ``ALLOWED_HOSTS``; same port), or it is listed in
    ``CSRF_TRUSTED_ORIGINS``.
    """

    def __init__(self, hosts: list[str], use_x_forwarded_host: bool) -> None:
        self.hosts = hosts
        self.use_x_forwarded_host = use_x_forwarded_host
        self.proxy_ssl_header = bool(settings.SECURE_PROXY_SSL_HEADER)
        csrf = CsrfViewMiddleware(_no_response)
        self.trusted_exact = frozenset(csrf.allowed_origins_exact)
        self.trusted_subdomains = {k: tuple(v) for k, v in csrf.allowed_origin_subdomains.items()}

    def scheme(self, request: web.BaseRequest) -> str:
        """The request's scheme, as ``HttpRequest.scheme`` gives it.

        Under ``SECURE_PROXY_SSL_HEADER`` the lifted handler has already
        cloned the request with Django's scheme (:mod:`aiodjango.policies.scheme`).
        """
        return request.scheme

    def refusal(self, request: web.BaseRequest, origin: str) -> Optional[str]:
        """Why ``origin`` is refused, or ``None`` when it is allowed."""
        if origin in self.trusted_exact:
            return None
        untrusted = "and the origin is not listed in CSRF_TRUSTED_ORIGINS"
        try:
            parsed = urlsplit(origin)
            parsed.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            return f"the Origin {origin!r} is not a valid origin {untrusted}"
        scheme, netloc = parsed.scheme, parsed.netloc
        if any(is_same_domain(netloc, host) for host in self.trusted_subdomains.get(scheme, ())):
            return None
        domain, port = split_domain_port(netloc)
        if (
            scheme not in _DEFAULT_PORTS
            or not domain
            or parsed.path
            or parsed.query
            or parsed.fragment
        ):
            return f"the Origin {origin!r} is not an http(s) origin (scheme://host[:port]) {untrusted}"
        host = raw_host(request, self.use_x_forwarded_host)
        own_domain, own_port = split_domain_port(host)
        if not own_domain or not validate_host(own_domain, self.hosts):
            return f"host not allowed: the requested host {host!r} is not in ALLOWED_HOSTS"
        if domain != own_domain:
            if not validate_host(domain, self.hosts):
                return (
                    f"host not allowed: the host {domain!r} of the Origin {origin!r} is not in "
                    f"ALLOWED_HOSTS, {untrusted}"
                )
            return (
                f"wrong host: the Origin {origin!r} is not the requested host {host!r}, "
                f"{untrusted} (list it there to allow this site's other hosts)"
            )
        own_scheme = self.scheme(request)
        if scheme != own_scheme:
            hint = ""
            if scheme == "https" and not self.proxy_ssl_header:
                hint = " (behind a proxy that terminates HTTPS, set SECURE_PROXY_SSL_HEADER)"
            return (
                f"wrong scheme: the Origin {origin!r} is {scheme}, the request {own_scheme}{hint}, "
                f"{untrusted}"
            )
        origin_port = int(port) if port else _DEFAULT_PORTS[scheme]
        own = int(own_port) if own_port else _DEFAULT_PORTS[own_scheme]
        if origin_port != own:
            return (
                f"wrong port: the Origin {origin!r} has port {origin_port}, the request {own} "
                f"(its host is {host!r}), {untrusted}"
            )
        return None

    def __call__(self, request: web.Request) -> Optional[web.StreamResponse]:
        if not is_websocket(request):
            return None
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return None  # not a browser: nothing to forge
        reason = self.refusal(request, origin)
        if reason is None:
            return None
        message = "Forbidden (websocket handshake refused: %s): %s"
        args = (reason, log_escaped(request.path))
        csrf_logger.warning(
            message, *args, extra={"status_code": 403, "request": log_request(request)}
        )
        text = "403 Forbidden\n"
        if settings.DEBUG:
            text += "\n" + message % args + "\n"
        return web.Response(status=403, text=text)


def request_checks(view: Any) -> tuple[Optional[Check], Optional[Check]]:
    """The Host and Origin checks for a lifted view (``None`` when off).

    Reads the settings now, once per view, when the application is built.
    """
    host_on = _view_switch(view, _CHECK_HOST_ATTR, conf.AIODJANGO_CHECK_HOST)
    origin_on = _view_switch(view, _CHECK_ORIGIN_ATTR, conf.AIODJANGO_CHECK_ORIGIN)
    if not (host_on or origin_on):
        return None, None
    hosts = allowed_hosts()
    use_xfh = bool(settings.USE_X_FORWARDED_HOST)
    return (
        HostCheck(hosts, use_xfh) if host_on else None,
        OriginCheck(hosts, use_xfh) if origin_on else None,
    )


# -- CSRF -------------------------------------------------------------------



def _is_form(request: web.BaseRequest) -> bool:
    return request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")


def _csrf_check(dj: Any, callback: Any) -> Any:
    middleware = CsrfViewMiddleware(_no_response)
    if "CSRF_COOKIE" not in dj.META:
        middleware.process_request(dj)
    return middleware.process_view(dj, callback, (), {})


async def csrf_rejection(request: web.Request, callback: Any = _no_response) -> Optional[web.StreamResponse]:
    """Django's CSRF answer for ``request``: ``None`` to go on, or its 403 response.

    ``callback`` is the view, for Django to read its ``csrf_exempt``.
    """
    state = state_of(request)
    dj = django_request(request)
    # Checked already (the middleware's policy, then @csrf_protect): Django's
    # own mark of a request it accepted, which its process_view honours too.
    if getattr(dj, "csrf_processing_done", False):
        return None
    if request.method == "POST" and _is_form(request) and settings.CSRF_HEADER_NAME in dj.META:
        if not hasattr(dj, "_post"):
            # The token is in the header: the body is left unread (the view
            # may stream it), and Django falls back to the header.
            dj._post, dj._files = QueryDict(), MultiValueDict()
    elif request.method == "POST" and _is_form(request) and not hasattr(dj, "_post"):
        # Django reads the token from request.POST: give it the form as
        # aiohttp parses it (cached: the view's ``await request.post()`` works).
        form = state.form = await request.post()  # its files are closed after the view
        data = QueryDict(mutable=True)
        for key, value in form.items():
            if isinstance(value, str):
                data.appendlist(key, value)
        dj._post, dj._files = data, MultiValueDict()
    if settings.CSRF_USE_SESSIONS:
        from .auth import get_session

        await get_session(request)
    state.uses_csrf = True
    rejection = await sync_to_async(_csrf_check, thread_sensitive=True)(dj, callback)
    if rejection is None:
        return None
    return to_aiohttp_response(rejection)


def csrf_protect(view: V) -> V:
    """Apply Django's CSRF check to the unsafe methods of a lifted view.

    For POST, PUT, PATCH, DELETE (anything but GET, HEAD, OPTIONS, TRACE)
    Django's ``CsrfViewMiddleware`` runs as for a Django view: the token comes
    from the ``csrfmiddlewaretoken`` form field or the ``X-CSRFToken`` header
    (``CSRF_HEADER_NAME``), the secret from the ``csrftoken`` cookie (or the
    session with ``CSRF_USE_SESSIONS``), Origin and Referer are checked, and
    a failure answers with ``CSRF_FAILURE_VIEW``'s 403 and a
    ``django.security.csrf`` warning.  Works on functions and on the methods
    of an ``aiohttp.web.View``.  A POSTed form is read with ``await
    request.post()`` (the view gets it again from that call;
    ``request.multipart()`` can't stream it any more), unless the token
    comes in the header.

    With ``CsrfViewMiddleware`` in ``MIDDLEWARE`` every lifted view is
    checked already (the request is then not checked twice); this decorator
    is for projects without it, or that skip it for lifted views
    (``AIODJANGO_MIDDLEWARE``).
    """

    @functools.wraps(view)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        request = request_of(args)
        if request.method not in SAFE_METHODS:
            rejection = await csrf_rejection(request)
            if rejection is not None:
                return rejection
        return await view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


async def get_csrf_token(request: web.Request) -> str:
    """The CSRF token for a form or a script, as Django's ``get_token()`` gives it.

    The ``csrftoken`` cookie is set on the response of a lifted view, as
    Django's middleware sets it (or stored in the session under
    ``CSRF_USE_SESSIONS``).
    """
    state = state_of(request)
    dj = django_request(request)
    if settings.CSRF_USE_SESSIONS:
        from .auth import get_session

        await get_session(request)
    state.uses_csrf = True

    def token() -> str:
        if "CSRF_COOKIE" not in dj.META:
            CsrfViewMiddleware(_no_response).process_request(dj)
        return get_token(dj)

    if settings.CSRF_USE_SESSIONS:
        return await sync_to_async(token, thread_sensitive=True)()
    return token()

