"""gunicorn's HTTP request corpus, through the bridge and through gunicorn.

Every ``tests/requests/{valid,invalid}/*.http`` file of the installed
gunicorn's sdist (fetched at test time, see ``tests/support/gunicorn_corpus.py``)
is sent as raw bytes to

* the bridge: ``tests/bridge_project`` under gunicorn's aiohttp worker, its
  catch-all sync Django view echoing the environ's string values and the bytes
  of ``wsgi.input`` (one pool thread, so that a request sent after a case is
  served after anything the case started);
* gunicorn serving the same view with the gunicorn settings the case's ``.py``
  sets (``cfg.set(...)``): the sync worker for one request, gthread (keep-alive)
  for a file holding several requests and for the invalid ones.

Valid files: the bridge takes every request of the file, and the view sees
the environ gunicorn gives (up to the allowed differences below) and the
method and body the ``.py`` expects.  Or the file is one of
:data:`KNOWN_REFUSED`: aiohttp's parser refuses it in some of the supported
aiohttp versions, and then the bridge answers 4xx or closes, never 5xx; what
it does take is still compared.  Invalid files: a 4xx or a closed connection,
the view never called; or one of :data:`ALLOWED_ACCEPTED`, which some aiohttp
versions take: the environ must then be sane, and equal to gunicorn's where
gunicorn's defaults take the request too.  In every case the view is called
exactly once per 2xx answer (a sentinel request after each case proves no call
is left pending).

Allowed environ differences (each justified; see also test_bridge_gunicorn.py):

* ``SERVER_SOFTWARE``: each server names itself.
* ``REQUEST_URI``: the bridge sets it (equal to ``RAW_URI``); gunicorn does not.
* ``SERVER_PORT``/``REMOTE_PORT``: different sockets; each checked against its own.
* ``CONTENT_LENGTH`` of a chunked request: the bridge reads the body before
  calling the app and gives its real length; gunicorn leaves the key out.
* Names with ``_`` under gunicorn's ``header_map="dangerous"``
  (``valid/040_compat``): gunicorn maps them when told to; the bridge always
  drops them, as gunicorn does by default.
* ``PATH_INFO`` of a CONNECT (authority-form target, no path), only reached
  under aiohttp 3.9: gunicorn gives the port, aiohttp ``/``.

Bugs this test found, fixed in the bridge: ``wsgi.url_scheme`` came from the
request target under aiohttp 3.9 and 3.10 (``https`` for ``GET https://...``
on a plain connection), and the 400 for ``HTTP/2.0`` had an ``HTTP/2.0``
status line.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from .support import wire
from .support.needs import unavailable
from .support.bridge_servers import BRIDGE_WORKER, Server, gunicorn, migrate, records
from .support.gunicorn_corpus import (
    Case,
    CorpusUnavailable,
    gunicorn_config,
    load_cases,
    load_expectation,
    load_http,
)

pytestmark = pytest.mark.slow

SETTLE = 10.0  # seconds a server gets to answer before the client half-closes
INCOMPLETE_SETTLE = 1.0  # the same for a request the file leaves incomplete
CLOSE_WAIT = 5.0  # then to close the connection


# -- what aiohttp refuses, what it accepts, and why -----------------------------------

NO_HOST = ("an HTTP/1.1 request without Host: RFC 9112 section 3.2 says a server MUST answer "
           "400, and aiohttp's parser does; gunicorn accepts it")
DUPLICATE_TE = ("Transfer-Encoding sent twice: aiohttp refuses repeated singleton headers "
                "(a request smuggling defence); gunicorn joins them")
LONG_FIELD = ("a header line over aiohttp's max_field_size (8190 bytes); gunicorn takes it only "
              "because the .py raises limit_request_field_size to 8210")
AUTHORITY_FORM = ("CONNECT with an authority-form target: aiodjango's fallback routes origin-form "
                  "paths only, so aiohttp 3.10+ answers 404 from its router; aiohttp 3.9 calls the "
                  "app, then ends its 200 without a body (a 2xx to CONNECT opens a tunnel)")
SPACE_BEFORE_COLON = ("whitespace between a field name and its colon: RFC 9112 section 5.1 says a "
                      "server MUST reject it with 400; gunicorn takes it only with strip_header_spaces")
UNKNOWN_METHOD = ("a method llhttp does not know (-BLARGH): aiohttp's C parser takes registered "
                  "methods only; gunicorn takes any token")
OBS_FOLD = ("obs-fold (a field value continued on the next line): RFC 9112 section 5.2 lets a "
            "server refuse it with 400, as aiohttp does; gunicorn takes it only with "
            "permit_obsolete_folding")
PROXY = ("the PROXY protocol: aiohttp does not speak it; gunicorn reads it because the .py sets "
         "proxy_protocol")
DATA_AFTER_CLOSE = ("a second request in the same read after an HTTP/1.0 request that ends the "
                    "connection: llhttp refuses the stream ('Data after Connection: close'); "
                    "gunicorn answers the first request and drops the rest")
TRUNCATED_BODY = ("the body in the .http file is shorter than its Content-Length (8599 of 17914 "
                  "bytes): the bridge waits for the rest and never calls the app with part of a "
                  "body; gunicorn calls it once the client half-closes, with wsgi.input cut short")

#: Valid files aiohttp refuses (a 4xx, or a close without an answer), in some
#: or all of the supported aiohttp versions (3.9 takes more of them).
KNOWN_REFUSED: dict[str, str] = {
    **{f"valid/{n}": NO_HOST for n in (
        "004", "005", "006", "007", "010", "011", "012", "013", "014", "018", "021", "022",
        "023", "025_line", "100",
    )},
    **{f"valid/{n}": DUPLICATE_TE for n in ("025", "029", "030")},
    "valid/019": DATA_AFTER_CLOSE,
    "valid/024": LONG_FIELD,
    "valid/026": LONG_FIELD,
    "valid/028": SPACE_BEFORE_COLON,
    "valid/031": UNKNOWN_METHOD,
    "valid/031compat": UNKNOWN_METHOD,
    "valid/031compat2": UNKNOWN_METHOD,
    "valid/099": TRUNCATED_BODY,
    "valid/compat_obs_fold": OBS_FOLD,
    "valid/compat_obs_fold_huge": OBS_FOLD,
    **{f"valid/pp_{n}": PROXY for n in ("01", "02", "04", "05")},
    "valid/rfc9112_target_authority_connect_01": AUTHORITY_FORM,
    "valid/rfc9112_target_authority_ipv6_01": AUTHORITY_FORM,
}

LONG_LINE = ("a 4112-byte request line: over gunicorn's limit_request_line (4094), within "
             "aiohttp's max_line_size (8190)")
FIELD_AT_LIMIT = ("a header line of 8189-8190 bytes: over gunicorn's limit_request_field_size "
                  "(8190, which counts the line differently), within aiohttp's max_field_size")
STRICTER_LIMIT = ("invalid only under a limit the .py makes stricter than gunicorn's default "
                  "(limit_request_fields=2, limit_request_field_size=10 or 98); gunicorn's "
                  "defaults accept it too")
SCHEME_HEADERS = ("X-Forwarded-Proto and X-Forwarded-Ssl that disagree: gunicorn refuses them when "
                  "it trusts them (forwarded_allow_ips='*'); the bridge never reads them "
                  "(wsgi.url_scheme stays that of the connection)")
ASTERISK_GET = ("GET *: RFC 9112 section 3.2.4 keeps the asterisk-form for OPTIONS; aiohttp 3.9 "
                "takes it with any method (PATH_INFO '*', as for OPTIONS *)")
HEADER_MAP_REFUSE = ("names with '_': gunicorn refuses them only with header_map='refuse'; by "
                     "default it drops them, as the bridge does")
HTTP10_CHUNKED = ("Transfer-Encoding in HTTP/1.0: RFC 9112 section 6.1 says to treat the framing "
                  "as faulty and close the connection after processing the message; aiohttp "
                  "de-chunks it (trailers discarded) and the connection is closed; gunicorn refuses")
FORBIDDEN_TRAILER = ("a Host field in the chunked trailer: aiohttp discards trailer fields, so it "
                     "never reaches the environ; gunicorn refuses (with a 500)")
LEADING_CRLFS = ("two empty lines before the request line: RFC 9112 section 2.2 says a server "
                 "SHOULD ignore at least one; aiohttp ignores both, gunicorn only one")

#: Invalid files the bridge may answer (in some or all of the supported
#: aiohttp versions), with a sane environ.
ALLOWED_ACCEPTED: dict[str, str] = {
    "invalid/006": LONG_LINE,
    "invalid/008": FIELD_AT_LIMIT,
    "invalid/017": FIELD_AT_LIMIT,
    "invalid/limit_header_default_01": FIELD_AT_LIMIT,
    "invalid/010": STRICTER_LIMIT,
    "invalid/011": STRICTER_LIMIT,
    "invalid/012": STRICTER_LIMIT,
    "invalid/019": SCHEME_HEADERS,
    "invalid/040": HEADER_MAP_REFUSE,
    "invalid/chunked_07": HEADER_MAP_REFUSE,
    "invalid/rfc9112_target_asterisk_non_options_01": ASTERISK_GET,
    "invalid/chunked_05": HTTP10_CHUNKED,
    "invalid/rfc9110_trailer_forbidden_host_01": FORBIDDEN_TRAILER,
    "invalid/rfc9112_leading_crlf_02": LEADING_CRLFS,
}


# -- parametrization: one test per corpus file ------------------------------------------


_corpus: list[Case] | CorpusUnavailable | None = None


def corpus() -> list[Case] | CorpusUnavailable:
    """The cases, downloaded at most once per test run (at collection)."""
    global _corpus
    if _corpus is None:
        try:
            _corpus = load_cases()
        except CorpusUnavailable as exc:
            _corpus = exc
    return _corpus


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    kind = metafunc.function.__name__.split("_")[1]  # test_valid_... / test_invalid_...
    cases = corpus()
    if isinstance(cases, CorpusUnavailable):
        params = [pytest.param(cases, id="corpus-unavailable")]
    else:
        params = [pytest.param(case, id=case.name) for case in cases if case.kind == kind]
    metafunc.parametrize("case", params)


def usable(case: Case | CorpusUnavailable) -> Case:
    if isinstance(case, CorpusUnavailable):
        unavailable(f"gunicorn's request corpus is unavailable: {case}")
    return case


# -- servers ----------------------------------------------------------------------------


class Servers:
    """The bridge, and gunicorn servers per (worker, settings), started on first use."""

    def __init__(self, folder: Path, stack: contextlib.ExitStack) -> None:
        self.folder = folder
        self.stack = stack
        self.started: dict[tuple[str, str], Server] = {}
        self.calls = folder / "calls-bridge.jsonl"
        self.bridge = stack.enter_context(gunicorn(
            "bridge", folder, "app", BRIDGE_WORKER,
            env={"AIODJANGO_THREADS": "1", "BRIDGE_CALLS": str(self.calls)},
        ))

    def gunicorn(self, worker: str, settings: dict[str, Any]) -> Server:
        key = (worker, json.dumps(settings, sort_keys=True, default=str))
        if key not in self.started:
            args = ["--threads", "1"] if worker == "gthread" else []
            if settings:
                config = gunicorn_config(settings, self.folder / f"gunicorn-{len(self.started)}.conf.py")
                args += ["-c", str(config)]
            self.started[key] = self.stack.enter_context(gunicorn(
                f"{worker}-{len(self.started)}", self.folder, "application", worker, *args,
                env={"BRIDGE_CALLS": str(self.folder / f"calls-{worker}-{len(self.started)}.jsonl")},
            ))
        return self.started[key]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    folder = tmp_path_factory.mktemp("bridge-corpus")
    migrate(folder)
    with contextlib.ExitStack() as stack:
        yield Servers(folder, stack)


# -- one exchange -----------------------------------------------------------------------


@dataclass
class Outcome:
    responses: list[wire.Response] = field(default_factory=list)
    closed: bool = False
    hung: bool = False  # neither answered nor closed, even after the client half-closed
    rest: bytes = b""
    raw: bytes = b""

    @property
    def statuses(self) -> list[int]:
        return [response.status for response in self.responses]

    def environ(self, index: int) -> dict[str, Any]:
        return json.loads(self.responses[index].body)


def incomplete(case: Case, expected: Any) -> bool:
    """Does the file end inside a request?  (Then only the client's half-close
    can end the exchange: gunicorn's corpus runs its parser to the end of the data.)"""
    if case.kind == "invalid":
        return getattr(expected, "__name__", "") in ("NoMoreData", "ChunkMissingTerminator")
    for request in expected:
        lengths = [value for name, value in request["headers"] if name.upper() == "CONTENT-LENGTH"]
        if lengths and lengths[0].isdigit() and len(request["body"]) < int(lengths[0]):
            return True
    return False


def send(port: int, data: bytes, want: int, methods: list[str], settle: float = SETTLE) -> Outcome:
    """Send ``data`` at once; read until ``want`` responses, a close, or ``settle``
    seconds; then half-close and read until the server closes (bounded)."""
    with wire.Connection(port, CLOSE_WAIT) as conn:
        conn.methods = list(methods)
        conn.send(data)
        deadline = time.monotonic() + settle
        while not conn.closed:
            read = wire.parse(conn.data, conn.methods, False)
            if len(read.responses) >= want and not read.rest:
                # Whatever else comes (a refusal, a close) comes at once.
                conn.quiet_for(0.2)
                break
            if not conn.read_some(deadline):
                break
        hung = False
        if not conn.closed:
            read = wire.parse(conn.data, conn.methods, False)
            if len(read.responses) < want or read.rest:
                conn.half_close()
                try:
                    conn.until_close(CLOSE_WAIT)
                except wire.Hang:
                    hung = True
        read = wire.parse(conn.data, conn.methods, conn.closed)
        return Outcome(read.responses, conn.closed, hung, read.rest, conn.data)


def view_calls(servers: Servers, data: bytes, want: int, methods: list[str],
               settle: float) -> tuple[Outcome, list[dict[str, Any]]]:
    """The bridge's outcome, and the echo view's calls it caused.

    A sentinel request on a new connection follows; with one pool thread it is
    served after anything the case started, so the calls recorded before it
    are all of the case's.
    """
    before = len(records(servers.folder, servers.calls.name))
    outcome = send(servers.bridge.port, data, want, methods, settle)
    sentinel = "/__sentinel__/" + uuid.uuid4().hex
    reply = wire.exchange(servers.bridge.port, wire.request("GET", sentinel, "Connection: close"))
    assert reply.status == 200, reply.head
    calls = [c["environ"] for c in records(servers.folder, servers.calls.name)[before:]]
    index = next(i for i, c in enumerate(calls) if c["PATH_INFO"] == sentinel)
    return outcome, calls[:index]


# -- checks -----------------------------------------------------------------------------


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z").match


def assert_sane(environ: dict[str, Any]) -> None:
    """What a WSGI app may rely on, whatever the request was."""
    for key, value in environ.items():
        if isinstance(value, str) and key != "input":
            assert not set(value) & {"\r", "\n", "\x00"}, (key, value)
    assert _TOKEN(environ["REQUEST_METHOD"]), environ["REQUEST_METHOD"]
    assert environ["SERVER_PROTOCOL"] in ("HTTP/1.0", "HTTP/1.1"), environ["SERVER_PROTOCOL"]
    assert environ["PATH_INFO"].startswith("/") or environ["PATH_INFO"] == "*", environ["PATH_INFO"]
    if "CONTENT_LENGTH" in environ:
        assert int(environ["CONTENT_LENGTH"]) == len(environ["input"].encode("latin-1")), environ


def assert_same_environ(ours: dict[str, Any], theirs: dict[str, Any], case: Case,
                        bridge_port: int, their_port: int) -> None:
    ours, theirs = dict(ours), dict(theirs)
    assert ours.pop("SERVER_SOFTWARE").startswith("Python/")
    assert theirs.pop("SERVER_SOFTWARE").startswith("gunicorn")
    assert ours.pop("REQUEST_URI") == ours["RAW_URI"]
    assert ours.pop("SERVER_PORT") == str(bridge_port)
    assert theirs.pop("SERVER_PORT") == str(their_port)
    assert ours.pop("REMOTE_PORT").isdigit() and theirs.pop("REMOTE_PORT").isdigit()
    if "chunked" in ours.get("HTTP_TRANSFER_ENCODING", "").lower():
        assert ours.pop("CONTENT_LENGTH") == str(len(ours["input"].encode("latin-1")))
        assert "CONTENT_LENGTH" not in theirs
    if ours["REQUEST_METHOD"] == "CONNECT":
        # An authority-form target has no path: gunicorn gives PATH_INFO the
        # port ("443"), aiohttp 3.9 gives "/" (and reads the tunnel as an
        # empty body); so Django resolves them differently.  (3.10+ never
        # calls the app: see KNOWN_REFUSED.)
        for key in ("PATH_INFO", "resolved"):
            ours.pop(key), theirs.pop(key)
        assert ours.pop("CONTENT_LENGTH", "0") == "0"
    if case.id == "valid/040_compat":  # header_map="dangerous"
        assert theirs.pop("HTTP_TRANSFER_ENCODING") == "tricked"
        assert theirs.pop("HTTP_CONTENT_LENGTH") == "-1E23"
    assert ours == theirs


def assert_expected(environ: dict[str, Any], expected: dict[str, Any]) -> None:
    """The method and the body gunicorn's ``.py`` says the request has."""
    assert environ["REQUEST_METHOD"] == expected["method"]
    body = expected["body"]
    if isinstance(body, str):
        body = body.encode("latin-1")
    assert environ["input"].encode("latin-1") == body


def describe(outcome: Outcome) -> str:
    return f"statuses {outcome.statuses}, closed {outcome.closed}, hung {outcome.hung}: {outcome.raw[:600]!r}"


# -- the tests ----------------------------------------------------------------------------


def test_valid_request(servers: Servers, case: Case) -> None:
    case = usable(case)
    data = load_http(case.http)
    expected, settings = load_expectation(case.py)
    methods = [e["method"] for e in expected]
    want = len(expected)
    worker = "sync" if want == 1 else "gthread"  # the sync worker closes after each response
    settle = INCOMPLETE_SETTLE if incomplete(case, expected) else SETTLE

    ours, calls = view_calls(servers, data, want, methods, settle)
    their_server = servers.gunicorn(worker, settings)
    theirs = send(their_server.port, data, want, methods, settle)

    assert theirs.responses and all(status == 200 for status in theirs.statuses), (
        f"gunicorn ({worker}, {settings}) does not take this valid request: {describe(theirs)}")
    assert not ours.hung, describe(ours)
    assert all(status < 500 for status in ours.statuses), describe(ours)
    # The view was called once per 2xx, with what gunicorn gives and the .py expects.
    assert len(calls) == sum(200 <= s < 300 for s in ours.statuses), (calls, describe(ours))
    for index, environ in enumerate(calls):
        assert_sane(environ)
        if index < len(expected):
            assert_expected(environ, expected[index])
        if index < len(theirs.responses):
            assert_same_environ(environ, theirs.environ(index), case, servers.bridge.port, their_server.port)

    taken = len(ours.responses) == want and all(r.status == 200 and r.complete for r in ours.responses)
    if not taken:
        # Only a known difference (which aiohttp versions may or may not show).
        assert case.id in KNOWN_REFUSED, f"{case.id}: the bridge does not take this valid request: {describe(ours)}"


def test_invalid_request(servers: Servers, case: Case) -> None:
    case = usable(case)
    data = load_http(case.http)
    expected, settings = load_expectation(case.py)
    settle = INCOMPLETE_SETTLE if incomplete(case, expected) else SETTLE

    ours, calls = view_calls(servers, data, 1, ["GET"], settle)
    theirs = send(servers.gunicorn("gthread", settings).port, data, 1, ["GET"], settle)

    # The corpus says invalid: gunicorn, with the case's settings, answers no 2xx.
    assert not any(200 <= s < 300 for s in theirs.statuses), describe(theirs)

    assert not ours.hung, f"neither refused nor closed: {describe(ours)}"
    for response in ours.responses:
        assert response.status < 500, describe(ours)
        status_line = response.head.split(b"\r\n")[0]
        assert response.version in (b"HTTP/1.0", b"HTTP/1.1"), f"{case.id}: status line {status_line!r}"
    accepted = sum(200 <= s < 300 for s in ours.statuses)
    assert len(calls) == accepted, (calls, describe(ours))

    if not accepted:
        assert ours.closed or any(400 <= s < 500 for s in ours.statuses), describe(ours)
        return
    # Taken: only a known difference (which aiohttp versions may or may not
    # show).  What the view saw is sane, and what gunicorn's defaults give
    # where they take the request too.
    assert case.id in ALLOWED_ACCEPTED, f"{case.id}: the bridge takes this invalid request: {describe(ours)}"
    defaults = servers.gunicorn("gthread", {})
    plain = send(defaults.port, data, 1, ["GET"], settle)
    for index, environ in enumerate(calls):
        assert_sane(environ)
        if index < len(plain.responses) and plain.statuses[index] == 200:
            assert_same_environ(environ, plain.environ(index), case, servers.bridge.port, defaults.port)
    if case.id == "invalid/chunked_05":
        assert ours.closed  # RFC 9112 section 6.1: close after processing the message
