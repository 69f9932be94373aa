"""``manage.py runserver``, serving the combined aiohttp + Django application.

The command subclasses the runserver that would win without aiodjango (the
next app below aiodjango in ``INSTALLED_APPS`` that has one: usually
``django.contrib.staticfiles``, else Django's own), so every option and check
of that command is kept, and only the server underneath changes.
"""

from __future__ import annotations

import errno
import io
import os
import re
import sys
from importlib import import_module
from typing import Any, Iterator

from aiohttp import web
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import OutputWrapper
from django.core.servers.basehttp import get_internal_wsgi_application
from django.db import connections
from django.utils import autoreload
from django.utils.module_loading import import_string

from aiodjango.conf import conf
from aiodjango.devstatic import static_files_middleware
from aiodjango.server import DevServer, bind_socket, track_websockets

APP_NAME = "aiodjango"


def lower_priority_apps() -> Iterator[str]:
    """The names of the apps listed below aiodjango, then ``django.core``."""
    below = False
    for app_config in apps.get_app_configs():
        if app_config.name == APP_NAME:
            below = True
        elif below:
            yield app_config.name
    yield "django.core"


def next_runserver_command() -> type:
    """The runserver ``Command`` that would win if aiodjango were not installed."""
    for app_name in lower_priority_apps():
        try:
            return import_module(f"{app_name}.management.commands.runserver").Command
        except (ImportError, AttributeError):
            continue
    raise ImportError("django.core.management.commands.runserver")  # pragma: no cover


RunserverCommand: Any = next_runserver_command()

_STARTING = re.compile(r"Starting (?:\w+ )?development server at ")

ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


def load_application() -> web.Application:
    """The application named by ``AIODJANGO_APPLICATION``."""
    path = conf.AIODJANGO_APPLICATION
    try:
        app = import_string(path)
    except ImportError as err:
        raise ImproperlyConfigured(
            f"AIODJANGO_APPLICATION {path!r} could not be imported: {err}"
        ) from err
    if not isinstance(app, web.Application) and callable(app):
        app = app()
    if not isinstance(app, web.Application):
        raise ImproperlyConfigured(
            f"AIODJANGO_APPLICATION {path!r} must name an aiohttp.web.Application "
            f"(or a function returning one), not {type(app).__name__}."
        )
    return app


class Command(RunserverCommand):
    help = (
        "Starts a lightweight web server for development, serving aiodjango's lifted "
        "aiohttp views and the Django views together."
    )

    server: DevServer | None = None

    def get_handler(self, *args: Any, **options: Any) -> web.Application:
        """The aiohttp application to serve (static files middleware included)."""
        if conf.AIODJANGO_APPLICATION:
            app = load_application()
        else:
            from aiodjango.application import APP_KEY, get_aio_application

            # --nothreading: Django views run one at a time, as in Django's server.
            threads = None if options.get("use_threading", True) else 1
            app = get_aio_application(get_internal_wsgi_application(), threads=threads)
            # A reload does not wait long for Django views still running.
            bridge = app[APP_KEY].bridge
            bridge.shutdown_timeout = min(bridge.shutdown_timeout, DevServer.shutdown_timeout)
        if self.serves_static(options):
            app.middlewares.insert(0, static_files_middleware())
        track_websockets(app)
        return app

    def serves_static(self, options: dict[str, Any]) -> bool:
        """As staticfiles' runserver decides (``--nostatic``, DEBUG, ``--insecure``)."""
        if not apps.is_installed("django.contrib.staticfiles"):
            return False
        if not options.get("use_static_handler", False):
            return False
        return bool(settings.DEBUG or options.get("insecure_serving", False))

    def run(self, **options: Any) -> None:
        try:
            super().run(**options)
        finally:
            # The autoreloader's sys.exit(3), SIGTERM or Ctrl-C in the main
            # thread: stop the server in django-main-thread cleanly first.
            server = self.server
            if server is not None:
                server.stop(timeout=server.shutdown_timeout + 4)

    def inner_run(self, *args: Any, **options: Any) -> None:
        # If an exception was silenced in ManagementUtility.execute in order
        # to be raised in the child process, raise it now.
        autoreload.raise_last_exception()

        # 'shutdown_message' is a stealth option.
        shutdown_message = options.get("shutdown_message", "")

        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        # Need to check migrations here, so can't use the
        # requires_migrations_check attribute.
        self.check_migrations()
        # Close all connections opened during migration checking.
        for conn in connections.all(initialized_only=True):
            conn.close()

        try:
            app = self.get_handler(*args, **options)
            sock = bind_socket(self.addr, int(self.port), ipv6=self.use_ipv6)
            self.server = DevServer(app, sock)
            self.on_bind(sock.getsockname()[1])
            self.server.serve()
        except OSError as e:
            # Use helpful error messages instead of ugly tracebacks.
            self.stderr.write("Error: %s" % ERRORS.get(e.errno, e))
            self.stdout.flush()
            self.stderr.flush()
            # Need to use an OS exit because sys.exit doesn't work in a thread
            os._exit(1)
        except KeyboardInterrupt:
            pass
        # Stopped: by Ctrl-C, or from the main thread (see run()).
        if shutdown_message:
            self.stdout.write(shutdown_message)
        sys.exit(0)

    def on_bind(self, server_port: int) -> None:
        """Django's banner and warning, naming aiodjango's server."""
        stdout = self.stdout
        buffer = io.StringIO()
        self.stdout = OutputWrapper(buffer)
        try:
            super().on_bind(server_port)
        finally:
            self.stdout = stdout
        banner = _STARTING.sub("Starting aiodjango development server at ", buffer.getvalue())
        stdout.write(banner, ending="")
        stdout.flush()
