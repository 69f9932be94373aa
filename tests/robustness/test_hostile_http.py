"""Hostile HTTP over raw sockets against a real server subprocess.

Every request of :mod:`tests.robustness.corpus` is sent byte for byte.  The
server must answer it with a 4xx (never a 5xx, never a hang beyond the
timeout), never call a view with a corrupted environ or a smuggled request,
and still answer normal requests afterwards.
"""

from __future__ import annotations

import pytest

from .conftest import REPORT, leak_problems
from .corpus import CASES, Case
from .rawhttp import exchange

TIMEOUT = 5.0
HEALTHY = (
    (b"GET /lifted/hello/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "lifted_hello"),
    (b"GET /django/hello/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "django_hello"),
)


def assert_healthy(port: int) -> None:
    for request, view in HEALTHY:
        reply = exchange(port, request, timeout=TIMEOUT)
        assert (reply.status, reply.header("x-view")) == (200, view), reply.raw[:300]


PARAMS = [
    pytest.param(c, id=f"{c.group}: {c.name}", marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
    for c in CASES
]


@pytest.mark.parametrize("case", PARAMS)
def test_hostile_request(server, case: Case) -> None:
    REPORT.hostile_tried += 1
    before = server.diag()
    reply = exchange(server.port, case.data, timeout=TIMEOUT, half_close=case.half_close)
    status = reply.status
    assert status is None or status < 500, f"{status} for {case.name}: {reply.raw[:300]!r}"
    # What the client injected never comes back as a header of its own.
    assert "x-injected" not in reply.headers and "set-cookie" not in reply.headers
    if case.expect == "4xx":
        assert status is not None and 400 <= status < 500, reply.raw[:300]
        counter = "hostile_refused"
    elif case.expect == "4xx-or-close":
        assert (status is None and reply.closed) or (status is not None and 400 <= status < 500), reply.raw[:300]
        counter = "hostile_refused"
    elif case.expect == "upstream":
        assert status is not None, reply.raw[:300]
        counter = "hostile_upstream"
    else:
        assert (status, reply.header("x-view")) == (200, case.expect), reply.raw[:300]
        counter = "hostile_routed"
    after = server.diag()
    assert after["violations"] == before["violations"], f"a view was called with a corrupted environ: {after['violations'][-1:]}"
    assert after["canary"] == before["canary"], "a smuggled request reached a view"
    assert_healthy(server.port)
    setattr(REPORT, counter, getattr(REPORT, counter) + 1)


def test_hostile_pipelined_after_refusal(server) -> None:
    """A refused request closes its connection: what follows it is never parsed."""
    REPORT.hostile_tried += 1
    bad = b"GET /django/hello/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX A: b\r\n\r\n"
    reply = exchange(server.port, bad + b"GET /django/canary/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert reply.status == 400
    assert b"canary" not in reply.body
    REPORT.hostile_refused += 1
    assert_healthy(server.port)


def test_nothing_left_running_after_the_corpus(server) -> None:
    """After the whole corpus: no canary, no open iterable, nothing left running.

    (Corrupted environs are checked case by case above.)
    """
    baseline = {"fds": server.diag()["fds"]}
    problems = [p for p in leak_problems(baseline, server.diag()) if not p.startswith("corrupted environs")]
    REPORT.leak_checks += 1
    REPORT.leaks_found += len(problems)
    assert not problems
