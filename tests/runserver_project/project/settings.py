"""Settings of the runserver test project.

Environment variables let the tests vary it without editing files:
``DEMO_DEBUG`` ("0" turns DEBUG off), ``DEMO_NO_STATICFILES`` ("1" leaves
django.contrib.staticfiles out), ``DEMO_AIODJANGO_APPLICATION``.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "runserver-test-project-not-secret"
DEBUG = os.environ.get("DEMO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "aiodjango",
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "demo",
]
if os.environ.get("DEMO_NO_STATICFILES") == "1":
    INSTALLED_APPS.remove("django.contrib.staticfiles")

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
if os.environ.get("DEMO_AIODJANGO_APPLICATION"):
    AIODJANGO_APPLICATION = os.environ["DEMO_AIODJANGO_APPLICATION"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}

STATIC_URL = "/static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
