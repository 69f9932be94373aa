"""``application``: Django behind the plain apps' dispatcher (any WSGI server);
``app``: the same served by aiohttp through aiodjango's bridge.

    gunicorn tests.bridge_project.wsgi:app --worker-class aiohttp.worker.GunicornWebWorker
    gunicorn tests.bridge_project.wsgi:application --worker-class gthread --threads 4
"""

import os

from django.core.wsgi import get_wsgi_application

from aiodjango import get_aio_application

from .raw_apps import Dispatcher

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bridge_project.settings")

application = Dispatcher(get_wsgi_application())
app = get_aio_application(application)
