"""``SECURE_PROXY_SSL_HEADER`` for lifted views.

Behind a proxy that terminates HTTPS, Django's ``HttpRequest.scheme`` comes
from the header the setting names.  A lifted view gets the same answer in
aiohttp's terms: when Django's scheme differs from the connection's, the
handler serves the view ``request.clone(scheme=...)`` (aiohttp's public way),
so ``request.scheme``, ``request.secure`` and ``request.url`` say ``https``.
Which scheme a header value means is Django's ``HttpRequest.scheme``'s
answer, computed once per distinct value.
"""

from __future__ import annotations

from typing import Optional

from aiohttp import web
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

_SCHEMES_MAX = 64


class ProxyScheme:
    """The scheme Django gives a request, from ``SECURE_PROXY_SSL_HEADER``."""

    def __init__(self, meta_name: str) -> None:
        self.meta_name = meta_name
        #: The HTTP header the WSGI environ key stands for (``HTTP_X_FORWARDED_PROTO``:
        #: ``X-Forwarded-Proto``; header names holding ``_`` never reach Django).
        self.header = meta_name[len("HTTP_"):].replace("_", "-")
        self._schemes: dict[str, str] = {}

    @classmethod
    def from_settings(cls) -> Optional["ProxyScheme"]:
        """``None`` when the setting is unset, or names no HTTP header (then the
        WSGI environ of an aiohttp request doesn't have it either)."""
        setting = settings.SECURE_PROXY_SSL_HEADER
        if not setting:
            return None
        try:
            header, _value = setting
        except (TypeError, ValueError):
            raise ImproperlyConfigured(
                "The SECURE_PROXY_SSL_HEADER setting must be a tuple containing two values."
            ) from None
        if not isinstance(header, str) or not header.startswith("HTTP_") or header == "HTTP_":
            return None
        return cls(header)

    def scheme_for(self, value: str) -> str:
        """Django's ``HttpRequest.scheme`` when the header holds ``value``."""
        scheme = self._schemes.get(value)
        if scheme is None:
            stand_in = HttpRequest()
            stand_in.META[self.meta_name] = value
            scheme = stand_in.scheme
            if len(self._schemes) < _SCHEMES_MAX:
                self._schemes[value] = scheme
        return scheme

    def is_secure(self, request: web.BaseRequest) -> bool:
        """Whether Django would say ``request.is_secure()``."""
        value = request.headers.get(self.header)
        if value is None:
            return request.secure
        return self.scheme_for(value) == "https"

    def __call__(self, request: web.Request) -> web.Request:
        """``request``, or its clone with the scheme Django gives it."""
        value = request.headers.get(self.header)
        if value is None:
            return request  # Django falls back to the connection's scheme too
        scheme = self.scheme_for(value)
        if scheme == request.scheme:
            return request
        return request.clone(scheme=scheme)
