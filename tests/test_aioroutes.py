"""manage.py aioroutes: through its parser, call_command, and a real manage.py run."""

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from aiodjango.management.commands.aioroutes import Command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rows_of(text):
    lines = text.strip().splitlines()
    assert lines[0].split() == ["PATTERN", "NAME", "SERVED", "BY", "HANDLER"]
    assert lines[-1] == "Any other path goes to Django (the WSGI fallback)."
    return [line.split() for line in lines[1:-1]]


def run(*args, **options):
    out = StringIO()
    call_command("aioroutes", *args, stdout=out, **options)
    return out.getvalue()


def test_table_lists_every_pattern_in_django_order():
    rows = rows_of(run(urlconf="tests.citizens_urls"))
    assert rows[0] == ["accounts/login/", "login", "django", "tests.citizens_views.LoginView"]
    assert ["django/hello/", "django-hello", "django", "tests.citizens_views.django_hello"] in rows
    assert ["django/protected/", "django-protected", "django", "tests.citizens_views.django_protected"] in rows
    assert ["citizens/hello/", "hello", "lifted", "tests.citizens_views.hello"] in rows
    assert ["citizens/csrf/view/", "csrf-view", "lifted", "tests.citizens_views.CsrfView"] in rows
    from tests import citizens_urls

    assert [row[0] for row in rows] == [str(p.pattern) for p in citizens_urls.urlpatterns]


def test_json_format_and_unnamed_patterns():
    rows = json.loads(run("--format", "json"))  # ROOT_URLCONF: tests.urls
    by_pattern = {row["pattern"]: row for row in rows}
    assert by_pattern["hello/"] == {
        "pattern": "hello/",
        "name": "hello",
        "served_by": "lifted",
        "handler": "tests.views.hello",
    }
    assert by_pattern["items/<int:pk>/edit/"]["name"] == "items:item-edit"
    assert by_pattern["items/<int:pk>/edit/"]["served_by"] == "django"
    assert by_pattern["errors/none/"]["name"] == ""
    assert by_pattern["django-async/"]["served_by"] == "django"  # @keep_in_django


def test_routes_added_to_the_aiohttp_application(settings):
    settings.AIODJANGO_APPLICATION = "tests.citizens_views.application_with_an_extra_route"
    settings.ROOT_URLCONF = "tests.citizens_urls"
    rows = json.loads(run("--format", "json"))
    assert rows[-1] == {
        "pattern": "/extra/{name}/ [GET]",
        "name": "extra",
        "served_by": "aiohttp",
        "handler": "tests.citizens_views.hello",
    }


def test_errors_name_the_thing_to_change(settings):
    with pytest.raises(CommandError, match="no_such_module"):
        run(urlconf="tests.no_such_module")
    settings.AIODJANGO_APPLICATION = "tests.no_such_module.app"
    with pytest.raises(CommandError, match="AIODJANGO_APPLICATION"):
        run()


def test_parser():
    parser = Command().create_parser("manage.py", "aioroutes")
    options = parser.parse_args(["--urlconf", "x.urls", "--format", "json"])
    assert (options.urlconf, options.format) == ("x.urls", "json")
    assert parser.parse_args([]).format == "text"
    with pytest.raises(CommandError):
        parser.parse_args(["--format", "yaml"])


def test_manage_py_for_real():
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "django", "aioroutes", "--urlconf", "tests.citizens_urls"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = rows_of(result.stdout)
    assert ["citizens/ws/echo/", "echo-ws", "lifted", "tests.citizens_views.echo_ws"] in rows
