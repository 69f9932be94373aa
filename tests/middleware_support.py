"""What the MIDDLEWARE tests share: the settings, a server over them, header comparisons."""

import pytest
from aiohttp.test_utils import TestClient

from aiodjango import get_aio_application

#: ``django-admin startproject``'s MIDDLEWARE.
STARTPROJECT = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

#: Headers Django's middleware may add to a response.
POLICY_HEADERS = (
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "Strict-Transport-Security",
    "X-Frame-Options",
    "Content-Security-Policy",
    "Content-Security-Policy-Report-Only",
    "Content-Language",
    "Vary",
    "ETag",
    "Content-Encoding",
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Methods",
    "Access-Control-Max-Age",
    "Access-Control-Allow-Credentials",
)


def policy_headers(response) -> dict:
    """The policy headers ``response`` has (name -> value)."""
    return {name: response.headers[name] for name in POLICY_HEADERS if name in response.headers}


@pytest.fixture
def serve(aiohttp_client, settings):
    """``await serve(MIDDLEWARE, **settings)``: a real server over get_aio_application().

    The settings stay in force for the whole test (Django reads some of them
    per request), the URLconf is ``tests.middleware_urls``.
    """

    async def start(middleware=STARTPROJECT, **overrides) -> TestClient:
        settings.ROOT_URLCONF = "tests.middleware_urls"
        settings.MIDDLEWARE = list(middleware)
        for name, value in overrides.items():
            setattr(settings, name, value)
        return await aiohttp_client(get_aio_application())

    return start


async def fetch(client, method, path, **kwargs):
    """``(response, body)``, the body read (and the response released)."""
    kwargs.setdefault("allow_redirects", False)
    async with client.request(method, path, **kwargs) as response:
        return response, await response.read()
