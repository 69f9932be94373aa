"""
Django settings for example project.

Shaped as ``django-admin startproject`` makes them, plus aiodjango and the chat
app. Everything that changes between a laptop and a deployment is read from
the environment:

``DJANGO_DEBUG``          "1" (the default) or "0".
``DJANGO_SECRET_KEY``     required when DEBUG is off.
``DJANGO_ALLOWED_HOSTS``  comma-separated; defaults to localhost names.
``DJANGO_SQLITE_PATH``   the SQLite database file; defaults to db.sqlite3 here.
``DJANGO_BEHIND_PROXY``   "1" when a TLS-terminating proxy (nginx) sets
                          ``X-Forwarded-Proto``: see docs/deployment.rst.
``REDIS_URL``             e.g. ``redis://127.0.0.1:6379/0``: chat messages
                          then cross processes and machines through Redis
                          pub/sub (needs ``pip install redis``).
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# Build paths inside the project like this: BASE_DIR / 'subdir'.
BASE_DIR = Path(__file__).resolve().parent.parent


def env_list(name, default):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# SECURITY WARNING: don't run with debug turned on in production!
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"

# SECURITY WARNING: keep the secret key used in production secret!
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is 0.")
    SECRET_KEY = "django-insecure-aiodjango-example-only-for-development"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

if os.environ.get("DJANGO_BEHIND_PROXY") == "1":
    # Only behind a proxy that always sets (and never forwards) this header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True


# Application definition

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # aiodjango goes above staticfiles so that its runserver wins.
    "aiodjango",
    "django.contrib.staticfiles",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The plain Django WSGI application stays valid for any WSGI server;
# ``example.wsgi.app`` is the combined aiohttp application.
WSGI_APPLICATION = "example.wsgi.application"


# Database

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_SQLITE_PATH") or BASE_DIR / "db.sqlite3",
    }
}


# Password validation

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]


# Internationalization

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True


# Static files (CSS, JavaScript, Images)

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# Logging: Django's defaults, plus the chat's and the broadcast's records on the console.

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "chat": {"handlers": ["console"], "level": "INFO"},
        # Redis outages and subscribers too slow to keep up.
        "aiodjango.broadcast": {"handlers": ["console"], "level": "INFO"},
    },
}


# How a message reaches every socket of a chat room: aiodjango.broadcast.
# In-process by default (right for one server process); Redis pub/sub when
# REDIS_URL is set, so that several workers or machines share the rooms.

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    AIODJANGO_BROADCAST = {
        "default": {
            "BACKEND": "aiodjango.broadcast.backends.redis.RedisBroadcast",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"PREFIX": "example:"},
        }
    }
