"""docs/django-integration.rst's example project and tests, run as written."""

import re
import sys
import textwrap
import unittest
from pathlib import Path

import pytest
from aiohttp import WSServerHandshakeError
from asgiref.sync import sync_to_async
from django.db import connections


pytest_plugins = ["aiodjango.testing"]  # aio_app, aio_client

DOC = (Path(__file__).resolve().parent.parent / "docs" / "django-integration.rst").read_text()


def blocks():
    """The doc's python code blocks, by their first line (``# views.py``...)."""
    found = {}
    for match in re.finditer(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", DOC):
        code = textwrap.dedent(match.group(1)).strip() + "\n"
        found[code.split("\n", 1)[0]] = code
    return found


@pytest.fixture
def docsproject(tmp_path, monkeypatch, settings):
    code = blocks()
    package = tmp_path / "docsproject"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("views.py", "urls.py", "tests.py", "test_profile.py"):
        (package / name).write_text(code[f"# {name}"])
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.ROOT_URLCONF = "docsproject.urls"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield package
    for module in [m for m in sys.modules if m == "docsproject" or m.startswith("docsproject.")]:
        del sys.modules[module]


def test_conftest_line_names_this_module():
    assert 'pytest_plugins = ["aiodjango.testing"]' in blocks()["# conftest.py"]


@pytest.mark.django_db(transaction=True)
def test_the_django_test_case_passes(docsproject):
    from docsproject import tests

    suite = unittest.defaultTestLoader.loadTestsFromModule(tests)
    result = unittest.TestResult()
    suite.run(result)
    assert result.testsRun == 1
    assert result.wasSuccessful(), result.errors + result.failures


@pytest.mark.django_db(transaction=True)
async def test_the_pytest_example_passes(docsproject, aio_client):
    from docsproject import test_profile

    try:
        await test_profile.test_profile(aio_client)
    finally:
        await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_the_example_views(docsproject, aio_client):
    r = await aio_client.get("/profile/", allow_redirects=False)
    assert r.headers["Location"] == "/accounts/login/?next=/profile/"
    r = await aio_client.post("/comment/", data={"text": "hi"})
    assert r.status == 403
    token = (await (await aio_client.get("/comment/")).json())["csrf_token"]
    r = await aio_client.post("/comment/", data={"text": "hi", "csrfmiddlewaretoken": token})
    assert await r.json() == {"comment": "hi"}
    async with aio_client.ws_connect("/ws/feed/", origin="https://any.example") as ws:
        assert await ws.receive_str(timeout=5) == "welcome"
    with pytest.raises(WSServerHandshakeError) as info:
        await aio_client.ws_connect("/ws/chat/")
    assert info.value.status == 403  # anonymous
    assert await (await aio_client.get("/users/")).json() == {"users": 0}
    await sync_to_async(connections.close_all)()
