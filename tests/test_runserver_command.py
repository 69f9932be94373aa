"""``runserver`` in-process: its parser against Django's, addrport, settings, checks."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web
from django.contrib.staticfiles.management.commands.runserver import (
    Command as StaticfilesRunserver,
)
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.commands.runserver import Command as CoreRunserver
from django.test import override_settings

from aiodjango.accesslog import AccessLogger, server_time
from aiodjango.application import APP_KEY
from aiodjango.management.commands import runserver
from aiodjango.management.commands.runserver import Command

OTHER = "tests.runserver_project.otherserver"
# Apps whose own checks run_checks() runs too.
BASE_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]


def parser_of(command_class):
    return command_class().create_parser("manage.py", "runserver")


def describe(parser):
    return {
        (tuple(action.option_strings), action.dest, action.nargs, action.const, action.default)
        for action in parser._actions
    }


# -- the same interface as Django's runserver --------------------------------


def test_command_chains_to_staticfiles_runserver():
    assert issubclass(Command, StaticfilesRunserver)


def test_every_option_of_djangos_runserver_is_accepted():
    ours = describe(parser_of(Command))
    assert describe(parser_of(StaticfilesRunserver)) <= ours
    assert describe(parser_of(CoreRunserver)) <= ours
    # Nothing of our own either: the same parser.
    assert ours == describe(parser_of(StaticfilesRunserver))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["8080"],
        ["0:8000"],
        ["0.0.0.0:8000"],
        ["[::1]:8000"],
        ["localhost:8000"],
        ["-6"],
        ["--ipv6", "8000"],
        ["--noreload", "--nothreading"],
        ["--nostatic"],
        ["--insecure"],
        ["--skip-checks"],
        ["--no-color", "--force-color", "--settings=tests.settings", "--pythonpath=."],
    ],
)
def test_options_parse_as_djangos(argv):
    ours = vars(parser_of(Command).parse_args(argv))
    assert ours == vars(parser_of(StaticfilesRunserver).parse_args(argv))


class Recording(Command):
    """Stops before serving: records what ``handle()`` worked out."""

    def run(self, **options):
        self.ran_with = options


@pytest.mark.parametrize(
    ("argv", "addr", "port", "ipv6"),
    [
        ([], "127.0.0.1", "8000", False),
        (["8080"], "127.0.0.1", "8080", False),
        (["0:8000"], "0", "8000", False),
        (["[::1]:8000"], "::1", "8000", True),
        (["localhost:8001"], "localhost", "8001", False),
        (["-6"], "::1", "8000", True),
        (["-6", "localhost:8000"], "localhost", "8000", True),
    ],
)
def test_addrport_forms(argv, addr, port, ipv6):
    command = Recording()
    call_command(command, *argv)
    assert (command.addr, command.port, command.use_ipv6) == (addr, port, ipv6)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["abc:xyz"], '"abc:xyz" is not a valid port number or address:port pair.'),
        (["127.0.0.1:"], '"127.0.0.1:" is not a valid port number or address:port pair.'),
        (["-6", "127.0.0.1:8000"], '"127.0.0.1" is not a valid IPv6 address.'),
    ],
)
def test_malformed_addrport_is_a_command_error(argv, message):
    with pytest.raises(CommandError) as excinfo:
        call_command(Recording(), *argv)
    assert str(excinfo.value) == message


def test_allowed_hosts_required_without_debug():
    with override_settings(DEBUG=False, ALLOWED_HOSTS=[]):
        with pytest.raises(CommandError, match="ALLOWED_HOSTS"):
            call_command(Recording())


# -- which runserver wins, and the checks that say so -------------------------


def aiodjango_warnings():
    return [m for m in run_checks() if m.id and m.id.startswith("aiodjango.W00")]


def test_no_warning_when_aiodjango_wins():
    assert aiodjango_warnings() == []


@override_settings(INSTALLED_APPS=[*BASE_APPS, "django.contrib.staticfiles", "aiodjango"])
def test_w001_aiodjango_below_staticfiles():
    (warning,) = aiodjango_warnings()
    assert warning.id == "aiodjango.W001"
    assert "below 'django.contrib.staticfiles'" in warning.msg
    assert warning.hint == (
        "Move 'aiodjango' above 'django.contrib.staticfiles' in INSTALLED_APPS."
    )


@override_settings(INSTALLED_APPS=[*BASE_APPS, OTHER, "django.contrib.staticfiles", "aiodjango"])
def test_w002_another_runserver_wins():
    (warning,) = aiodjango_warnings()
    assert warning.id == "aiodjango.W002"
    assert repr(OTHER) in warning.msg
    assert f"Move 'aiodjango' above {OTHER!r}" in warning.hint


@override_settings(INSTALLED_APPS=[*BASE_APPS, "aiodjango"])
def test_chains_to_djangos_runserver_without_staticfiles():
    assert runserver.next_runserver_command() is CoreRunserver
    assert aiodjango_warnings() == []


@override_settings(INSTALLED_APPS=[*BASE_APPS, "aiodjango", OTHER, "django.contrib.staticfiles"])
def test_chains_to_the_next_runserver_below_aiodjango():
    # As whitenoise's runserver_nostatic does: the next one down keeps its options.
    assert runserver.next_runserver_command().__module__ == f"{OTHER}.management.commands.runserver"
    assert aiodjango_warnings() == []


# -- what is served -------------------------------------------------------------


OPTIONS = {"use_threading": True, "use_static_handler": True, "insecure_serving": False}


def middleware_names(app):
    return [getattr(m, "__name__", "") for m in app.middlewares]


def test_serves_wsgi_application_lifted():
    app = Command().get_handler(**OPTIONS)
    assert isinstance(app, web.Application)
    assert app[APP_KEY].bridge.threads != 1
    assert "static_files" not in middleware_names(app)  # DEBUG is off in tests.settings


@override_settings(DEBUG=True)
def test_static_files_with_debug():
    app = Command().get_handler(**OPTIONS)
    assert middleware_names(app)[0] == "static_files"
    app = Command().get_handler(**{**OPTIONS, "use_static_handler": False})
    assert "static_files" not in middleware_names(app)


def test_static_files_with_insecure():
    app = Command().get_handler(**{**OPTIONS, "insecure_serving": True})
    assert middleware_names(app)[0] == "static_files"


def test_nothreading_runs_django_views_one_at_a_time():
    app = Command().get_handler(**{**OPTIONS, "use_threading": False})
    assert app[APP_KEY].bridge.threads == 1


project_app = web.Application()


def make_app():
    return web.Application()


@override_settings(AIODJANGO_APPLICATION="tests.test_runserver_command.project_app")
def test_aiodjango_application_setting():
    assert Command().get_handler(**OPTIONS) is project_app


@override_settings(AIODJANGO_APPLICATION="tests.test_runserver_command.make_app")
def test_aiodjango_application_setting_factory():
    assert isinstance(Command().get_handler(**OPTIONS), web.Application)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.no_such_module.app", "AIODJANGO_APPLICATION 'tests.no_such_module.app' could not be imported"),
        ("tests.test_runserver_command.no_such_app", "could not be imported"),
        ("tests.test_runserver_command.OTHER", "must name an aiohttp.web.Application"),
    ],
)
def test_aiodjango_application_errors_name_the_setting(path, message):
    with override_settings(AIODJANGO_APPLICATION=path):
        with pytest.raises(ImproperlyConfigured, match="AIODJANGO_APPLICATION") as excinfo:
            Command().get_handler(**OPTIONS)
    assert message in str(excinfo.value)


# -- access lines -----------------------------------------------------------------


def test_server_time_format():
    import time

    when = time.mktime((2026, 11, 25, 10, 0, 0, 0, 0, -1))
    assert server_time(when) == "25/Nov/2026 10:00:00"


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


async def test_access_lines_levels():
    async def ok(request):
        return web.Response(text="hello world")

    async def missing(request):
        raise web.HTTPNotFound()

    async def broken(request):
        return web.Response(status=503, text="x")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/missing", missing)
    app.router.add_get("/broken", broken)
    logger = logging.getLogger("django.server")  # propagate=False in Django's defaults
    handler = ListHandler()
    logger.addHandler(handler)
    runner = web.AppRunner(app, access_log_class=AccessLogger, access_log=logger)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            for path in ("/ok?a=1", "/missing", "/broken", "/ok"):
                async with session.request("HEAD" if path == "/ok" else "GET", path) as response:
                    await response.read()
        for _ in range(100):  # logged once the response is out: poll, bounded
            if len(handler.records) == 4:
                break
            await asyncio.sleep(0.01)
    finally:
        logger.removeHandler(handler)
        await runner.cleanup()
    assert [(r.getMessage(), r.levelname, r.status_code) for r in handler.records] == [
        ('"GET /ok?a=1 HTTP/1.1" 200 11', "INFO", 200),
        ('"GET /missing HTTP/1.1" 404 14', "WARNING", 404),
        ('"GET /broken HTTP/1.1" 503 1', "ERROR", 503),
        ('"HEAD /ok HTTP/1.1" 200 0', "INFO", 200),
    ]
    assert all(r.server_time for r in handler.records)
