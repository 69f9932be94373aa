"""Walking a Django URLconf: every view as a chain of Django patterns, in Django's order.

This module knows Django's URL resolution and nothing of aiohttp.  Each view
of the URLconf becomes an :class:`Endpoint`: the chain of patterns Django
walks to reach it (root resolver, ``include()`` levels, the view's own
pattern), with a matcher per pattern that behaves exactly as the pattern's
own ``match()``.  From the chain it derives what an index needs: the literal
prefix every matching path starts with, and the exact path when there is only
one.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Iterator, Optional, Tuple

from django.conf import settings
from django.urls import URLPattern, URLResolver
from django.urls.resolvers import (
    LocalePrefixPattern,
    RegexPattern,
    ResolverMatch,
    RoutePattern,
)
from django.utils import translation

try:  # Python 3.11+
    import re._constants as sre_constants
    import re._parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

# A matcher's result: (rest of the path, positional args, kwargs after
# converters, captured values as the strings found in the path).
Match = Tuple[str, tuple, dict, dict]
Matcher = Callable[[str], Optional[Match]]

_AT_BEGINNINGS = {sre_constants.AT_BEGINNING, sre_constants.AT_BEGINNING_STRING}


def _literal_prefix(regex: str, is_endpoint: bool) -> tuple[str, bool, bool]:
    """Return ``(prefix, anchored, exact)`` for a pattern's regex.

    ``prefix`` is a literal every match starts with (when ``anchored``);
    ``exact`` means the regex matches that literal and nothing else.
    Anything the parser can't vouch for gives ``("", False, False)``.
    """
    try:
        parsed = sre_parse.parse(regex)
    except Exception:  # pragma: no cover - Django compiled it already
        return "", False, False
    if parsed.state.flags & re.IGNORECASE:
        return "", False, False
    items = list(parsed)
    if not items or items[0][0] is not sre_constants.AT or items[0][1] not in _AT_BEGINNINGS:
        return "", False, False
    chars = []
    index = 1
    while index < len(items) and items[index][0] is sre_constants.LITERAL:
        chars.append(chr(items[index][1]))
        index += 1
    rest = items[index:]
    if not rest:
        exact = not is_endpoint  # a resolver consumes exactly the literal
    elif len(rest) == 1 and rest[0] == (sre_constants.AT, sre_constants.AT_END_STRING):
        exact = True
    elif len(rest) == 1 and rest[0] == (sre_constants.AT, sre_constants.AT_END):
        # Endpoints ending in "$" are matched with fullmatch() by Django.
        exact = is_endpoint and regex.endswith("$")
    else:
        exact = False
    return "".join(chars), True, exact


def _route_matcher(pattern: RoutePattern) -> Matcher:
    regex = pattern.regex
    search = regex.search
    converters = pattern.converters
    if not converters:

        def match(path: str) -> Optional[Match]:
            found = search(path)
            if found is None:
                return None
            return path[found.end() :], (), {}, {}

        return match

    def match_converted(path: str) -> Optional[Match]:
        found = search(path)
        if found is None:
            return None
        raw = found.groupdict()
        kwargs = {}
        for key, value in raw.items():
            try:
                kwargs[key] = converters[key].to_python(value)
            except ValueError:
                return None
        return path[found.end() :], (), kwargs, raw

    return match_converted


def _regex_matcher(pattern: RegexPattern) -> Matcher:
    regex = pattern.regex
    use_fullmatch = pattern._is_endpoint and regex.pattern.endswith("$")
    find = regex.fullmatch if use_fullmatch else regex.search

    def match(path: str) -> Optional[Match]:
        found = find(path)
        if found is None:
            return None
        kwargs = found.groupdict()
        if kwargs:
            kwargs = {k: v for k, v in kwargs.items() if v is not None}
            return path[found.end() :], (), kwargs, kwargs
        return path[found.end() :], found.groups(), {}, {}

    return match


def _generic_matcher(pattern: Any) -> Matcher:
    """Any other pattern (translated, locale prefix, custom): ask the pattern itself."""

    def match(path: str) -> Optional[Match]:
        found = pattern.match(path)
        if not found:
            return None
        rest, args, kwargs = found
        return rest, tuple(args), kwargs, {k: str(v) for k, v in kwargs.items()}

    return match


class Level:
    """One pattern of a chain, with its matcher and what an index may assume."""

    __slots__ = ("pattern", "match", "prefix", "anchored", "exact", "language_dependent")

    def __init__(self, pattern: Any, is_endpoint: bool) -> None:
        self.pattern = pattern
        self.language_dependent = False
        if type(pattern) is RoutePattern and isinstance(pattern._route, str):
            self.match = _route_matcher(pattern)
            route = pattern._route
            if pattern.converters:
                self.prefix, self.anchored, self.exact = route.split("<", 1)[0], True, False
            else:
                self.prefix, self.anchored, self.exact = route, True, True
        elif type(pattern) is RegexPattern and isinstance(pattern._regex, str):
            self.match = _regex_matcher(pattern)
            self.prefix, self.anchored, self.exact = _literal_prefix(pattern._regex, is_endpoint)
        else:
            self.match = _generic_matcher(pattern)
            self.prefix, self.anchored, self.exact = "", False, False
            self.language_dependent = isinstance(pattern, LocalePrefixPattern) or not isinstance(
                getattr(pattern, "_route", getattr(pattern, "_regex", "")), str
            )


class Endpoint:
    """A view of the URLconf, reached through a chain of resolvers.

    ``match(path)`` answers as Django's ``resolve()`` would for this view
    alone; ``resolver_match(...)`` builds the ``ResolverMatch`` Django builds.
    """

    def __init__(
        self,
        urlpattern: URLPattern,
        resolvers: tuple[URLResolver, ...],
        index: int,
        language: Callable[[str], str],
    ) -> None:
        self.urlpattern = urlpattern
        self.resolvers = resolvers  # root first
        self.index = index  # position in Django's order
        self._language = language
        levels = [Level(r.pattern, False) for r in resolvers]
        levels.append(Level(urlpattern.pattern, True))
        self.levels = tuple(levels)
        self.matchers = tuple(level.match for level in levels)
        self.language_dependent = any(level.language_dependent for level in levels)

        # The literal prefix of every matching path, and the exact path if
        # the chain is literal all the way down.
        prefix = ""
        exact: Optional[str] = None
        for position, level in enumerate(levels):
            if not level.anchored:
                break
            prefix += level.prefix
            if not level.exact:
                break
            if position == len(levels) - 1:
                exact = prefix
        self.prefix = prefix
        self.exact_path = exact

        self.route = _join_routes(resolvers[1:], urlpattern)
        self.namespaces = [r.namespace for r in resolvers if r.namespace]
        name = urlpattern.name
        self.name = ":".join(self.namespaces + [name]) if name else None

    @property
    def callback(self) -> Any:
        return self.urlpattern.callback

    def __repr__(self) -> str:
        return f"<Endpoint {self.route!r} -> {self.lookup_str}>"

    @property
    def lookup_str(self) -> str:
        return dotted_path(self.callback)

    def match(self, path: str) -> Optional[list[Match]]:
        """The per-level matches if Django would reach this view for ``path``."""
        if self.language_dependent:
            with translation.override(self._language(path)):
                return self._match(path)
        return self._match(path)

    def _match(self, path: str) -> Optional[list[Match]]:
        results = []
        for matcher in self.matchers:
            found = matcher(path)
            if found is None:
                return None
            path = found[0]
            results.append(found)
        return results

    def resolver_match(self, results: list[Match], path: str) -> ResolverMatch:
        """Build the ``ResolverMatch`` that ``django.urls.resolve()`` returns."""
        if self.language_dependent:
            with translation.override(self._language(path)):
                return self._resolver_match(results)
        return self._resolver_match(results)

    def _resolver_match(self, results: list[Match]) -> ResolverMatch:
        urlpattern = self.urlpattern
        _, args, captured, _ = results[-1]
        kwargs = {**captured, **urlpattern.default_args}
        extra = dict(urlpattern.default_args)
        route = str(urlpattern.pattern)
        app_names: list[Any] = []
        namespaces: list[Any] = []
        child: Any = urlpattern
        for resolver, (_, r_args, r_kwargs, _) in zip(
            reversed(self.resolvers), reversed(results[:-1])
        ):
            merged = {**r_kwargs, **resolver.default_kwargs}
            merged.update(kwargs)
            if not merged:
                args = tuple(r_args) + tuple(args)
            kwargs = merged
            if isinstance(child, URLResolver):
                route = _join_route(str(child.pattern), route)
            app_names.insert(0, resolver.app_name)
            namespaces.insert(0, resolver.namespace)
            extra = {**resolver.default_kwargs, **extra}
            child = resolver
        return ResolverMatch(
            urlpattern.callback,
            args,
            kwargs,
            urlpattern.pattern.name,
            app_names,
            namespaces,
            route,
            None,
            captured_kwargs=captured,
            extra_kwargs=extra,
        )

    def could_share_a_path_with(self, other: "Endpoint") -> bool:
        """False only when no path can match both this endpoint and ``other``."""
        if not (self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix)):
            return False
        if self.exact_path is not None and other.exact_path is not None:
            return self.exact_path == other.exact_path
        if self.exact_path is not None:
            return other._might_match(self.exact_path)
        if other.exact_path is not None:
            return self._might_match(other.exact_path)
        return True

    def _might_match(self, path: str) -> bool:
        try:
            return self.match(path) is not None
        except Exception:  # a converter with surprises: stay conservative
            return True


def _join_route(route1: str, route2: str) -> str:
    if not route1:
        return route2
    return route1 + (route2[1:] if route2.startswith("^") else route2)


def _join_routes(resolvers: tuple[URLResolver, ...], urlpattern: URLPattern) -> str:
    route = str(urlpattern.pattern)
    for resolver in reversed(resolvers):
        route = _join_route(str(resolver.pattern), route)
    return route


def dotted_path(callback: Any) -> str:
    """``module.qualname`` of a view, seeing through partials and instances."""
    func = getattr(callback, "view_class", callback)  # Django's View.as_view()
    while isinstance(func, functools.partial):
        func = func.func
    if not hasattr(func, "__qualname__") and not isinstance(func, type):
        func = type(func)
    module = getattr(func, "__module__", None) or "?"
    return f"{module}.{getattr(func, '__qualname__', repr(func))}"


def language_resolver() -> Callable[[str], str]:
    """How Django picks the language that locale-prefixed patterns see.

    With ``LocaleMiddleware`` the language comes from the path's prefix, as
    its ``process_request`` does; without it, ``LANGUAGE_CODE``.
    """
    default = settings.LANGUAGE_CODE
    if "django.middleware.locale.LocaleMiddleware" not in settings.MIDDLEWARE:
        return lambda path: default

    def language(path: str) -> str:
        return translation.get_language_from_path(path) or default

    return language


def walk(resolver: URLResolver) -> Iterator[Endpoint]:
    """Every view of ``resolver``'s URLconf, in the order Django tries them."""
    language = language_resolver()
    counter = iter(range(1 << 62))

    def visit(node: URLResolver, chain: tuple[URLResolver, ...]) -> Iterator[Endpoint]:
        for child in node.url_patterns:
            if isinstance(child, URLPattern):
                yield Endpoint(child, chain, next(counter), language)
            elif isinstance(child, URLResolver):
                yield from visit(child, chain + (child,))

    yield from visit(resolver, (resolver,))
