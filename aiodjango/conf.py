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


conf = Settings()
