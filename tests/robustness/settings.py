"""Settings of the robustness suite's server subprocess (``server_app``)."""

import os

from tests.settings import *  # noqa: F401,F403

ROOT_URLCONF = "tests.robustness.server_app"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

# Uploads above 64 KiB are spooled to a temporary file, in the directory the
# suite gives each server ($TMPDIR), so that leaks can be counted.
FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

# Only what a server needs; no session or message tables to create.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
INSTALLED_APPS = ["aiodjango", "django.contrib.contenttypes", "django.contrib.auth"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "aiodjango": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "aiohttp": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}

# The bridge's limits; a test may set others through the environment.
AIODJANGO_MAX_REQUEST_BODY_SIZE = int(os.environ.get("ROBUSTNESS_MAX_BODY", 8 * 1024 * 1024))
AIODJANGO_SPOOL_THRESHOLD = int(os.environ.get("ROBUSTNESS_SPOOL", 256 * 1024))
AIODJANGO_REQUEST_BODY_TIMEOUT = float(os.environ.get("ROBUSTNESS_BODY_TIMEOUT", 2))
AIODJANGO_SHUTDOWN_TIMEOUT = float(os.environ.get("ROBUSTNESS_SHUTDOWN_TIMEOUT", 10))
