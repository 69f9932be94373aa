"""Fuzzing URL lifting: random URLconfs, random paths, Django's ``resolve()`` as the oracle.

``tests/test_parity.py`` checks one hand-written URLconf; here hypothesis
builds the URLconfs too: ``path()`` and ``re_path()`` patterns (anchored or
not, converters, a custom converter that refuses values, groups, case
insensitivity), nested ``include()`` with and without namespaces, extra
kwargs, lifted and Django views mixed.  For every path the view that
answers must be the one ``resolve()`` picks: on the lifted routes directly
(``app[APP_KEY].routes.find(path)``) and through real HTTP, where slashes
and letters of the path are sometimes percent-encoded.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import types
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from django.urls import URLResolver, clear_url_caches, include, path, re_path, register_converter
from django.urls.converters import get_converters
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern
from hypothesis import HealthCheck, given, settings, strategies as st
from yarl import URL

from aiodjango import get_aio_application
from aiodjango.application import APP_KEY
from aiodjango.routing import lift_kind

from .conftest import REPORT, scaled

_ids = itertools.count()
OUTCOMES: "collections.Counter[str]" = collections.Counter()  # lifted / fallback / none


class EvenConverter:
    """A custom converter whose ``to_python`` refuses odd numbers."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        if int(value) % 2:
            raise ValueError("odd")
        return int(value)

    def to_url(self, value: Any) -> str:
        return str(value)


@pytest.fixture(scope="module", autouse=True)
def even_converter() -> Iterator[None]:
    if "rbeven" not in get_converters():
        register_converter(EvenConverter, "rbeven")
    yield
    clear_url_caches()


def make_view(lifted: bool) -> Any:
    tag = f"{'lifted' if lifted else 'sync'}_{next(_ids)}"
    if lifted:

        async def view(request: web.Request) -> web.Response:
            return web.Response(text=tag, headers={"X-View": tag})

    else:

        def view(request: Any, *args: Any, **kwargs: Any) -> Any:  # never called: the
            raise AssertionError("the fuzz WSGI app answers for Django")  # pragma: no cover

    view.__name__ = view.__qualname__ = tag
    return view


LITERALS = ["a", "b", "ab", "x-y", "AB", "é"]
CONVERTERS = ["int", "str", "slug", "path", "rbeven"]
REGEXES = [
    r"^a/$", r"^a/(\d+)/$", r"^(?P<w>[ab]+)/$", r"^b", r"a/$", r"^(a|b)/(x-y)?", r"^$",
    r"^a\.?b/", r"^(?P<n>\d+)/(?P<m>[a-z]+)/$", r"^x-y/(?:a|b)/$", r"(?i)^ab/$", r"^[ab]/",
    r"^ab/\Z", r"^é/$", r"^(?P<n>\d+)?/?$", r"^.*$",
]
PREFIX_REGEXES = [r"^a/", r"^b", r"^(?P<k>[ab])/", r"^(\d+)/", r"(?i)^x-y/", r"^"]


@st.composite
def routes(draw: Any, prefix: bool = False) -> str:
    parts = []
    for index in range(draw(st.integers(0 if not prefix else 1, 3))):
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(LITERALS)))
        else:
            parts.append(f"<{draw(st.sampled_from(CONVERTERS))}:v{index}_{next(_ids)}>")
    route = "/".join(parts)
    if route and (prefix or draw(st.booleans())):
        route += "/"
    return route


@st.composite
def leaves(draw: Any) -> Any:
    view = make_view(draw(st.booleans()))
    kwargs = {"extra": "yes"} if draw(st.integers(0, 5)) == 0 else None
    name = draw(st.sampled_from([None, None, "n1", "n2", "a-b"]))
    if draw(st.booleans()):
        return path(draw(routes()), view, kwargs, name=name)
    return re_path(draw(st.sampled_from(REGEXES)), view, kwargs, name=name)


@st.composite
def includes(draw: Any, children: Any) -> Any:
    patterns = draw(st.lists(children, min_size=1, max_size=4))
    namespace = draw(st.sampled_from([None, None, "ns1", "ns2"]))
    target = (patterns, namespace) if namespace else patterns
    if draw(st.booleans()):
        return path(draw(routes(prefix=True)), include(target, namespace=namespace))
    return re_path(draw(st.sampled_from(PREFIX_REGEXES)), include(target, namespace=namespace))


urlconfs = st.builds(
    lambda patterns: patterns,
    st.lists(st.recursive(leaves(), lambda children: includes(children), max_leaves=8), min_size=1, max_size=8),
)

SEGMENTS = LITERALS + ["1", "42", "7", "8", "", "a.b", "abc", "A", "ab1"]
SAMPLES = {  # values a converter or regex level may be given
    "int": ["0", "42", "7", "-1", "x"], "str": ["ab", "é", "a.b"], "slug": ["x-y", "a_b", "é"],
    "path": ["a/b", "a", "x-y/7/"], "rbeven": ["8", "7", "42"],
}
REGEX_SAMPLES = ["a/", "ab/", "b", "b/", "1/", "42/x/", "x-y/a/", "AB/", "é/", "a.b/", "", "/", "7/", "a/7/"]


def instantiate(patterns: list[Any], rnd: Any) -> str:
    """A path that walks one random chain of the URLconf (often matching it)."""
    out = ""
    while True:
        pattern = rnd.choice(patterns)
        if isinstance(pattern.pattern, RegexPattern):
            piece = rnd.choice(REGEX_SAMPLES)
        else:
            piece = str(pattern.pattern)
            for converter in CONVERTERS:
                while f"<{converter}:" in piece:
                    start = piece.index(f"<{converter}:")
                    piece = piece[:start] + rnd.choice(SAMPLES[converter]) + piece[piece.index(">", start) + 1 :]
        out += piece
        if not isinstance(pattern, URLResolver) or rnd.random() < 0.1:
            return "/" + out
        patterns = pattern.url_patterns


def probe_paths(patterns: list[Any], rnd: Any, count: int) -> list[str]:
    """Half walk the URLconf, half are random segments."""
    probes = []
    for _ in range(count):
        if rnd.random() < 0.5:
            probes.append(instantiate(patterns, rnd))
        else:
            parts = [rnd.choice(SEGMENTS) for _ in range(rnd.randint(0, 4))]
            probes.append("/" + "/".join(parts) + ("/" if rnd.random() < 0.6 else ""))
    return probes


def module_for(patterns: list[Any]) -> types.ModuleType:
    module = types.ModuleType(f"fuzz_urlconf_{next(_ids)}")
    module.urlpatterns = patterns  # type: ignore[attr-defined]
    return module


def django_pick(urlconf: types.ModuleType, path: str) -> Any:
    try:
        return URLResolver(RegexPattern(r"^/"), urlconf).resolve(path)
    except Resolver404:
        return None


def fallback_wsgi(urlconf: types.ModuleType) -> Any:
    """Django's side: says which view Django would call for PATH_INFO."""

    def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path_info = environ["PATH_INFO"].encode("latin-1").decode("utf-8", "surrogateescape")
        match = django_pick(urlconf, path_info)
        tag = "fallback:" + (match.func.__name__ if match is not None else "none")
        start_response("200 OK", [("X-View", tag), ("Content-Type", "text/plain")])
        return [tag.encode()]

    return application


def expected_tag(urlconf: types.ModuleType, path: str) -> str:
    match = django_pick(urlconf, path)
    if match is None:
        return "fallback:none"
    if lift_kind(match.func) is None:
        return "fallback:" + match.func.__name__
    return match.func.__name__


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2, thread_name_prefix="fuzz-wsgi") as pool:
        yield pool


FUZZ = settings(
    max_examples=int(scaled(100, 3000)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(patterns=urlconfs, rnd=st.randoms(use_true_random=False))
def test_lifted_routes_pick_what_resolve_picks(executor, patterns, rnd) -> None:
    urlconf = module_for(patterns)
    app = get_aio_application(fallback_wsgi(urlconf), urlconf=urlconf, executor=executor)
    routes = app[APP_KEY].routes
    for probe in probe_paths(patterns, rnd, 40):
        REPORT.fuzz("URL lifting: resolve() vs routes.find()")
        expected = django_pick(urlconf, probe)
        OUTCOMES[expected_tag(urlconf, probe).partition("_")[0]] += 1
        found = routes.find(probe)
        if expected is None or lift_kind(expected.func) is None:
            assert found is None, f"{probe!r}: lifted {found!r}, Django picks {expected!r}"
            continue
        assert found is not None, f"{probe!r}: Django picks lifted {expected!r}, aiodjango doesn't"
        got = found.resolver_match
        for attribute in ("func", "args", "kwargs", "url_name", "route", "namespaces", "app_names"):
            assert getattr(got, attribute) == getattr(expected, attribute), (probe, attribute)


def encode(path: str, slashes: list[bool], letters: list[bool]) -> str:
    """Percent-encode ``path`` for the wire; some '/' as %2F, some letters as %XX."""
    out = []
    slash_flags = iter(slashes + [False] * len(path))
    letter_flags = iter(letters + [False] * len(path))
    for index, char in enumerate(path):
        if char == "/" and index and next(slash_flags):
            out.append("%2F")
        elif char.isascii() and char.isalpha() and next(letter_flags):
            out.append("%%%02X" % ord(char))
        else:
            out.append(quote(char, safe="/-._~"))
    return "".join(out)


async def _over_http(app: web.Application, requests: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    results = []
    async with TestClient(TestServer(app)) as client:
        for wire, expected in requests:
            url = client.make_url("/").with_path(wire, encoded=True)
            async with client.session.get(URL(str(url), encoded=True), allow_redirects=False) as response:
                await response.read()
                results.append((wire, expected, response.headers.get("X-View", f"status {response.status}")))
    return results


@settings(
    max_examples=int(scaled(25, 600)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(patterns=urlconfs, rnd=st.randoms(use_true_random=False))
def test_the_answering_view_over_http_is_what_resolve_picks(executor, patterns, rnd) -> None:
    urlconf = module_for(patterns)
    app = get_aio_application(fallback_wsgi(urlconf), urlconf=urlconf, executor=executor)
    requests = []
    for probe in probe_paths(patterns, rnd, 15):
        slashes = [rnd.random() < 0.3 for _ in range(6)]
        letters = [rnd.random() < 0.1 for _ in range(12)]
        requests.append((encode(probe, slashes, letters), expected_tag(urlconf, probe)))
    for wire, expected, got in asyncio.run(_over_http(app, requests)):
        REPORT.fuzz("URL lifting over HTTP")
        assert got == expected, f"GET {wire}: answered by {got}, resolve() picks {expected}"


def test_the_fuzzing_reached_every_outcome() -> None:
    """The generated paths hit lifted views, Django views and 404s alike."""
    total = sum(OUTCOMES.values())
    if not total:
        pytest.skip("run with the fuzz tests above")
    REPORT.notes.append(
        "URL fuzz outcomes: "
        + ", ".join(f"{key} {count / total:.0%}" for key, count in sorted(OUTCOMES.items()))
    )
    for outcome in ("lifted", "fallback:sync", "fallback:none"):
        assert OUTCOMES[outcome] > total * 0.05, OUTCOMES
