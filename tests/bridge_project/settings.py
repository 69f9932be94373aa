"""Settings of the bridge test project (see ``__init__.py``).

Every test server gets its own SQLite file (``BRIDGE_DB``) and, optionally,
files the views record into (``BRIDGE_RECORDS``, ``BRIDGE_CALLS``) and a
directory of gates that tests open (``BRIDGE_GATES``).
"""

import os

from django.core.exceptions import ImproperlyConfigured

SECRET_KEY = "aiodjango-bridge-project-not-secret"
DEBUG = False
# Gunicorn's corpus sends Host values such as "0.0.0.0=5000"; the views never
# call get_host(), and no middleware does.
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.bridge_project.urls"
INSTALLED_APPS = ["tests.bridge_project.exports"]
# No middleware: the echo view must see the environ exactly as the server built
# it, and the streaming views activate their own language.
MIDDLEWARE: list[str] = []
USE_I18N = True
USE_TZ = True
LANGUAGE_CODE = "en"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

try:
    _DB = os.environ["BRIDGE_DB"]
except KeyError:
    raise ImproperlyConfigured(
        "tests.bridge_project needs BRIDGE_DB, the path of its SQLite file "
        "(the tests set it; 'python -m django migrate' creates it)."
    ) from None

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _DB,
        # Connections are closed at the end of every request (request_finished),
        # which is what cuts a streamed iterator() short when the response's
        # close() runs on another thread than its queries.
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"timeout": 20},
    }
}

AIODJANGO_THREADS = int(os.environ.get("AIODJANGO_THREADS", "4"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(threadName)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # The servers' logs go to a file the tests read.
        "aiodjango": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
