"""Django stand-ins for the response half of middleware: an ``HttpResponse``
mirroring an aiohttp response, and the changes Django's code made to it,
copied back.

A middleware's ``process_response`` gets the mirror: the aiohttp response's
status and headers (and its body, for the middleware that read it), plus
the marks Django's view decorators leave on a response (an attribute such
as ``xframe_options_exempt``, or an item set with ``response[header] =
value``, which on an aiohttp response lands in its per-response mapping).
Whatever Django's code changes on the mirror is then copied to the aiohttp
response.
"""

from __future__ import annotations

import io
from typing import Any

from aiohttp import hdrs, web
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse

from ..django_request import to_aiohttp_response

#: Response attributes set by Django's view decorators for the middleware:
#: ``xframe_options_exempt`` (``@xframe_options_exempt``) and the CSP
#: overrides of Django 6.0 (``@csp_override``, ``@csp_report_only_override``;
#: the attribute names are those Django's decorators and its
#: ``ContentSecurityPolicyMiddleware`` agree on).
MARK_ATTRIBUTES = ("xframe_options_exempt", "_csp_config", "_csp_ro_config")
#: Headers Django's decorators set with ``response[name] = value``
#: (``@xframe_options_deny``, ``@xframe_options_sameorigin``).
MARK_ITEMS = ("X-Frame-Options",)

_MISSING = object()


def probe_request(secure: bool, path: str = "/") -> WSGIRequest:
    """A request standing for "any request" (plain or HTTPS), for start-up work."""
    return WSGIRequest(
        {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "443" if secure else "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "https" if secure else "http",
            "wsgi.input": io.BytesIO(),
        }
    )


def empty_response() -> HttpResponse:
    """An ``HttpResponse`` without headers (not even Django's default Content-Type)."""
    response = HttpResponse()
    del response.headers["Content-Type"]
    return response


def header_snapshot(response: web.StreamResponse) -> dict[str, str]:
    """``{lower-case name: value}``, repeated headers joined as Django would see them."""
    snapshot: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        snapshot[key] = snapshot[key] + ", " + value if key in snapshot else value
    return snapshot


def mirror(response: web.StreamResponse, *, body: bool = False) -> tuple[HttpResponse, dict[str, str]]:
    """An ``HttpResponse`` standing for ``response``, and the snapshot it started from.

    With ``body`` the mirror holds ``response.body`` (a ``web.Response``
    whose body is bytes) and its cookies.
    """
    stand_in = HttpResponse(
        content=response.body if body else b"",  # type: ignore[attr-defined]
        status=response.status,
    )
    del stand_in.headers["Content-Type"]
    snapshot = header_snapshot(response)
    names: dict[str, str] = {}
    for name in response.headers.keys():
        names.setdefault(name.lower(), name)
    for key, value in snapshot.items():
        if key != "set-cookie":  # cookies are the mirror's cookies, not a header
            stand_in.headers[names[key]] = value
    if body:
        for name, morsel in response.cookies.items():
            stand_in.cookies[name] = morsel
    for attribute in MARK_ATTRIBUTES:
        value = getattr(response, attribute, _MISSING)
        if value is not _MISSING:
            setattr(stand_in, attribute, value)
    for name in MARK_ITEMS:
        value = response.get(name)
        if isinstance(value, str) and name not in stand_in:
            stand_in.headers[name] = value
    return stand_in, snapshot


def copy_back(
    stand_in: HttpResponse,
    snapshot: dict[str, str],
    response: web.StreamResponse,
    *,
    body: bool = False,
) -> None:
    """Apply to ``response`` what Django's code changed on its mirror ``stand_in``."""
    headers = response.headers
    seen = set()
    for name, value in stand_in.items():
        key = name.lower()
        seen.add(key)
        if key == "content-length" and body:
            continue  # aiohttp counts the body it sends
        if snapshot.get(key) != value:
            headers[name] = value
    for key in snapshot:
        if key not in seen and key != "set-cookie":
            headers.popall(key, None)
    if body:
        content = stand_in.content
        if content != response.body:  # type: ignore[attr-defined]
            response.body = content  # type: ignore[attr-defined]
        for name, morsel in stand_in.cookies.items():
            if response.cookies.get(name) is not morsel:
                response.cookies[name] = morsel


def has_bytes_body(response: Any) -> bool:
    """Whether ``response`` is an unsent ``web.Response`` whose body is bytes."""
    return (
        isinstance(response, web.Response)
        and not response.prepared
        and isinstance(response.body, (bytes, bytearray))
        and not response.compression
        and hdrs.CONTENT_ENCODING not in response.headers
    )


def from_django(response: HttpResponse, where: str) -> web.Response:
    """An aiohttp copy of a Django response a middleware answered with."""
    if getattr(response, "streaming", False):
        raise TypeError(
            f"{where} answered with a streaming Django response; aiodjango can copy only "
            f"complete responses (HttpResponse) to aiohttp."
        )
    return to_aiohttp_response(response)

