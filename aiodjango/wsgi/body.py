"""The request body of the WSGI bridge: read whole in the event loop, bounded in memory.

Framework-free (no Django import).  A body is read completely before the
application is called, so a slow client never holds a pool thread.  What a
body costs in memory is bounded three ways:

* a body larger than ``spool_threshold`` goes to a temporary file (at once
  when its ``Content-Length`` says it will be larger);
* every body byte held in memory counts against one :class:`BodyMemory`
  budget shared by all the bridge's requests; when the budget is spent, bodies
  go to temporary files whatever their size;
* a body being spooled is written out in blocks of :data:`WRITE_BLOCK` bytes.

Budget bytes are given back when the body is written to its file, or when the
in-memory ``wsgi.input`` is closed (by the bridge at the end of the request,
or by Python when it is dropped), on every path: errors, cancellation, 413,
408.  A temporary file is closed on every path too, also when the reading task
is cancelled while a thread is still creating or writing it.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import threading
from typing import IO

from aiohttp import web

#: Request-body bytes held in memory at once, across all requests of a bridge
#: (16 MiB).  Ordinary form posts are a few kB, so thousands of them fit; 16
#: bodies at the default 1 MiB spool threshold fit, twice what 8 threads can
#: work on at once.  Beyond it bodies go to temporary files, which costs a few
#: system calls and no failure; clients holding bodies open (stalled uploads)
#: then hold no more than this in memory, whatever their number.
DEFAULT_REQUEST_BODY_MEMORY = 16 * 1024 * 1024

#: A body being spooled is written to its file in blocks of at least this size
#: (fewer thread hops than one per network read, little memory per upload).
WRITE_BLOCK = 64 * 1024
#: ... or as soon as this many network reads are waiting (tiny reads).
MAX_CHUNKS = 256
#: What one network read costs in memory besides its bytes (the ``bytes``
#: object and its place in a list), counted in the budget: a client sending a
#: body one byte per packet would otherwise hold 40 times what is counted.
CHUNK_OVERHEAD = 64


class RequestBodyTooLarge(Exception):
    """The request body is larger than ``max_request_body_size``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class RequestBodySpoolError(Exception):
    """The request body could not be written to its temporary file (disk full...)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(f"request body could not be spooled to a temporary file: {error}")
        self.error = error


class BodyMemory:
    """The budget of request-body bytes held in memory, shared by a bridge's requests.

    Thread-safe: bytes are taken in the event loop and given back there or in
    a pool thread (when the app's ``wsgi.input`` is closed).  ``limit=None``
    counts without limiting.
    """

    __slots__ = ("limit", "used", "_lock")

    def __init__(self, limit: int | None) -> None:
        if limit is not None and (type(limit) is not int or limit < 0):
            raise ValueError(f"request_body_memory must be a number of bytes (>= 0) or None, got {limit!r}")
        self.limit = limit
        #: Bytes held now.
        self.used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        """Count ``size`` more bytes, unless that would pass the limit (then ``False``)."""
        with self._lock:
            if self.limit is not None and self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.used -= size


class MemoryBody(io.BytesIO):
    """``wsgi.input`` of a body held in memory; its bytes go back to the budget on close.

    ``io.IOBase`` calls ``close()`` when the object is dropped without it, so
    the bytes are given back on every path.
    """

    def __init__(self, data: bytes, memory: BodyMemory, held: int) -> None:
        super().__init__(data)
        self._memory = memory
        self._held = held

    def close(self) -> None:
        held, self._held = self._held, 0
        if held:
            self._memory.give_back(held)
        super().close()


class SpoolFile(io.BufferedRandom):
    """``wsgi.input`` of a spooled body: an unlinked temporary file.

    Closed by the bridge at the end of the request; one that is dropped
    unclosed (an application keeping ``wsgi.input`` in a cycle) is closed
    quietly, without a ``ResourceWarning``.
    """

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:  # flushing onto a full disk: the descriptor is closed anyway
            pass


def _new_spool_file() -> SpoolFile:
    """A new temporary file (unlinked at once); runs in an executor thread."""
    raw = tempfile.TemporaryFile(buffering=0)
    try:
        return SpoolFile(raw)
    except BaseException:
        raw.close()
        raise


class Spool:
    """The temporary file of one body, written from executor threads.

    One write runs at a time (:func:`read_body` awaits each).  :meth:`discard`
    may be called in the event loop at any moment, also while a thread is
    still creating or writing the file (the reading task was cancelled): that
    thread then closes the file when it is done, so no descriptor is left.
    """

    __slots__ = ("file", "_lock", "_writing", "_discarded")

    def __init__(self) -> None:
        self.file: SpoolFile | None = None
        self._lock = threading.Lock()
        self._writing = False
        self._discarded = False

    def write(self, blocks: list[bytes], rewind: bool) -> None:
        """Write ``blocks`` (creating the file first); rewind it when ``rewind``."""
        with self._lock:
            if self._discarded:
                return
            self._writing = True
        try:
            if self.file is None:
                self.file = _new_spool_file()
            self.file.writelines(blocks)
            if rewind:
                self.file.flush()
                self.file.seek(0)
        finally:
            with self._lock:
                self._writing = False
                discarded = self._discarded
            if discarded:
                self._close()

    def discard(self) -> None:
        """Close and forget the file, now or as soon as the running write ends."""
        with self._lock:
            self._discarded = True
            if self._writing:
                return
        self._close()

    def _close(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            try:
                file.close()
            except OSError:  # flushing onto a full disk: the descriptor is closed anyway
                pass


async def read_body(
    request: web.BaseRequest,
    *,
    max_size: int | None,
    spool_threshold: int,
    memory: BodyMemory,
) -> tuple[IO[bytes], int | None]:
    """Read the whole request body; return ``(wsgi.input, length)``.

    The body stays in memory (a :class:`MemoryBody`) when it is at most
    ``spool_threshold`` bytes and ``memory`` has room for it; otherwise it goes
    to a temporary file (a :class:`SpoolFile`), written in the event loop's
    default executor, never in the WSGI pool.  ``length`` is ``None`` when the
    request has no body at all (``0`` for an explicit ``Content-Length: 0``).
    The caller closes ``wsgi.input`` when the request ends.

    Raises :class:`RequestBodyTooLarge` as soon as the declared or the read
    length passes ``max_size``, before the rest is read, and
    :class:`RequestBodySpoolError` when the temporary file cannot be written.
    """
    declared = request.content_length
    if not request.body_exists:
        return io.BytesIO(), (0 if declared == 0 else None)
    if max_size is not None and declared is not None and declared > max_size:
        raise RequestBodyTooLarge(max_size)

    content = request.content
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    pending = 0  # body bytes in ``chunks``
    held = 0  # what ``chunks`` costs, counted in ``memory``
    size = 0
    # A body announced larger than the threshold ends up in a file anyway:
    # write it there from the start instead of holding its first MiB.
    spool = Spool() if declared is not None and declared > spool_threshold else None
    try:
        while True:
            # One network read's worth at a time, as aiohttp received it (no
            # copy; ``readany()`` would join all that is buffered).
            chunk, _ = await content.readchunk()
            if not chunk:
                if content.is_eof():
                    break
                continue  # the end of an HTTP chunk
            size += len(chunk)
            if max_size is not None and size > max_size:
                raise RequestBodyTooLarge(max_size)
            chunks.append(chunk)
            pending += len(chunk)
            cost = len(chunk) + CHUNK_OVERHEAD
            # Only ``chunks`` may keep it: this frame waits on the next read
            # as long as the client stalls, long after the chunk is written.
            del chunk
            full = not memory.take(cost)
            if not full:
                held += cost
            if spool is None:
                if not full and pending <= spool_threshold:
                    continue
                spool = Spool()
            elif (pending < WRITE_BLOCK and len(chunks) < MAX_CHUNKS
                    and not (full and pending >= WRITE_BLOCK // 16)):
                # Beyond the budget, up to 4 KiB more wait for the next read:
                # a write per byte of a client sending one byte at a time
                # would cost a thread hop each.
                continue
            await _write(loop, spool, chunks, False)
            chunks = []
            pending = 0
            memory.give_back(held)
            held = 0
        if spool is None:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            del chunks[:]
            memory.give_back(held - len(data))  # joined: the per-chunk overhead is gone
            held = len(data)
            body = MemoryBody(data, memory, held)
            held = 0  # now the body's to give back
            return body, size
        await _write(loop, spool, chunks, True)
        file = spool.file
        assert file is not None  # created by the write, never discarded before it
        return file, size
    except BaseException:
        if spool is not None:
            spool.discard()
        raise
    finally:
        if held:
            memory.give_back(held)


async def _write(loop: asyncio.AbstractEventLoop, spool: Spool, blocks: list[bytes], rewind: bool) -> None:
    try:
        await loop.run_in_executor(None, spool.write, blocks, rewind)
    except OSError as exc:
        raise RequestBodySpoolError(exc) from exc
