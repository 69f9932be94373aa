"""``manage.py aioroutes``: the routes of the combined application, in the order they are tried.

Each URL pattern of the Django URLconf, its name, who serves it (``lifted``:
aiohttp calls the view; ``django``: the WSGI fallback does) and the view's
dotted path; then routes added to the aiohttp application directly.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from aiodjango.conf import conf
from aiodjango.routing import FallbackResource, LiftedResource, lift_kind
from aiodjango.urlconf import dotted_path

COLUMNS = ("pattern", "name", "served_by", "handler")
HEADINGS = ("PATTERN", "NAME", "SERVED BY", "HANDLER")


def handler_path(callback: Any) -> str:
    """The dotted path of a view; a Django class-based view is named by its class."""
    view_class = getattr(callback, "view_class", None)
    if isinstance(view_class, type):
        return f"{view_class.__module__}.{view_class.__qualname__}"
    return dotted_path(callback)


def route_rows(app: web.Application) -> list[dict[str, str]]:
    """One row per URL pattern of ``app`` (built by ``get_aio_application()``), then per extra route."""
    from aiodjango.application import APP_KEY

    try:
        state = app[APP_KEY]
    except KeyError:
        raise CommandError(
            "The application has no aiodjango routes: build it with "
            "aiodjango.get_aio_application()."
        ) from None
    rows = []
    for endpoint in state.routes.endpoints:
        rows.append(
            {
                "pattern": endpoint.route,
                "name": endpoint.name or "",
                "served_by": "lifted" if lift_kind(endpoint.callback) else "django",
                "handler": handler_path(endpoint.callback),
            }
        )
    for resource in app.router.resources():
        if isinstance(resource, (LiftedResource, FallbackResource)):
            continue
        info = resource.get_info()
        pattern = info.get("path") or info.get("formatter") or info.get("prefix") or resource.canonical
        for route in resource:
            rows.append(
                {
                    "pattern": f"{pattern} [{route.method}]" if route.method != "*" else pattern,
                    "name": resource.name or "",
                    "served_by": "aiohttp",
                    "handler": dotted_path(route.handler),
                }
            )
    return rows


def format_table(rows: list[dict[str, str]]) -> str:
    widths = [
        max([len(heading)] + [len(row[column]) for row in rows])
        for column, heading in zip(COLUMNS, HEADINGS)
    ]
    lines = []
    for values in [HEADINGS] + [tuple(row[c] for c in COLUMNS) for row in rows]:
        cells = [value.ljust(width) for value, width in zip(values, widths)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Lists the routes of the combined aiohttp application: each URL pattern, its name, "
        "whether aiohttp (lifted) or Django serves it, and the view's dotted path."
    )
    requires_system_checks: Any = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--urlconf",
            help="List this URLconf (a dotted module path) instead of ROOT_URLCONF.",
        )
        parser.add_argument(
            "--format",
            choices=("text", "json"),
            default="text",
            help="Output format (default: an aligned table).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        app = self.load(options["urlconf"])
        rows = route_rows(app)
        if options["format"] == "json":
            self.stdout.write(json.dumps(rows, indent=2))
            return
        self.stdout.write(format_table(rows))
        self.stdout.write("Any other path goes to Django (the WSGI fallback).")

    def load(self, urlconf: str | None) -> web.Application:
        try:
            if urlconf is None and conf.AIODJANGO_APPLICATION:
                from aiodjango.management.commands.runserver import load_application

                return load_application()
            from aiodjango import get_aio_application

            return get_aio_application(lambda environ, start_response: [], urlconf=urlconf)
        except (ImproperlyConfigured, ImportError) as exc:
            raise CommandError(str(exc)) from exc
