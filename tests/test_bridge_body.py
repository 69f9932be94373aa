"""Request bodies in the bridge: the memory budget, spooling, and their lifecycle.

Over real HTTP (aiohttp's test server, in this process, so that the budget
and this process's file descriptors can be watched):

* bodies held in memory count against ``request_body_memory``; beyond it they
  go to temporary files; a body announced larger than ``spool_threshold`` goes
  to its file from the first block;
* the bytes come back on every path (answer, 413, 408, 507, 500, client gone,
  cancellation), and no temporary file or descriptor is left, also when the
  request is cancelled while a thread is still creating or writing the file.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import logging
import os
import tempfile
import threading
from typing import Any, Callable
from unittest import mock

import pytest
from aiohttp import StreamReader, web
from aiohttp.test_utils import make_mocked_request
from django.test import override_settings

from aiodjango.application import APP_KEY, get_aio_application
from aiodjango.checks import check_bridge_settings
from aiodjango.conf import conf
from aiodjango.wsgi import WSGIBridge
from aiodjango.wsgi import body as body_module
from aiodjango.wsgi.body import (
    CHUNK_OVERHEAD,
    DEFAULT_REQUEST_BODY_MEMORY,
    WRITE_BLOCK,
    BodyMemory,
    MemoryBody,
    Spool,
    SpoolFile,
    read_body,
)

from .wsgi_apps import echo_app

WAIT = 10.0  # upper bound of every wait here (never reached when passing)
KIB = 1024
BRIDGE = web.AppKey("bridge", WSGIBridge)


def bridged(wsgi: Callable[..., Any], **options: Any) -> web.Application:
    bridge = WSGIBridge(wsgi, **options)
    app = web.Application()
    app[BRIDGE] = bridge
    app.router.add_route("*", "/{tail:.*}", bridge.handle)

    async def shutdown(app: web.Application) -> None:
        await bridge.shutdown()

    app.on_cleanup.append(shutdown)
    return app


class Recorder:
    """A WSGI app noting, per request, the type of ``wsgi.input``, its digest and the budget."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.bridge: WSGIBridge | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("the app failed (on purpose)")
        stream = environ["wsgi.input"]
        data = stream.read()
        self.seen.append({
            "type": type(stream).__name__,
            "digest": hashlib.sha256(data).hexdigest(),
            "length": environ.get("CONTENT_LENGTH"),
        })
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d" % len(data)]


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def temporary_files() -> int:
    """Descriptors of this process on unlinked files (the spooled bodies)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").endswith("(deleted)")
        except OSError:
            pass
    return count


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """The response (head and Content-Length body), then close.

    Not read until the server closes: after refusing a body aiohttp reads what
    is left of it for up to 10 s (lingering close) before closing.
    """
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return head + await asyncio.wait_for(reader.readexactly(length), WAIT)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def start_upload(port: int, head_length: int | None, part: bytes, *, path: str = "/") -> tuple[Any, Any]:
    """Open a connection, send the head (Content-Length or chunked) and ``part`` of the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = f"Content-Length: {head_length}" if head_length is not None else "Transfer-Encoding: chunked"
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\n{framing}\r\nConnection: close\r\n\r\n".encode())
    writer.write(part if head_length is not None else b"%x\r\n%s\r\n" % (len(part), part))
    await writer.drain()
    return reader, writer


pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


# -- the budget -------------------------------------------------------------------


async def test_small_body_is_held_in_memory_and_given_back(aiohttp_client):
    app = Recorder()
    client = await aiohttp_client(bridged(app))
    bridge = client.app[BRIDGE]
    payload = os.urandom(300 * KIB)
    resp = await client.post("/", data=payload)
    assert resp.status == 200 and await resp.text() == str(len(payload))
    assert app.seen == [{"type": "MemoryBody", "digest": hashlib.sha256(payload).hexdigest(),
                         "length": str(len(payload))}]
    await wait_for(lambda: bridge.body_memory.used == 0, "the bytes to come back")


async def test_body_announced_large_goes_to_disk_from_the_first_block(aiohttp_client):
    app = Recorder()
    client = await aiohttp_client(bridged(app, spool_threshold=256 * KIB))
    bridge = client.app[BRIDGE]
    payload = os.urandom(2 * 1024 * KIB)
    files = temporary_files()
    reader, writer = await start_upload(client.port, len(payload), payload[:1024 * KIB])
    # Half of it arrived: it is in a file already, not in memory.
    await wait_for(lambda: temporary_files() == files + 1, "the temporary file")
    assert bridge.body_memory.used < WRITE_BLOCK + 512 * KIB  # at most one block and one read
    writer.write(payload[1024 * KIB:])
    data = await answer(reader, writer)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"%d" % len(payload))
    assert app.seen[0]["type"] == "SpoolFile"
    assert app.seen[0]["digest"] == hashlib.sha256(payload).hexdigest()
    await wait_for(lambda: temporary_files() == files and bridge.body_memory.used == 0, "clean-up")


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_bodies_beyond_the_budget_are_spooled(aiohttp_client, framing):
    app = Recorder()
    limit = 300 * KIB
    client = await aiohttp_client(bridged(app, request_body_memory=limit))
    bridge = client.app[BRIDGE]
    files = temporary_files()
    payloads = [os.urandom(200 * KIB) for _ in range(4)]  # each under the 1 MiB threshold
    uploads = []
    for i, payload in enumerate(payloads):
        # All but the last byte (chunked: all but the last chunk), then stall.
        head = len(payload) if framing == "length" else None
        uploads.append(await start_upload(client.port, head, payload[:-1]))
        if i == 0:  # the first fits in the budget
            await wait_for(lambda: bridge.body_memory.used >= len(payload) - 1, "the first body in memory")
            first = bridge.body_memory.used  # its bytes, and CHUNK_OVERHEAD per network read
            assert first <= len(payload) - 1 + 100 * CHUNK_OVERHEAD
        else:  # the others do not: each goes to a file
            await wait_for(lambda: temporary_files() == files + i, f"body {i + 1} in a file")
        assert bridge.body_memory.used == first <= limit
    for (reader, writer), payload in zip(uploads, payloads):
        writer.write(payload[-1:] if framing == "length" else b"1\r\n%s\r\n0\r\n\r\n" % payload[-1:])
    for (reader, writer), payload in zip(uploads, payloads):
        data = await answer(reader, writer)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"%d" % len(payload))
    assert sorted(seen["digest"] for seen in app.seen) == sorted(hashlib.sha256(p).hexdigest() for p in payloads)
    assert sorted(seen["type"] for seen in app.seen) == ["MemoryBody"] + ["SpoolFile"] * 3
    await wait_for(lambda: bridge.body_memory.used == 0 and temporary_files() == files, "clean-up")


async def test_zero_budget_spools_every_body(aiohttp_client):
    app = Recorder()
    client = await aiohttp_client(bridged(app, request_body_memory=0))
    resp = await client.post("/", data=b"tiny")
    assert resp.status == 200 and app.seen[0]["type"] == "SpoolFile"
    resp = await client.get("/")
    assert resp.status == 200 and app.seen[1]["type"] == "BytesIO"  # no body, nothing to spool


async def test_no_budget_limit_holds_bodies_in_memory(aiohttp_client):
    app = Recorder()
    client = await aiohttp_client(bridged(app, request_body_memory=None))
    resp = await client.post("/", data=os.urandom(900 * KIB))
    assert resp.status == 200 and app.seen[0]["type"] == "MemoryBody"
    await wait_for(lambda: client.app[BRIDGE].body_memory.used == 0, "the bytes to come back")


# -- every path gives the bytes back -------------------------------------------------


PATHS = ["answered", "app-error-500", "too-large-413", "timeout-408", "client-gone", "spool-error-507"]


@pytest.mark.parametrize("path", PATHS)
async def test_budget_and_files_come_back_on_every_path(aiohttp_client, caplog, tmp_path, monkeypatch, path):
    caplog.set_level(logging.INFO, logger="aiodjango.bridge")
    options: dict[str, Any] = {"max_request_body_size": 256 * KIB, "request_body_timeout": 2.0,
                               "spool_threshold": 128 * KIB}
    if path == "spool-error-507":
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    client = await aiohttp_client(bridged(Recorder(), **options))
    bridge = client.app[BRIDGE]
    baseline = open_fds()
    target = "/fail" if path == "app-error-500" else "/"
    # A chunked body (no Content-Length: nothing is refused up front), in memory first.
    reader, writer = await start_upload(client.port, None, os.urandom(100 * KIB), path=target)
    await wait_for(lambda: bridge.body_memory.used >= 100 * KIB, "the body in memory")
    if path in ("answered", "app-error-500"):
        writer.write(b"0\r\n\r\n")
        expected = b"HTTP/1.1 200" if path == "answered" else b"HTTP/1.1 500"
    elif path == "too-large-413":
        writer.write(b"%x\r\n%s\r\n" % (200 * KIB, b"x" * 200 * KIB))
        expected = b"HTTP/1.1 413"
    elif path == "timeout-408":
        expected = b"HTTP/1.1 408"  # nothing more is sent
    elif path == "spool-error-507":
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (100 * KIB, b"x" * 100 * KIB))  # past the threshold
        expected = b"HTTP/1.1 507"
    else:  # client-gone
        writer.close()
        await writer.wait_closed()
        expected = None
    if expected is not None:
        data = await answer(reader, writer)
        assert data.startswith(expected), data[:200]
    await wait_for(lambda: bridge.body_memory.used == 0, "the bytes to come back")
    await wait_for(lambda: open_fds() <= baseline, "no descriptor left")
    assert os.listdir(tmp_path) == [] or path != "spool-error-507"


# -- cancelled while a thread creates or writes the file ------------------------------


@pytest.mark.parametrize("blocked_in", ["creating", "writing"])
@pytest.mark.parametrize("cancelled_by", ["client-gone", "timeout-408"])
async def test_cancelled_while_spooling_leaves_no_file(aiohttp_client, monkeypatch, tmp_path, blocked_in, cancelled_by):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    release = threading.Event()
    blocked = threading.Event()
    created: list[SpoolFile] = []
    real_new_spool_file = body_module._new_spool_file

    class SlowSpoolFile(SpoolFile):
        def writelines(self, blocks):  # type: ignore[no-untyped-def]
            blocked.set()
            release.wait(WAIT)
            return super().writelines(blocks)

    def new_spool_file() -> SpoolFile:
        if blocked_in == "creating":
            blocked.set()
            release.wait(WAIT)
            file = real_new_spool_file()
        else:
            raw = tempfile.TemporaryFile(buffering=0)
            file = SlowSpoolFile(raw)
        created.append(file)
        return file

    monkeypatch.setattr(body_module, "_new_spool_file", new_spool_file)
    timeout = 0.5 if cancelled_by == "timeout-408" else None
    app = Recorder()
    client = await aiohttp_client(bridged(app, request_body_timeout=timeout))
    bridge = client.app[BRIDGE]
    await client.get("/")  # warm up (executor threads, imports)
    baseline = open_fds()
    try:
        reader, writer = await start_upload(client.port, 4 * 1024 * KIB, os.urandom(256 * KIB))
        await wait_for(blocked.is_set, "the thread to block")
        if cancelled_by == "client-gone":
            writer.close()
            await writer.wait_closed()
        else:
            data = await answer(reader, writer)
            assert data.startswith(b"HTTP/1.1 408")
        await asyncio.sleep(0.1)  # the handler is cancelled meanwhile (not awaited: nothing to poll)
    finally:
        release.set()
    await wait_for(lambda: created and created[0].closed, "the thread to close the file")
    await wait_for(lambda: open_fds() <= baseline, "no descriptor left")
    assert os.listdir(tmp_path) == []
    assert bridge.body_memory.used == 0 and app.seen == [app.seen[0]]  # only the warm-up
    resp = await client.post("/", data=b"still serving")
    assert resp.status == 200


# -- the pieces ----------------------------------------------------------------------


def test_spool_discarded_while_writing_is_closed_by_the_writer(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spool = Spool()
    spool.write([b"abc"], False)
    file = spool.file
    assert file is not None and not file.closed
    started, release = threading.Event(), threading.Event()
    real_write = file.writelines

    def slow(blocks):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(WAIT)
        real_write(blocks)

    file.writelines = slow  # type: ignore[method-assign]
    thread = threading.Thread(target=spool.write, args=([b"def"], True))
    thread.start()
    try:
        assert started.wait(WAIT)
        spool.discard()  # while the write runs: left to the writer
        assert not file.closed
    finally:
        release.set()
        thread.join(WAIT)
    assert file.closed and spool.file is None
    spool.write([b"more"], True)  # after discard: nothing happens
    assert spool.file is None and os.listdir(tmp_path) == []


def test_dropped_bodies_give_back_and_close_quietly(tmp_path, monkeypatch):
    # Warnings are errors in this suite: an unclosed file would fail it.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    memory = BodyMemory(100)
    assert memory.take(60) and not memory.take(50) and memory.take(40)
    body = MemoryBody(b"x" * 60, memory, 60)
    assert body.read() == b"x" * 60
    del body
    gc.collect()
    assert memory.used == 40
    body = MemoryBody(b"y" * 40, memory, 40)
    body.close()
    body.close()
    assert memory.used == 0
    spool = Spool()
    spool.write([b"data"], True)
    fd = spool.file.fileno()  # type: ignore[union-attr]
    del spool
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)


@pytest.mark.parametrize("value", [-1, "16M", 1.5, True])
def test_bad_request_body_memory(value):
    with pytest.raises(ValueError, match="request_body_memory"):
        WSGIBridge(echo_app, request_body_memory=value)


def test_request_body_memory_setting():
    assert conf.AIODJANGO_REQUEST_BODY_MEMORY == DEFAULT_REQUEST_BODY_MEMORY == 16 * 1024 * 1024
    assert get_aio_application(echo_app)[APP_KEY].bridge.body_memory.limit == DEFAULT_REQUEST_BODY_MEMORY
    for value in (0, None, 64 * 1024 * 1024):
        with override_settings(AIODJANGO_REQUEST_BODY_MEMORY=value):
            assert check_bridge_settings() == []
            assert get_aio_application(echo_app)[APP_KEY].bridge.body_memory.limit == value


@pytest.mark.parametrize("value", [-1, "16M", 1.5, True])
def test_bad_request_body_memory_setting_is_reported(value):
    with override_settings(AIODJANGO_REQUEST_BODY_MEMORY=value):
        (error,) = check_bridge_settings()
    assert error.id == "aiodjango.E024"
    assert "AIODJANGO_REQUEST_BODY_MEMORY" in error.msg and repr(value) in error.msg
    assert "AIODJANGO_REQUEST_BODY_MEMORY" in error.hint


def test_memory_body_reads_like_bytesio():
    memory = BodyMemory(None)
    assert memory.take(11)
    body = MemoryBody(b"hello\nworld", memory, 11)
    assert body.readline() == b"hello\n" and body.read(3) == b"wor"
    body.seek(0)
    assert isinstance(body, io.BytesIO) and body.read() == b"hello\nworld"
    body.close()
    assert memory.used == 0


async def test_tiny_reads_are_counted_with_their_overhead():
    # A client sending its body one byte per packet: each read is a bytes
    # object of its own, ~40 times the byte it holds.  The budget counts that.
    loop = asyncio.get_running_loop()

    def request_with(pieces: list[bytes]) -> web.BaseRequest:
        reader = StreamReader(mock.Mock(), 2**16, loop=loop)
        for piece in pieces:
            reader.feed_data(piece)
        reader.feed_eof()
        size = sum(map(len, pieces))
        return make_mocked_request("POST", "/", headers={"Content-Length": str(size)}, payload=reader)

    memory = BodyMemory(10_000)
    body, length = await read_body(request_with([b"x" * 1000]), max_size=None, spool_threshold=2**20,
                                   memory=memory)
    assert (type(body), length, memory.used) == (MemoryBody, 1000, 1000)  # the overhead given back
    body.close()
    body, length = await read_body(request_with([b"x"] * 1000), max_size=None, spool_threshold=2**20,
                                   memory=memory)
    assert (type(body), length, body.read()) == (SpoolFile, 1000, b"x" * 1000)  # 1000 + 64 000 > 10 000
    body.close()
    assert memory.used == 0
