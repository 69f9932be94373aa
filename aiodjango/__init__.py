"""aiodjango: serve aiohttp handlers next to Django views, from one server."""

from .application import get_aio_application
from .routing import keep_in_django

__all__ = ["get_aio_application", "keep_in_django", "__version__"]

__version__ = "0.1.0.dev0"
