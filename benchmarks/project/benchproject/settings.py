"""Settings of the benchmark project: every server runs this same project.

As ``django-admin startproject`` makes them, minus what a Hello World does
not use (sessions, auth, messages, CSRF, the database), DEBUG off, no access
log.  The harness chooses the URLconf and the file to serve with environment
variables.
"""

import os

SECRET_KEY = "aiodjango-benchmarks-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

# benchproject.urls (10 patterns) or benchproject.urls_large (1,000 patterns).
ROOT_URLCONF = os.environ.get("BENCH_URLCONF", "benchproject.urls")
WSGI_APPLICATION = "benchproject.wsgi.application"
ASGI_APPLICATION = "benchproject.asgi.application"

INSTALLED_APPS = ["aiodjango"]

# startproject's MIDDLEWARE without sessions, auth, messages and CSRF.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

DATABASES = {}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The file that the FileResponse view serves (the harness creates it).
BENCH_FILE = os.environ.get("BENCH_FILE", "")
