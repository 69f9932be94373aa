"""
WSGI config for example project.

``application`` is the plain Django WSGI application: any WSGI server (and
``WSGI_APPLICATION``) can still use it. ``app`` is the combined aiohttp
application: the ``async def`` views in the URLconf are served by aiohttp
directly, everything else by Django through aiodjango's WSGI bridge. Serve it
with ``manage.py runserver`` in development, or with gunicorn:

    gunicorn example.wsgi:app --worker-class aiohttp.worker.GunicornWebWorker
"""

import os

from django.core.wsgi import get_wsgi_application

from aiodjango import get_aio_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

application = get_wsgi_application()
app = get_aio_application(application)
