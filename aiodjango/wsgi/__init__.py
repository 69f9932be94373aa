"""A WSGI server inside aiohttp: the bridge that serves Django's views.

This subpackage imports nothing from Django; it could serve any PEP 3333
application.  ``aiodjango.application`` reads the ``AIODJANGO_*`` settings and
passes them to :class:`WSGIBridge` as keyword arguments.

Modules, from the wire inwards:

* ``bridge``: the aiohttp handler (request body, sending, streaming,
  sendfile, shutdown);
* ``environ``: the request body and the WSGI environ, built as gunicorn builds it;
* ``exchange``: one PEP 3333 exchange, run on one pool thread from the
  application call to ``close()``;
* ``pool``: the threads, and the way results get back to the event loop.
"""

from .bridge import (
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    DEFAULT_REQUEST_BODY_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_SPOOL_THRESHOLD,
    DEFAULT_THREADS,
    WSGIBridge,
)
from .environ import AIOHTTP_REQUEST_KEY, FileWrapper

__all__ = [
    "AIOHTTP_REQUEST_KEY",
    "DEFAULT_MAX_REQUEST_BODY_SIZE",
    "DEFAULT_REQUEST_BODY_TIMEOUT",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_SPOOL_THRESHOLD",
    "DEFAULT_THREADS",
    "FileWrapper",
    "WSGIBridge",
]
