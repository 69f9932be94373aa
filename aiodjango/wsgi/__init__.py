"""A WSGI server inside aiohttp: the bridge that serves Django's views.

This subpackage imports nothing from Django; it could serve any PEP 3333
application.  ``aiodjango.application`` reads the ``AIODJANGO_*`` settings and
passes them to :class:`WSGIBridge` as keyword arguments.

Modules, from the wire inwards:

* ``bridge``: the aiohttp handler (sending, streaming, sendfile, shutdown);
* ``environ``: the WSGI environ, built (and bad requests refused) as gunicorn does;
* ``body``: the request body, read before a thread is used, within a
  process-wide memory budget, spooled to disk beyond it;
* ``exchange``: one PEP 3333 exchange, run on one pool thread from the
  application call to ``close()``;
* ``pool``: the threads, and the way results get back to the event loop.
"""

from .body import DEFAULT_REQUEST_BODY_MEMORY
from .bridge import (
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    DEFAULT_REQUEST_BODY_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_SPOOL_THRESHOLD,
    DEFAULT_THREADS,
    WSGIBridge,
)
from .environ import AIOHTTP_REQUEST_KEY, DEFAULT_MAX_REQUEST_FIELDS, FileWrapper

__all__ = [
    "AIOHTTP_REQUEST_KEY",
    "DEFAULT_MAX_REQUEST_BODY_SIZE",
    "DEFAULT_MAX_REQUEST_FIELDS",
    "DEFAULT_REQUEST_BODY_MEMORY",
    "DEFAULT_REQUEST_BODY_TIMEOUT",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_SPOOL_THRESHOLD",
    "DEFAULT_THREADS",
    "FileWrapper",
    "WSGIBridge",
]
