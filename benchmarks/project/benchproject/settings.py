"""Settings of the benchmark project: every server runs this same project.

As ``django-admin startproject`` makes them (its MIDDLEWARE whole: lifted
views get its policies too), minus the database and the admin, DEBUG off, no
access log.  The harness chooses the URLconf and the file to serve with
environment variables.
"""

import os

SECRET_KEY = "aiodjango-benchmarks-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

# benchproject.urls (10 patterns) or benchproject.urls_large (1,000 patterns).
ROOT_URLCONF = os.environ.get("BENCH_URLCONF", "benchproject.urls")
WSGI_APPLICATION = "benchproject.wsgi.application"
ASGI_APPLICATION = "benchproject.asgi.application"

INSTALLED_APPS = [
    "aiodjango",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]

# startproject's MIDDLEWARE.  A Hello World uses no session: none is loaded.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

DATABASES = {}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The file that the FileResponse view serves (the harness creates it).
BENCH_FILE = os.environ.get("BENCH_FILE", "")
