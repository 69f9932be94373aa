"""System checks for aiodjango (ids ``aiodjango.E0xx`` and ``aiodjango.W0xx``; never reused)."""

from __future__ import annotations

import functools
import os

from django.apps import apps
from django.core import checks
from django.core.management import find_commands


def runserver_winner() -> str | None:
    """The name of the installed app whose ``runserver`` command Django runs.

    As ``django.core.management.get_commands()`` decides: the first app in
    ``INSTALLED_APPS`` with a ``management/commands/runserver.py``.
    """
    for app_config in apps.get_app_configs():
        if app_config.name == "aiodjango" or "runserver" in find_commands(
            os.path.join(app_config.path, "management")
        ):
            return app_config.name
    return None


@checks.register
def check_runserver_order(app_configs=None, **kwargs):
    """aiodjango.W001 / W002: another app's runserver shadows aiodjango's."""
    winner = runserver_winner()
    if winner in (None, "aiodjango"):
        return []
    if winner == "django.contrib.staticfiles":
        return [
            checks.Warning(
                "'aiodjango' is listed below 'django.contrib.staticfiles' in INSTALLED_APPS, "
                "so 'manage.py runserver' runs staticfiles' server without aiodjango's "
                "lifted views.",
                hint="Move 'aiodjango' above 'django.contrib.staticfiles' in INSTALLED_APPS.",
                id="aiodjango.W001",
            )
        ]
    return [
        checks.Warning(
            f"The runserver command of {winner!r} overrides aiodjango's, so "
            "'manage.py runserver' does not serve aiodjango's lifted views.",
            hint=(
                f"Move 'aiodjango' above {winner!r} in INSTALLED_APPS to use aiodjango's "
                f"runserver, or run aiodjango under another server (gunicorn)."
            ),
            id="aiodjango.W002",
        )
    ]


def _django_decorator(callback) -> str | None:
    """The module of a Django decorator wrapping ``callback``, if any.

    Follows ``__wrapped__`` (``functools.wraps``) and looks at where each
    wrapper's code lives: ``wraps`` copies the view's ``__module__`` onto
    the wrapper, but not its globals.  The marker decorators aiodjango
    honours on lifted views (``csrf_exempt``, ``xframe_options_*``,
    ``csp_override``...) don't count.
    """
    from .policies.decorators import honoured_decorator

    func = callback
    seen = 0
    while func is not None and seen < 50:
        seen += 1
        while isinstance(func, functools.partial):
            func = func.func
        wrapped = getattr(func, "__wrapped__", None)
        if wrapped is None:
            return None
        module = getattr(func, "__globals__", {}).get("__name__", "")
        if (module == "django" or module.startswith("django.")) and honoured_decorator(func) is None:
            return module
        func = wrapped
    return None


@checks.register(checks.Tags.urls)
def check_django_decorated_coroutines(app_configs=None, **kwargs):
    """aiodjango.W010: a coroutine view wrapped by a Django decorator is lifted to aiohttp."""
    from django.urls import get_resolver

    from .routing import lift_kind
    from .urlconf import walk

    try:
        endpoints = list(walk(get_resolver()))
    except Exception:  # a broken URLconf: Django's own URL checks report it
        return []
    found = []
    for endpoint in endpoints:
        callback = endpoint.callback
        if lift_kind(callback) is None:
            continue
        module = _django_decorator(callback)
        if module is None:
            continue
        found.append(
            checks.Warning(
                f"The coroutine view {endpoint.lookup_str} (URL pattern {endpoint.route!r}) "
                f"is wrapped by a Django decorator (from {module}), but aiodjango lifts it "
                f"to aiohttp: it will be called with an aiohttp.web.Request, which Django's "
                f"decorators don't expect.",
                hint=(
                    "If it is a Django view (it takes an HttpRequest and returns an "
                    "HttpResponse), decorate it with @aiodjango.keep_in_django, above the "
                    "Django decorator. If it is an aiohttp handler, use aiodjango's "
                    "decorators instead (aiodjango.auth.login_required, "
                    "aiodjango.security.csrf_protect); Django's csrf_exempt, "
                    "login_not_required, xframe_options_* and csp_override are honoured "
                    "on lifted views."
                ),
                obj=endpoint.lookup_str,
                id="aiodjango.W010",
            )
        )
    return found


@checks.register(checks.Tags.security)
def check_middleware_on_lifted_views(app_configs=None, **kwargs):
    """aiodjango.W030 / W031 / E030: MIDDLEWARE entries lifted views bypass; AIODJANGO_MIDDLEWARE."""
    from .policies.registry import check_messages

    return check_messages()


@checks.register
def check_broadcast_settings(app_configs=None, **kwargs):
    """aiodjango.E050-E053: AIODJANGO_BROADCAST (shape, BACKEND, OPTIONS, LOCATION)."""
    from .broadcast.options import SETTING, problems

    return [checks.Error(p.message, hint=p.hint, obj=SETTING, id=p.id) for p in problems()]


@checks.register(checks.Tags.security)
def check_allowed_hosts(app_configs=None, **kwargs):
    """aiodjango.W011: ALLOWED_HOSTS is empty while DEBUG is off."""
    from django.conf import settings

    if settings.DEBUG or settings.ALLOWED_HOSTS:
        return []
    return [
        checks.Warning(
            "ALLOWED_HOSTS is empty and DEBUG is off: Django and aiodjango's lifted views "
            "answer every request with 400 Bad Request.",
            hint=(
                "List the host names the site is served under in ALLOWED_HOSTS, "
                "e.g. ALLOWED_HOSTS = ['www.example.com']."
            ),
            id="aiodjango.W011",
        )
    ]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@checks.register
def check_bridge_settings(app_configs=None, **kwargs):
    """aiodjango.E020-E026: the WSGI bridge's settings have values it cannot use."""
    from django.conf import settings

    found = []

    def bad(name, expected, example, id):
        found.append(
            checks.Error(
                f"{name} must be {expected}, got {getattr(settings, name)!r}.",
                hint=f"Set {name} to {example}, or remove it to use the default.",
                obj=name,
                id=id,
            )
        )

    threads = getattr(settings, "AIODJANGO_THREADS", None)
    if threads is not None and (not _is_int(threads) or threads < 1):
        bad("AIODJANGO_THREADS", "a positive integer or None", "e.g. 8", "aiodjango.E020")
    size = getattr(settings, "AIODJANGO_MAX_REQUEST_BODY_SIZE", None)
    if size is not None and (not _is_int(size) or size < 0):
        bad("AIODJANGO_MAX_REQUEST_BODY_SIZE", "a number of bytes (>= 0) or None",
            "e.g. 100 * 1024 * 1024, or None for no limit", "aiodjango.E021")
    spool = getattr(settings, "AIODJANGO_SPOOL_THRESHOLD", 0)
    if not _is_int(spool) or spool < 0:
        bad("AIODJANGO_SPOOL_THRESHOLD", "a number of bytes (>= 0)", "e.g. 1024 * 1024",
            "aiodjango.E022")
    timeout = getattr(settings, "AIODJANGO_SHUTDOWN_TIMEOUT", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        bad("AIODJANGO_SHUTDOWN_TIMEOUT", "a number of seconds (>= 0)", "e.g. 10",
            "aiodjango.E023")
    memory = getattr(settings, "AIODJANGO_REQUEST_BODY_MEMORY", None)
    if memory is not None and (not _is_int(memory) or memory < 0):
        bad("AIODJANGO_REQUEST_BODY_MEMORY", "a number of bytes (>= 0) or None",
            "e.g. 16 * 1024 * 1024 (0 spools every body, None holds any number in memory)",
            "aiodjango.E024")
    fields = getattr(settings, "AIODJANGO_MAX_REQUEST_FIELDS", 1)
    if not _is_int(fields) or fields < 1:
        bad("AIODJANGO_MAX_REQUEST_FIELDS", "a positive integer", "e.g. 100 (gunicorn's default)",
            "aiodjango.E025")
    body_timeout = getattr(settings, "AIODJANGO_REQUEST_BODY_TIMEOUT", None)
    if body_timeout is not None and (
        isinstance(body_timeout, bool) or not isinstance(body_timeout, (int, float))
        or not body_timeout > 0
    ):
        bad("AIODJANGO_REQUEST_BODY_TIMEOUT", "a number of seconds (> 0) or None",
            "e.g. 300, or None for no limit", "aiodjango.E026")
    return found


@checks.register
def check_db_threads(app_configs=None, **kwargs):
    """aiodjango.E010 / E011: the database threads of lifted views are misconfigured."""
    from django.core.exceptions import ImproperlyConfigured

    from .db import max_threads, wait_timeout

    found = []
    for read, name, hint, id in (
        (max_threads, "AIODJANGO_DB_THREADS",
         "Set AIODJANGO_DB_THREADS to the most database threads lifted views may use at once "
         "per process (each may hold one connection per database, kept under CONN_MAX_AGE), "
         "e.g. 8, or remove it for the default.", "aiodjango.E010"),
        (wait_timeout, "AIODJANGO_DB_TIMEOUT",
         "Set AIODJANGO_DB_TIMEOUT to how long a lifted view may wait for a free database "
         "thread before its call fails with 503, e.g. 10, or remove it for the default.",
         "aiodjango.E011"),
    ):
        try:
            read()
        except ImproperlyConfigured as exc:
            found.append(checks.Error(str(exc), hint=hint, obj=name, id=id))
    return found
