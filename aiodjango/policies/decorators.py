"""Django's own view decorators that lifted views may carry, and which are honoured.

Since Django 5.0 these accept coroutine functions and keep them coroutine
functions, so aiodjango still lifts the view; each one either marks the view
for a middleware (``csrf_exempt``, ``login_not_required``) or marks the
response the view returns (``xframe_options_*``, ``csp_override``), and
aiodjango's policies read those marks as the middleware would
(:mod:`aiodjango.policies`).

Django's decorators wrap with ``functools.wraps``, which copies the view's
name onto the wrapper: a wrapper is recognised by its code object instead,
the one Django's decorator gives a probe coroutine (every wrapper a
decorator makes shares it).  Nothing is read before the first call.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Optional

from asgiref.sync import iscoroutinefunction

#: Honoured decorators that mark the response (an attribute, or an item set
#: with ``response[header] = value``): views carrying them take the exact
#: path of the response phase.
RESPONSE_MARKS = frozenset(
    {
        "xframe_options_exempt",
        "xframe_options_deny",
        "xframe_options_sameorigin",
        "csp_override",
        "csp_report_only_override",
    }
)


async def _probe(request: Any) -> Any:  # pragma: no cover - never awaited
    return None


def _candidates() -> list[tuple[str, Callable[[Any], Any]]]:
    from django.views.decorators import clickjacking
    from django.views.decorators.csrf import csrf_exempt

    found: list[tuple[str, Callable[[Any], Any]]] = [
        ("csrf_exempt", csrf_exempt),
        ("xframe_options_exempt", clickjacking.xframe_options_exempt),
        ("xframe_options_deny", clickjacking.xframe_options_deny),
        ("xframe_options_sameorigin", clickjacking.xframe_options_sameorigin),
    ]
    try:  # Django 6.0+
        from django.views.decorators import csp
    except ImportError:
        return found
    found.append(("csp_override", csp.csp_override({})))
    found.append(("csp_report_only_override", csp.csp_report_only_override({})))
    return found


@functools.lru_cache(maxsize=None)
def _wrapper_codes() -> dict[Any, str]:
    codes = {}
    for name, decorator in _candidates():
        wrapper = decorator(_probe)
        # Before Django 5.0 the wrapper is a plain function: the view is then
        # not a coroutine function any more, and is not lifted at all.
        if wrapper is not _probe and iscoroutinefunction(wrapper):
            codes[wrapper.__code__] = name
    return codes


def honoured_decorator(func: Any) -> Optional[str]:
    """The name of the honoured Django decorator whose wrapper ``func`` is, if any."""
    code = getattr(func, "__code__", None)
    if code is None:
        return None
    return _wrapper_codes().get(code)


def django_decorators(callback: Any) -> frozenset[str]:
    """The honoured Django decorators wrapping ``callback`` (following ``__wrapped__``)."""
    names = set()
    func = callback
    for _ in range(50):
        while isinstance(func, functools.partial):
            func = func.func
        name = honoured_decorator(func)
        if name is not None:
            names.add(name)
        func = getattr(func, "__wrapped__", None)
        if func is None:
            break
    return frozenset(names)


def quiet_header_items() -> None:
    """Silence aiohttp's warning about ``response["X-Frame-Options"] = ...``.

    ``xframe_options_deny`` / ``_sameorigin`` set the header that way; on an
    aiohttp response the item goes to its per-response storage, where aiohttp
    recommends ``web.ResponseKey`` keys (a warning aiohttp itself ignores by
    default, but test runners show).  aiodjango reads the item on purpose:
    the warning is silenced for Django's clickjacking decorators only.
    """
    try:
        from aiohttp.web import NotAppKeyWarning
    except ImportError:  # aiohttp < 3.9
        return
    warnings.filterwarnings(
        "ignore", category=NotAppKeyWarning, module=r"django\.views\.decorators\.clickjacking"
    )
