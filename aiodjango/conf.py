"""The ``AIODJANGO_*`` settings, read lazily in one place.

Each setting is a property so that ``override_settings`` works in tests.
Nothing is read at import time.
"""

from __future__ import annotations

from django.conf import settings


class Settings:
    """Typed, lazy access to aiodjango's settings and their defaults."""

    @property
    def AIODJANGO_THREADS(self) -> int | None:
        """Size of the thread pool that runs the Django WSGI app (``None``: default)."""
        return getattr(settings, "AIODJANGO_THREADS", None)

    @property
    def AIODJANGO_APPLICATION(self) -> str | None:
        """Dotted path of an aiohttp application for ``runserver`` to serve."""
        return getattr(settings, "AIODJANGO_APPLICATION", None)

    @property
    def AIODJANGO_CHECK_HOST(self) -> bool:
        """Check the Host of requests to lifted views against ``ALLOWED_HOSTS``."""
        return bool(getattr(settings, "AIODJANGO_CHECK_HOST", True))

    @property
    def AIODJANGO_CHECK_ORIGIN(self) -> bool:
        """Refuse websocket handshakes on lifted views from origins not allowed."""
        return bool(getattr(settings, "AIODJANGO_CHECK_ORIGIN", True))

    @property
    def AIODJANGO_BROADCAST(self) -> dict | None:
        """Broadcast backends by alias, shaped like CACHES (``None``: in-process "default")."""
        return getattr(settings, "AIODJANGO_BROADCAST", None)

    @property
    def AIODJANGO_MIDDLEWARE(self) -> dict:
        """What lifted views get from MIDDLEWARE entries: path -> "run", "skip" or an aiohttp middleware."""
        return getattr(settings, "AIODJANGO_MIDDLEWARE", {})

    @property
    def AIODJANGO_DB_THREADS(self) -> int:
        """Most database threads lifted views use at once, per process (each may keep a connection)."""
        return getattr(settings, "AIODJANGO_DB_THREADS", 8)

    @property
    def AIODJANGO_DB_TIMEOUT(self) -> float:
        """Seconds a lifted view waits for a free database thread (then 503)."""
        return getattr(settings, "AIODJANGO_DB_TIMEOUT", 10.0)

    @property
    def AIODJANGO_MAX_REQUEST_BODY_SIZE(self) -> int | None:
        """Largest request body the WSGI bridge accepts, in bytes (``None``: no limit)."""
        from .wsgi import DEFAULT_MAX_REQUEST_BODY_SIZE

        return getattr(settings, "AIODJANGO_MAX_REQUEST_BODY_SIZE", DEFAULT_MAX_REQUEST_BODY_SIZE)

    @property
    def AIODJANGO_SPOOL_THRESHOLD(self) -> int:
        """Request bodies larger than this many bytes are spooled to a temporary file."""
        from .wsgi import DEFAULT_SPOOL_THRESHOLD

        return getattr(settings, "AIODJANGO_SPOOL_THRESHOLD", DEFAULT_SPOOL_THRESHOLD)

    @property
    def AIODJANGO_REQUEST_BODY_MEMORY(self) -> int | None:
        """Request-body bytes the WSGI bridge holds in memory at once (``None``: no limit)."""
        from .wsgi.body import DEFAULT_REQUEST_BODY_MEMORY

        return getattr(settings, "AIODJANGO_REQUEST_BODY_MEMORY", DEFAULT_REQUEST_BODY_MEMORY)

    @property
    def AIODJANGO_MAX_REQUEST_FIELDS(self) -> int:
        """Most header fields a request to the WSGI bridge may have (431 beyond)."""
        from .wsgi.environ import DEFAULT_MAX_REQUEST_FIELDS

        return getattr(settings, "AIODJANGO_MAX_REQUEST_FIELDS", DEFAULT_MAX_REQUEST_FIELDS)

    @property
    def AIODJANGO_SHUTDOWN_TIMEOUT(self) -> float:
        """Seconds the WSGI bridge waits for running requests on shutdown."""
        from .wsgi import DEFAULT_SHUTDOWN_TIMEOUT

        return getattr(settings, "AIODJANGO_SHUTDOWN_TIMEOUT", DEFAULT_SHUTDOWN_TIMEOUT)

    @property
    def AIODJANGO_REQUEST_BODY_TIMEOUT(self) -> float | None:
        """Seconds the WSGI bridge allows for receiving a request body (408 after)."""
        from .wsgi import DEFAULT_REQUEST_BODY_TIMEOUT

        return getattr(settings, "AIODJANGO_REQUEST_BODY_TIMEOUT", DEFAULT_REQUEST_BODY_TIMEOUT)


conf = Settings()
