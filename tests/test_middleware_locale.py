"""LocaleMiddleware on lifted views: the request's language is active while the view runs.

Django's translation state is an ``asgiref.local.Local``: per context in
async code.  These tests check that each request sees its own language, also
when many run at once on the event loop, and in the threads of its
``sync_to_async`` calls; and that catalogues are never read from disk on the
event loop.
"""

import asyncio
import gettext
import threading
import uuid

import pytest

from tests import middleware_support
from tests.middleware_support import STARTPROJECT, fetch, policy_headers

serve = middleware_support.serve  # the fixture

LOCALE = STARTPROJECT[:2] + ["django.middleware.locale.LocaleMiddleware"] + STARTPROJECT[2:]
LANGUAGES = [("en", "English"), ("fr", "French"), ("de", "German"), ("es", "Spanish")]
TRANSLATED = {
    "en": "Enter a valid value.",
    "fr": "Saisissez une valeur valide.",
    "de": "Bitte einen gültigen Wert eingeben.",
    "es": "Introduzca un valor válido.",
}


async def serve_locale(serve):
    return await serve(middleware=LOCALE, LANGUAGES=LANGUAGES, LANGUAGE_CODE="en", USE_I18N=True)


async def test_language_from_accept_language_as_django(serve):
    client = await serve_locale(serve)
    for code in ("fr", "de", "en"):
        headers = {"Accept-Language": f"{code};q=0.9, xx;q=0.1"}
        lifted, _ = await fetch(client, "GET", "/lifted/language/", headers=headers)
        django, _ = await fetch(client, "GET", "/django/language/", headers=headers)
        answer = await lifted.json()
        assert answer == {"language": code, "in_thread": code, "translated": TRANSLATED[code]}
        assert (await django.json())["language"] == code
        assert lifted.headers["Content-Language"] == code
        assert lifted.headers["Vary"] == "Accept-Language"
        assert policy_headers(lifted) == policy_headers(django), code


async def test_repeated_requests_get_the_same_answers_as_django(serve):
    # The second round is answered from what aiodjango kept of Django's choices.
    client = await serve_locale(serve)
    cases = [
        {"Accept-Language": "de-AT,de;q=0.9"},
        {"Accept-Language": "es", "Cookie": "theme=dark; django_language=fr"},
        {"Accept-Language": "xx, *"},
        {"Cookie": "django_language=zz"},
        {},
    ]
    for _ in range(2):
        for headers in cases:
            lifted, _ = await fetch(client, "GET", "/lifted/language/", headers=headers)
            django, _ = await fetch(client, "GET", "/django/language/", headers=headers)
            assert (await lifted.json())["language"] == (await django.json())["language"], headers
            assert policy_headers(lifted) == policy_headers(django), headers


async def test_language_cookie_and_fallback(serve):
    client = await serve_locale(serve)
    client.session.cookie_jar.update_cookies({"django_language": "es"})
    response, _ = await fetch(client, "GET", "/lifted/language/", headers={"Accept-Language": "fr"})
    assert (await response.json())["language"] == "es"
    client.session.cookie_jar.clear()
    response, _ = await fetch(client, "GET", "/lifted/language/", headers={"Accept-Language": "xx"})
    assert (await response.json())["language"] == "en"  # LANGUAGE_CODE


async def test_no_language_without_the_middleware(serve):
    client = await serve(LANGUAGES=LANGUAGES, LANGUAGE_CODE="en")
    response, _ = await fetch(client, "GET", "/lifted/language/", headers={"Accept-Language": "fr"})
    assert (await response.json())["language"] == "en"
    assert "Content-Language" not in response.headers


async def test_concurrent_requests_each_see_their_own_language(serve):
    client = await serve_locale(serve)
    codes = ["fr", "de", "es", "en"] * 4
    group = uuid.uuid4().hex
    query = f"?group={group}&n={len(codes)}"

    async def one(code):
        # Every request waits in the view until all have arrived: they are
        # all on the event loop at once, each with its own language.
        response, _ = await fetch(client, "GET", "/lifted/language/" + query, headers={"Accept-Language": code})
        assert response.status == 200
        return code, await response.json(), response.headers["Content-Language"]

    results = await asyncio.wait_for(asyncio.gather(*(one(code) for code in codes)), 20)
    for code, answer, content_language in results:
        assert answer == {"language": code, "in_thread": code, "translated": TRANSLATED[code]}
        assert content_language == code


async def test_catalogues_are_loaded_before_serving_never_on_the_event_loop(serve, monkeypatch):
    loop_thread = threading.current_thread()
    reads = []

    def spy(function):
        def read(*args, **kwargs):
            reads.append(threading.current_thread() is loop_thread)
            return function(*args, **kwargs)

        return read

    # Django reads catalogues (and checks they exist) with these.
    monkeypatch.setattr(gettext, "translation", spy(gettext.translation))
    monkeypatch.setattr(gettext, "find", spy(gettext.find))
    # Changing LANGUAGES empties Django's catalogue caches (its setting_changed receiver).
    client = await serve_locale(serve)
    assert reads and not any(reads)  # loaded at start-up, in a thread
    loaded = len(reads)
    for code in ("es", "de", "fr", "en"):
        response, _ = await fetch(client, "GET", "/lifted/language/", headers={"Accept-Language": code})
        assert (await response.json())["translated"] == TRANSLATED[code]
    assert len(reads) == loaded  # nothing read while serving


@pytest.mark.parametrize("path", ["/lifted/stream/", "/lifted/page/"])
async def test_content_language_on_streams_and_responses(serve, path):
    client = await serve_locale(serve)
    response, _ = await fetch(client, "GET", path, headers={"Accept-Language": "de"})
    assert response.headers["Content-Language"] == "de"
    assert response.headers["Vary"] == "Accept-Language"
