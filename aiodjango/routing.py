"""Lifting coroutine views of the Django URLconf into aiohttp routes.

A lifted view becomes a :class:`LiftedResource` in the aiohttp router.  It
answers a path only when Django's ``resolve()`` would pick its view for that
path: its own chain of patterns must match, and none of the views listed
before it that could share a path with it may match.  Which earlier views
"could share a path" is worked out once, at start-up, from literal prefixes,
so a request pays for aiohttp's indexed lookup plus a few regex matches, at
any URLconf size.  Everything else reaches :class:`FallbackResource`, which
aiohttp consults after every other route, and goes to Django.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable, Iterable, Optional

from aiohttp import web
from aiohttp.abc import AbstractView
from aiohttp.web_urldispatcher import (
    AbstractResource,
    ResourceRoute,
    UrlMappingMatchInfo,
)
from asgiref.sync import iscoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLResolver, reverse
from django.urls.resolvers import ResolverMatch
from yarl import URL

from .urlconf import Endpoint, Match, walk

logger = logging.getLogger("aiodjango.routing")

_NO_MATCH: tuple[None, set[str]] = (None, set())

_KEEP_ATTR = "_aiodjango_keep_in_django"


def keep_in_django(view: Callable[..., Any]) -> Callable[..., Any]:
    """Keep a coroutine view in Django: it is called by Django, not lifted.

    Use it for Django-native async views, ``async def view(request, **kwargs)``
    that take an ``HttpRequest`` and return an ``HttpResponse``.
    """
    setattr(view, _KEEP_ATTR, True)
    return view


def lift_kind(callback: Any) -> Optional[str]:
    """``"view"`` for an aiohttp class-based view, ``"function"`` for a
    coroutine callable, ``None`` for what stays in Django."""
    if getattr(callback, _KEEP_ATTR, False) or hasattr(callback, "view_class"):
        # keep_in_django, or Django's own View.as_view(): never lifted.
        return None
    if isinstance(callback, type):
        return "view" if issubclass(callback, AbstractView) else None
    func = callback
    while isinstance(func, functools.partial):
        if getattr(func, _KEEP_ATTR, False):
            return None
        func = func.func
    if getattr(func, _KEEP_ATTR, False):
        return None
    if iscoroutinefunction(func) or inspect.iscoroutinefunction(func):
        return "function"
    if not (inspect.isfunction(func) or inspect.ismethod(func)):
        call = getattr(type(func), "__call__", None)
        if call is not None and (iscoroutinefunction(call) or inspect.iscoroutinefunction(call)):
            return "function"
    return None


def check_signature(endpoint: Endpoint) -> None:
    """A lifted function must be callable with one request argument."""
    callback = endpoint.callback
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # builtins and the like: can't tell
        return
    try:
        signature.bind(None)
    except TypeError:
        raise ImproperlyConfigured(
            f"The coroutine view {endpoint.lookup_str} (URL pattern {endpoint.route!r}) "
            f"is lifted to aiohttp but can't be called with a single request argument: "
            f"its signature is {signature}. A lifted view receives one "
            f"aiohttp.web.Request and reads URL values from request.match_info. "
            f"If it is a Django view taking (request, **kwargs), decorate it with "
            f"@aiodjango.keep_in_django so that Django calls it."
        ) from None


class LiftedMatchInfo(UrlMappingMatchInfo):
    """``request.match_info`` of a lifted route.

    The mapping holds the captured named values as strings (aiohttp's
    convention); ``args`` holds positional regex groups; ``resolver_match``
    is Django's ``ResolverMatch`` for the request, built on first use.
    """

    __slots__ = ("_endpoint", "_results", "_path", "_resolver_match")

    def __init__(
        self,
        match_dict: dict[str, str],
        route: ResourceRoute,
        endpoint: Endpoint,
        results: Optional[list[Match]],
        path: str,
    ) -> None:
        super().__init__(match_dict, route)
        self._endpoint = endpoint
        self._results = results
        self._path = path
        self._resolver_match: Optional[ResolverMatch] = None

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    @property
    def resolver_match(self) -> ResolverMatch:
        if self._resolver_match is None:
            results = self._results
            if results is None:
                results = self._endpoint.match(self._path)
                if results is None:  # pragma: no cover - it matched a moment ago
                    raise RuntimeError(f"{self._path!r} no longer matches {self._endpoint!r}")
            self._resolver_match = self._endpoint.resolver_match(results, self._path)
        return self._resolver_match

    @property
    def args(self) -> tuple:
        return tuple(self.resolver_match.args)

    def __repr__(self) -> str:
        return f"<LiftedMatchInfo {dict(self)!r}: {self._endpoint!r}>"


class LiftedResource(AbstractResource):
    """One lifted view: answers exactly the paths Django would route to it."""

    def __init__(
        self,
        endpoint: Endpoint,
        earlier: Iterable[Endpoint],
        handler: Any,
        *,
        name: Optional[str] = None,
        urlconf: Any = None,
    ) -> None:
        super().__init__(name=name)
        self.endpoint = endpoint
        self.earlier = tuple(earlier)
        self.route_name = endpoint.name
        self._urlconf = urlconf
        self._route = ResourceRoute("*", handler, self)
        self._prefix = endpoint.prefix
        self._exact = endpoint.exact_path if not endpoint.language_dependent else None
        # aiohttp indexes resources by whole path segments: everything up to
        # the last "/" of the literal prefix is shared by every matching path.
        self._canonical = self._prefix.rpartition("/")[0] or "/"

    @property
    def canonical(self) -> str:
        return self._canonical

    def url_for(self, **parts: Any) -> URL:
        """The URL ``django.urls.reverse(name, kwargs=parts)`` gives."""
        if self.route_name is None:
            raise RuntimeError(f"The lifted view {self.endpoint.lookup_str} has no URL name.")
        path = reverse(self.route_name, kwargs=parts or None, urlconf=self._urlconf)
        return URL.build(path=path, encoded=True)

    async def resolve(self, request: web.Request) -> Any:
        return self.match(request.rel_url.path)

    def match(self, path: str) -> Any:
        exact = self._exact
        if exact is not None:
            if path != exact:
                return _NO_MATCH
            results = None
            match_dict: dict[str, str] = {}
        else:
            if not path.startswith(self._prefix):
                return _NO_MATCH
            results = self.endpoint.match(path)
            if results is None:
                return _NO_MATCH
            if len(results) == 2:
                match_dict = results[1][3]
            else:
                match_dict = {}
                for result in results:
                    match_dict.update(result[3])
        for other in self.earlier:
            if other.match(path) is not None:
                return _NO_MATCH  # Django picks a view listed before this one
        return LiftedMatchInfo(match_dict, self._route, self.endpoint, results, path), set()

    def add_prefix(self, prefix: str) -> None:
        raise RuntimeError("Lifted Django routes can't be moved under a prefix.")

    def get_info(self) -> dict[str, Any]:
        return {
            "route": self.endpoint.route,
            "view": self.endpoint.lookup_str,
            "name": self.route_name,
        }

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Any:
        return iter([self._route])

    def __repr__(self) -> str:
        return f"<LiftedResource {self.endpoint.route!r} -> {self.endpoint.lookup_str}>"


class FallbackResource(AbstractResource):
    """Every request no other route takes goes to Django.

    Indexed under ``/``, the last place aiohttp looks; the application's
    start-up moves it behind routes added to ``/`` later (see
    ``application._keep_fallback_last``).
    """

    def __init__(self, handler: Any, lifted: "LiftedRoutes", *, expect_handler: Any = None) -> None:
        super().__init__()
        self._route = ResourceRoute("*", handler, self, expect_handler=expect_handler)
        self._lifted = lifted

    @property
    def canonical(self) -> str:
        return "/"

    async def resolve(self, request: web.Request) -> Any:
        url = request.rel_url
        # aiohttp walks path segments with %2F and %25 still encoded, Django
        # sees them decoded: for such paths look the lifted routes up here.
        if "%" in url.raw_path and self._lifted.resources:
            found = self._lifted.find(url.path)
            if found is not None:
                return found, set()
        return UrlMappingMatchInfo({}, self._route), set()

    def url_for(self, *args: str, **kwargs: str) -> URL:
        raise RuntimeError("The Django fallback has no URL of its own; use django.urls.reverse().")

    def add_prefix(self, prefix: str) -> None:
        raise RuntimeError("The Django fallback can't be moved under a prefix.")

    def get_info(self) -> dict[str, Any]:
        return {"fallback": "django"}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Any:
        return iter([self._route])

    def __repr__(self) -> str:
        return "<FallbackResource -> Django>"


class LiftedRoutes:
    """The lifted views of a URLconf, as aiohttp resources, in Django's order."""

    def __init__(self, resources: list[LiftedResource], endpoints: list[Endpoint]) -> None:
        self.resources = resources
        self.endpoints = endpoints

    @classmethod
    def from_resolver(
        cls,
        resolver: URLResolver,
        make_handler: Callable[[Endpoint, str], Any],
        *,
        urlconf: Any = None,
    ) -> "LiftedRoutes":
        endpoints = list(walk(resolver))
        resources = []
        for endpoint in endpoints:
            kind = lift_kind(endpoint.callback)
            if kind is None:
                continue
            if kind == "function":
                check_signature(endpoint)
            earlier = [
                other
                for other in endpoints[: endpoint.index]
                if endpoint.could_share_a_path_with(other)
            ]
            resources.append(
                LiftedResource(
                    endpoint, earlier, make_handler(endpoint, kind), urlconf=urlconf
                )
            )
        return cls(resources, endpoints)

    def find(self, path: str) -> Optional[LiftedMatchInfo]:
        """The match of the lifted view Django would pick for ``path``, if any."""
        for resource in self.resources:
            found, _ = resource.match(path)
            if found is not None:
                return found
        return None

    def register(self, router: web.UrlDispatcher) -> None:
        """Add the resources to ``router``, named as Django names them."""
        named = getattr(router, "_named_resources", None)
        for resource in self.resources:
            router.register_resource(resource)
            name = resource.route_name
            if name is None or named is None or name in named:
                # Django allows one name on several patterns; reverse() picks
                # among them, and url_for() asks reverse(), so one entry will do.
                continue
            # aiohttp only accepts names made of identifiers ("async-hello"
            # contains a keyword); Django accepts any string.  The name is
            # only a key here, so it goes in directly instead of crashing.
            resource._name = name
            named[name] = resource
