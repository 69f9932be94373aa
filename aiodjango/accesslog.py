"""Access lines for ``runserver``, through the ``django.server`` logger, in Django's format.

Django's development server logs every request as
``"GET /hello/ HTTP/1.1" 200 11`` with ``server_time`` and ``status_code`` in
the record's extras, which the default ``django.server`` formatter
(``django.utils.log.ServerFormatter``) renders as ``[25/Nov/2026 10:00:00] ...``
and colours by status.  The same records come from here, so a project's
``LOGGING`` applies unchanged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

logger = logging.getLogger("django.server")

_MONTHS = (None, "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def server_time(now: float | None = None) -> str:
    """``25/Nov/2026 10:00:00``: ``BaseHTTPRequestHandler.log_date_time_string()``."""
    year, month, day, hh, mm, ss, *_ = time.localtime(time.time() if now is None else now)
    return "%02d/%3s/%04d %02d:%02d:%02d" % (day, _MONTHS[month], year, hh, mm, ss)


def request_line(request: web.BaseRequest) -> str:
    """The request line as the client sent it: ``GET /path?query HTTP/1.1``."""
    version = request.version
    return f"{request.method} {request.raw_path} HTTP/{version.major}.{version.minor}"


def log_access(
    request: web.BaseRequest, status: int, size: int, log: logging.Logger = logger
) -> None:
    """Log one request as ``WSGIRequestHandler.log_message()`` does."""
    if status >= 500:
        level = logging.ERROR
    elif status >= 400:
        level = logging.WARNING
    else:
        level = logging.INFO
    if not log.isEnabledFor(level):
        return
    extra: dict[str, Any] = {
        "request": request,
        "server_time": server_time(),
        "status_code": status,
    }
    log.log(level, '"%s" %s %s', request_line(request), str(status), str(size), extra=extra)


def body_size(response: web.StreamResponse) -> int:
    """Bytes of body sent, as Django's log shows (headers not counted)."""
    if response.content_length is not None:
        return response.content_length
    # body_length counts what went on the wire, headers included.
    headers = sum(len(k) + len(v) + 4 for k, v in response.headers.items())
    status_line = len(f"HTTP/1.1 {response.status} {response.reason}\r\n") + 2
    return max(response.body_length - headers - status_line, 0)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's ``access_log_class`` for ``runserver``.

    Websocket handshakes (101) are logged when they happen, by
    :func:`aiodjango.server.track_websockets`, not when the socket closes.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status == 101:
            return
        size = 0 if request.method == "HEAD" else body_size(response)
        log_access(request, response.status, size, self.logger)
