"""Request bodies against the bridge's limits, and a full disk while spooling.

The server runs with ``AIODJANGO_MAX_REQUEST_BODY_SIZE`` = 1 MiB and
``AIODJANGO_SPOOL_THRESHOLD`` = 64 KiB.  Bodies over the limit get 413
before any thread is used and before Django is called; a temporary
directory that fills up while a body is spooled gives 507 (or 413) with a
log line and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from .conftest import REPORT, aiodjango_server, settled
from .rawhttp import exchange

LIMIT = 1024 * 1024
SPOOL = 64 * 1024
HOST = b"Host: 127.0.0.1\r\n"
LIMITS = {"ROBUSTNESS_MAX_BODY": str(LIMIT), "ROBUSTNESS_SPOOL": str(SPOOL)}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    server = aiodjango_server(tmp_path_factory.mktemp("limited"), "--threads", "2", env=LIMITS)
    try:
        yield server.start()
    finally:
        server.stop()


def post_head(length: int, *extra: bytes) -> bytes:
    return b"POST /django/echo/ HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n" % length + b"".join(e + b"\r\n" for e in extra) + b"\r\n"


def chunked(body: bytes, size: int = 65536) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def test_declared_length_over_the_limit_is_refused_before_the_body(limited) -> None:
    calls = limited.diag()["django_calls"]
    reply = exchange(limited.port, post_head(LIMIT + 1), timeout=5)  # no body sent at all
    REPORT.hostile_tried += 1
    assert reply.status == 413, reply.raw[:300]
    REPORT.hostile_refused += 1
    assert limited.diag()["django_calls"] == calls


def test_expect_100_continue_over_the_limit_gets_413(limited) -> None:
    calls = limited.diag()["django_calls"]
    reply = exchange(limited.port, post_head(10 * LIMIT, b"Expect: 100-continue"), timeout=5)
    REPORT.hostile_tried += 1
    assert reply.status == 413, reply.raw[:300]
    REPORT.hostile_refused += 1
    if reply.interim:
        REPORT.notes.append("'Expect: 100-continue' with an oversized Content-Length gets '100 Continue' "
                            "before the 413 (aiohttp's default expect handler runs before the bridge)")
    assert limited.diag()["django_calls"] == calls


def test_chunked_body_growing_over_the_limit_is_refused(limited) -> None:
    calls = limited.diag()["django_calls"]
    head = b"POST /django/echo/ HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
    reply = exchange(limited.port, head + chunked(os.urandom(LIMIT + 1))[:-5], timeout=5)
    REPORT.hostile_tried += 1
    assert reply.status == 413, reply.raw[:300]
    REPORT.hostile_refused += 1
    assert limited.diag()["django_calls"] == calls


@pytest.mark.parametrize("size", [0, 1, SPOOL, SPOOL + 1, LIMIT])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_bodies_up_to_the_limit_arrive_whole(limited, size, framing) -> None:
    body = os.urandom(size)
    if framing == "length":
        request = post_head(size) + body
    else:
        request = b"POST /django/echo/ HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body)
    reply = exchange(limited.port, request, timeout=10)
    assert reply.status == 200, reply.raw[:300]
    assert reply.header("x-sha256") == hashlib.sha256(body).hexdigest()
    assert reply.body == body


def test_nothing_left_after_the_limits(limited) -> None:
    settled(limited, {"fds": limited.diag()["fds"]})
    assert limited.diag()["violations"] == []


# --- a full disk ------------------------------------------------------------------------


@pytest.fixture
def small_tmpdir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A 512 KiB filesystem (tmpfs, when we may mount), else a file size limit."""
    mountpoint = tmp_path / "full"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mountpoint)],
        capture_output=True,
    ).returncode == 0 if os.geteuid() == 0 else False
    try:
        yield mountpoint, "tmpfs" if mounted else "rlimit"
    finally:
        if mounted:
            subprocess.run(["umount", str(mountpoint)], check=True, timeout=30)


def test_full_disk_while_spooling_gives_507_a_log_line_and_leaves_nothing(tmp_path, small_tmpdir) -> None:
    directory, how = small_tmpdir
    env = dict(LIMITS, TMPDIR=str(directory))
    server = aiodjango_server(tmp_path / "server", "--threads", "2", env=env)
    try:
        server.start()
        if how == "rlimit":
            # No mount allowed: a 512 KiB file size limit stands in (EFBIG, not ENOSPC).
            resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))
        baseline = server.diag()
        body = os.urandom(LIMIT - 1)  # allowed, but does not fit on the disk
        reply = exchange(server.port, post_head(len(body)) + body, timeout=10)
        REPORT.hostile_tried += 1
        assert reply.status in (507, 413), reply.raw[:300]
        REPORT.hostile_refused += 1
        assert server.diag()["django_calls"] == baseline["django_calls"]
        log = server.log()
        assert "No space left" in log or "File too large" in log or "spool" in log.lower(), log
        settled(server, baseline)
        assert os.listdir(directory) == []
        if how == "tmpfs":
            stats = os.statvfs(directory)
            assert stats.f_bfree == stats.f_blocks, "the half-written spool still takes space"
        reply = exchange(server.port, post_head(5) + b"hello", timeout=5)
        assert reply.status == 200 and reply.body == b"hello"
    finally:
        server.stop()
