"""Settings of the broadcast test project (run under gunicorn by tests/test_broadcast_servers.py).

``BROADCAST_REDIS_URL`` selects the Redis backend (else in-process);
``BROADCAST_QUEUE_SIZE`` sets its ``QUEUE_SIZE``.
"""

import os

SECRET_KEY = "aiodjango-broadcast-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "tests.broadcast_project.urls"
USE_TZ = True
INSTALLED_APPS = ["aiodjango"]
MIDDLEWARE = []
DATABASES = {}

_options = {"QUEUE_SIZE": int(os.environ.get("BROADCAST_QUEUE_SIZE", "100"))}
if os.environ.get("BROADCAST_REDIS_URL"):
    AIODJANGO_BROADCAST = {
        "default": {
            "BACKEND": "aiodjango.broadcast.backends.redis.RedisBroadcast",
            "LOCATION": os.environ["BROADCAST_REDIS_URL"],
            "OPTIONS": {**_options, "RETRY_MAX_DELAY": 0.5, "PREFIX": "test:"},
        }
    }
else:
    AIODJANGO_BROADCAST = {
        "default": {"BACKEND": "aiodjango.broadcast.backends.memory.MemoryBroadcast", "OPTIONS": _options}
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"aiodjango.broadcast": {"handlers": ["console"], "level": "INFO"}},
}
