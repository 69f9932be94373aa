"""Which ``MIDDLEWARE`` entries apply to lifted views, and how.

Every entry of ``MIDDLEWARE`` is one of:

* a middleware that ships with Django and that aiodjango applies to lifted
  views with its own code (:data:`ADAPTED`);
* one whose work lifted views do on first use, or don't need (:data:`SILENT`);
* an entry of ``AIODJANGO_MIDDLEWARE``, the project's say: ``"run"`` (run
  that middleware around lifted views, on the request's Django stand-in),
  ``"skip"`` (lifted views don't need it), or an aiohttp middleware (its
  dotted path, or the callable) doing the same job on the aiohttp side;
* none of these: not applied, and the system check ``aiodjango.W030`` names it.

``AIODJANGO_MIDDLEWARE`` also overrides aiodjango's own choice for Django's
middleware (``"skip"`` turns the CSRF check of lifted views off, say).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

#: ``AIODJANGO_MIDDLEWARE`` value: run that middleware around lifted views, on a stand-in.
RUN = "run"
#: ``AIODJANGO_MIDDLEWARE`` value: lifted views don't need that middleware.
SKIP = "skip"

#: Django's middleware applied to lifted views: its path -> aiodjango's adapter.
ADAPTED = {
    "django.middleware.security.SecurityMiddleware": "headers.SecurityPolicy",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "headers.HeaderPolicy",
    "django.middleware.csp.ContentSecurityPolicyMiddleware": "headers.CspPolicy",
    "django.middleware.locale.LocaleMiddleware": "headers.LocalePolicy",
    "django.middleware.csrf.CsrfViewMiddleware": "access.CsrfPolicy",
    "django.contrib.auth.middleware.LoginRequiredMiddleware": "access.LoginRequiredPolicy",
    "django.middleware.common.CommonMiddleware": "access.CommonPolicy",
    "django.middleware.gzip.GZipMiddleware": "content.GZipPolicy",
    "django.middleware.http.ConditionalGetMiddleware": "content.ConditionalGetPolicy",
}

#: Django's middleware whose work lifted views do on first use, or don't need.
SILENT = {
    "django.contrib.sessions.middleware.SessionMiddleware": (
        "the session is loaded on first use (aiodjango.auth.get_session) and saved after the view"
    ),
    "django.contrib.auth.middleware.AuthenticationMiddleware": (
        "the user is loaded on first use (aiodjango.auth.get_user)"
    ),
    "django.contrib.messages.middleware.MessageMiddleware": (
        "messages are stored and shown by Django views; lifted views don't read them"
    ),
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware": (
        "it answers paths that no view matches, and those go to Django"
    ),
    "django.contrib.redirects.middleware.RedirectFallbackMiddleware": (
        "it answers paths that no view matches, and those go to Django"
    ),
}

Action = Union[str, Callable[..., Any], None]


class Entry(NamedTuple):
    """One ``MIDDLEWARE`` entry: its position, its path, what lifted views get."""

    index: int
    path: str
    #: ``"adapted"``, ``"silent"``, ``RUN``, ``SKIP``, an aiohttp middleware,
    #: or ``None``: not applied.
    action: Action


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{type(value).__qualname__} {value!r}"


def project_mapping() -> dict[str, Action]:
    """``AIODJANGO_MIDDLEWARE``, validated; aiohttp middleware paths imported.

    Raises ``ImproperlyConfigured`` naming the setting and the entry.
    """
    from ..conf import conf

    mapping = conf.AIODJANGO_MIDDLEWARE
    if not isinstance(mapping, dict):
        raise ImproperlyConfigured(
            f"AIODJANGO_MIDDLEWARE must be a dict mapping MIDDLEWARE paths to 'run', 'skip' "
            f"or an aiohttp middleware, got {_describe(mapping)}."
        )
    resolved: dict[str, Action] = {}
    for path, value in mapping.items():
        if not isinstance(path, str):
            raise ImproperlyConfigured(
                f"AIODJANGO_MIDDLEWARE's keys are MIDDLEWARE paths (strings), got {_describe(path)}."
            )
        if value in (RUN, SKIP):
            resolved[path] = value
        elif isinstance(value, str):
            try:
                middleware = import_string(value)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"AIODJANGO_MIDDLEWARE[{path!r}] is {value!r}: neither 'run' nor 'skip', "
                    f"and not the dotted path of an aiohttp middleware ({exc})."
                ) from None
            if not callable(middleware):
                raise ImproperlyConfigured(
                    f"AIODJANGO_MIDDLEWARE[{path!r}] names {value!r}, which is not callable: "
                    f"an aiohttp middleware is 'async def middleware(request, handler)'."
                )
            resolved[path] = middleware
        elif callable(value):
            resolved[path] = value
        else:
            raise ImproperlyConfigured(
                f"AIODJANGO_MIDDLEWARE[{path!r}] must be 'run', 'skip', or an aiohttp "
                f"middleware (its dotted path, or the callable), got {_describe(value)}."
            )
    return resolved


def entries(mapping: Optional[dict[str, Action]] = None) -> list[Entry]:
    """Every ``MIDDLEWARE`` entry with what lifted views get from it, in order."""
    if mapping is None:
        mapping = project_mapping()
    found = []
    for index, path in enumerate(settings.MIDDLEWARE):
        if path in mapping:
            action: Action = mapping[path]
        elif path in ADAPTED:
            action = "adapted"
        elif path in SILENT:
            action = "silent"
        else:
            action = None
        found.append(Entry(index, path, action))
    return found


def adapter_class(path: str) -> Any:
    """aiodjango's adapter class for Django's middleware ``path``."""
    module, _, name = ADAPTED[path].rpartition(".")
    return import_string(f"aiodjango.policies.{module}.{name}")


def check_messages() -> list[Any]:
    """The system check's findings: aiodjango.E030, W030, W031."""
    from django.core import checks

    try:
        mapping = project_mapping()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint=(
                    "Map each MIDDLEWARE path to 'run' (run it around lifted views), 'skip' "
                    "(lifted views don't need it) or an aiohttp middleware. See "
                    "docs/middleware.rst."
                ),
                obj="AIODJANGO_MIDDLEWARE",
                id="aiodjango.E030",
            )
        ]
    from .generic import run_problem

    found = []
    for entry in entries(mapping):
        if entry.action == RUN:
            problem = run_problem(entry.path)
            if problem is not None:
                found.append(
                    checks.Error(
                        f"AIODJANGO_MIDDLEWARE[{entry.path!r}] is 'run', but {problem}.",
                        hint="Map it to 'skip', or to an aiohttp middleware doing the same job.",
                        obj="AIODJANGO_MIDDLEWARE",
                        id="aiodjango.E030",
                    )
                )
        if entry.action is not None:
            continue
        found.append(
            checks.Warning(
                f"The middleware {entry.path!r} in MIDDLEWARE does not apply to lifted views "
                f"(aiohttp handlers): their requests and responses bypass it.",
                hint=(
                    f"Say what lifted views need in AIODJANGO_MIDDLEWARE: "
                    f"{{{entry.path!r}: 'run'}} runs it around lifted views on a Django "
                    f"stand-in request, 'skip' declares that lifted views don't need it, "
                    f"or give an aiohttp middleware doing the same job. See "
                    f"docs/middleware.rst."
                ),
                obj=entry.path,
                id="aiodjango.W030",
            )
        )
    listed = set(settings.MIDDLEWARE)
    for path in mapping:
        if path not in listed:
            found.append(
                checks.Warning(
                    f"AIODJANGO_MIDDLEWARE names {path!r}, which is not in MIDDLEWARE: the "
                    f"entry has no effect.",
                    hint="Fix the path, or remove the entry from AIODJANGO_MIDDLEWARE.",
                    obj="AIODJANGO_MIDDLEWARE",
                    id="aiodjango.W031",
                )
            )
    return found
