"""
ASGI config for example project.

It exposes the ASGI callable as a module-level variable named ``application``,
as ``django-admin startproject`` makes it. Note that an ASGI server runs only
the Django side: the ``async def`` views of the chat app are aiohttp handlers
and are served by ``example.wsgi.app`` (see ``wsgi.py``), not by this module.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

application = get_asgi_application()
