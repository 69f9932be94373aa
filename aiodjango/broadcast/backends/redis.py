"""The Redis backend: groups shared by every process and machine that uses one Redis.

Each process holds **one** pub/sub connection per broadcast alias, subscribed
to ``PREFIX + group`` for exactly the groups that have a subscriber in this
process, and fans each message out to its local subscribers. Publishing uses
a small pool of other connections (``MAX_CONNECTIONS``); ``publish_sync()``
with no event loop of this process serving the broadcast (a management
command) opens a short-lived connection.

When Redis goes away the pub/sub connection is re-established with
exponential backoff (up to ``RETRY_MAX_DELAY``) and every group with local
subscribers is subscribed again; the outage and the recovery are logged once
each. Meanwhile subscriptions stay open (messages published during the outage
are lost: delivery is at most once), new ``subscribe()`` calls and every
``publish()`` raise :class:`~aiodjango.broadcast.BroadcastUnavailable`. A
connection that stays silent is pinged every ``HEALTH_CHECK_INTERVAL``
seconds and dropped when the answer takes longer than ``TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..base import Broadcast
from ..exceptions import BroadcastUnavailable
from ..options import COMMON_OPTIONS, REDIS_OPTIONS, Option, where

logger = logging.getLogger("aiodjango.broadcast")

SCHEMES = ("redis", "rediss", "unix")
#: First pause before reconnecting, in seconds (doubled up to RETRY_MAX_DELAY).
RETRY_FIRST_DELAY = 0.1


def _redis() -> Any:
    """redis-py's asyncio module (imported on first use: redis-py is optional)."""
    import redis.asyncio

    return redis.asyncio


def _safe(location: str) -> str:
    """``location`` without its password, for messages and logs."""
    parts = urlsplit(location)
    if parts.password is None:
        return location
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisBroadcast(Broadcast):
    """Redis pub/sub: one connection per process, fanned out to local subscribers."""

    @classmethod
    def option_specs(cls) -> dict[str, Option]:
        return {**COMMON_OPTIONS, **REDIS_OPTIONS}

    @classmethod
    def location_problems(cls, alias: str, location: Any) -> list[tuple[str, str]]:
        found = []
        try:
            _redis()
        except ImportError:
            found.append(
                (
                    f"{where(alias, 'BACKEND')} is the Redis backend, which needs redis-py.",
                    "pip install 'aiodjango[redis]' (or redis>=5.0.1).",
                )
            )
        example = "e.g. 'redis://127.0.0.1:6379/0' (or 'rediss://...', 'unix:///run/redis.sock')"
        if not isinstance(location, str) or urlsplit(location).scheme not in SCHEMES:
            found.append(
                (
                    f"{where(alias, 'LOCATION')} must be a Redis URL, got {location!r}.",
                    f"Set it to the URL of the Redis server all processes share, {example}.",
                )
            )
        elif parse_qs(urlsplit(location).query).get("protocol", ["2"]) != ["2"]:
            found.append(
                (
                    f"{where(alias, 'LOCATION')} asks for RESP3 (protocol=3), which the "
                    f"broadcast's pub/sub connection does not speak.",
                    "Remove 'protocol=' from the URL.",
                )
            )
        return found

    def __init__(self, alias: str, entry: dict) -> None:
        super().__init__(alias, entry)
        self.location: str = self.settings.location  # type: ignore[assignment]
        self._where = _safe(self.location)
        self._prefix: str = self.settings["PREFIX"]
        self._timeout: float = self.settings["TIMEOUT"]
        self._client: Any = None
        self._supervisor: Optional[asyncio.Task[None]] = None
        self._dirty = False  # local groups changed since the last SUBSCRIBE/UNSUBSCRIBE
        self._wake: Optional[asyncio.Future[None]] = None
        self._connected = False
        self._down: Optional[BaseException] = None
        self._sent: set[str] = set()  # channels subscribed on this connection
        self._expect: dict[str, int] = {}  # channel -> SUBSCRIBE confirmations to come
        self._active: set[str] = set()  # groups whose subscription Redis confirmed
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._last_read = 0.0
        self._pinged: Optional[float] = None
        self._malformed: set[str] = set()

    # -- publishing ---------------------------------------------------------------

    def _publisher(self) -> Any:
        if self._client is None:
            redis = _redis()
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # No retries: a publish retried after a lost answer could arrive twice.
            pool = redis.BlockingConnectionPool.from_url(
                self.location,
                max_connections=self.settings["MAX_CONNECTIONS"],
                timeout=self._timeout,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
                client_name=f"aiodjango:broadcast:{self.alias}:publish",
            )
            self._client = redis.Redis(connection_pool=pool)
        return self._client

    async def _publish(self, group: str, text: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._publisher().publish(self._prefix + group, text)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise BroadcastUnavailable(
                f"Could not publish to group {group!r}: Redis at {self._where} (broadcast "
                f"{self.alias!r}) is unreachable ({exc or type(exc).__name__})."
            ) from exc

    def _publish_without_loop(self, group: str, text: str) -> None:
        import redis

        try:
            with redis.Redis.from_url(
                self.location,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                client_name=f"aiodjango:broadcast:{self.alias}:publish",
            ) as client:
                client.publish(self._prefix + group, text)
        except (redis.RedisError, OSError) as exc:
            raise BroadcastUnavailable(
                f"Could not publish to group {group!r}: Redis at {self._where} (broadcast "
                f"{self.alias!r}) is unreachable ({exc or type(exc).__name__})."
            ) from exc

    # -- groups -------------------------------------------------------------------

    async def _join(self, group: str) -> None:
        if group in self._active:
            return
        if self._down is not None:
            raise BroadcastUnavailable(
                f"Cannot subscribe to group {group!r}: Redis at {self._where} (broadcast "
                f"{self.alias!r}) is unreachable ({self._down or type(self._down).__name__}); "
                f"reconnecting."
            )
        loop = asyncio.get_running_loop()
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = loop.create_task(self._supervise())
        ready = self._ready.get(group)
        if ready is None or ready.done():
            ready = self._ready[group] = loop.create_future()
        self._poke()
        # asyncio.wait, not wait_for: it never cancels ``ready`` (shared by
        # the group's first subscribers), and never swallows a cancellation.
        await asyncio.wait((ready,), timeout=self._timeout)
        if not ready.done():
            raise BroadcastUnavailable(
                f"Cannot subscribe to group {group!r}: Redis at {self._where} (broadcast "
                f"{self.alias!r}) did not confirm within {self._timeout:g} s (TIMEOUT)."
            )
        ready.result()

    def _leave(self, group: str) -> None:
        # The writer unsubscribes; until it has, the group stays active (and
        # a new subscriber needs no new SUBSCRIBE).
        self._poke()

    def _poke(self) -> None:
        """Wake the writer: the local groups changed (or the reader ended)."""
        self._dirty = True
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _fail_waiters(self, error: BaseException) -> None:
        waiters, self._ready = self._ready, {}
        for group, ready in waiters.items():
            if not ready.done():
                ready.set_exception(
                    BroadcastUnavailable(
                        f"Cannot subscribe to group {group!r}: Redis at {self._where} "
                        f"(broadcast {self.alias!r}) is unreachable ({error or type(error).__name__})."
                    )
                )
                ready.exception()  # retrieved: no "never retrieved" log if nobody waits

    # -- the pub/sub connection ---------------------------------------------------

    async def _supervise(self) -> None:
        """Keep one pub/sub connection up, with backoff, for as long as the broadcast lives."""
        loop = asyncio.get_running_loop()
        delay = RETRY_FIRST_DELAY
        lost_at: Optional[float] = None
        while True:
            connection = None
            try:
                connection = await self._connect()
                self._down = None
                if lost_at is not None:
                    logger.warning(
                        "Broadcast %r reconnected to Redis at %s after %.1f s; subscribing "
                        "again to %d group(s). Messages published meanwhile were lost.",
                        self.alias, self._where, loop.time() - lost_at, len(self._groups),
                    )
                    lost_at = None
                delay = RETRY_FIRST_DELAY
                await self._serve(connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._down = exc
                if lost_at is None:
                    lost_at = loop.time()
                    logger.warning(
                        "Broadcast %r %s Redis at %s (%s); reconnecting with backoff. "
                        "Publishing fails until then; subscribers stay and get messages again "
                        "after reconnection.",
                        self.alias, "lost" if self._connected else "cannot reach", self._where,
                        exc or type(exc).__name__,
                    )
                self._fail_waiters(exc)
            finally:
                self._connected = False
                self._sent.clear()
                self._expect.clear()
                self._active.clear()
                if connection is not None:
                    await _disconnect(connection)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.settings["RETRY_MAX_DELAY"])

    async def _connect(self) -> Any:
        redis = _redis()
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        pool = redis.ConnectionPool.from_url(
            self.location,
            socket_timeout=None,  # a pub/sub connection waits for messages indefinitely
            socket_connect_timeout=self._timeout,
            socket_keepalive=True,
            protocol=2,
            retry=Retry(NoBackoff(), 0),
            client_name=f"aiodjango:broadcast:{self.alias}:subscribe",
        )
        connection = pool.make_connection()
        try:
            # Connecting includes AUTH/SELECT/SETNAME, read without a socket timeout.
            await _within(connection.connect(), self._timeout * 2)
        except BaseException:
            await _disconnect(connection)
            raise
        self._connected = True
        self._last_read = asyncio.get_running_loop().time()
        self._pinged = None
        return connection

    async def _serve(self, connection: Any) -> None:
        """Read messages and keep the subscriptions in line with local groups, until an error."""
        loop = asyncio.get_running_loop()
        reader = loop.create_task(self._read(connection))
        interval = self.settings["HEALTH_CHECK_INTERVAL"]
        self._dirty = True  # subscribe every group with local subscribers
        try:
            while True:
                if reader.done():
                    reader.result()
                    raise ConnectionError("the pub/sub connection closed")
                if self._dirty:
                    self._dirty = False
                    await self._apply(connection)
                    continue
                wait = interval
                if self._pinged is not None:
                    if self._last_read >= self._pinged:
                        self._pinged = None
                    elif loop.time() - self._pinged >= self._timeout:
                        raise ConnectionError(
                            f"no answer to PING within {self._timeout:g} s (TIMEOUT)"
                        )
                    else:
                        wait = self._timeout
                self._wake = loop.create_future()
                try:
                    await asyncio.wait((self._wake,), timeout=wait)
                finally:
                    self._wake = None
                if (
                    not self._dirty
                    and self._pinged is None
                    and loop.time() - self._last_read >= interval
                ):
                    self._pinged = loop.time()
                    await connection.send_command("PING")
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _apply(self, connection: Any) -> None:
        """SUBSCRIBE/UNSUBSCRIBE so that Redis sends exactly the groups subscribed here."""
        prefix = self._prefix
        for group in [g for g in self._ready if g not in self._groups]:
            self._ready.pop(group).cancel()  # its subscribers left before Redis confirmed
        wanted = {prefix + group for group in self._groups}
        remove = self._sent - wanted
        add = wanted - self._sent
        if remove:
            self._sent -= remove
            for channel in remove:
                self._active.discard(channel[len(prefix):])
            await connection.send_command("UNSUBSCRIBE", *sorted(remove))
        if add:
            self._sent |= add
            for channel in add:
                self._expect[channel] = self._expect.get(channel, 0) + 1
            await connection.send_command("SUBSCRIBE", *sorted(add))

    async def _read(self, connection: Any) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                response = await connection.read_response()
                self._last_read = loop.time()
                if not isinstance(response, list) or len(response) < 2:
                    continue
                kind = response[0]
                if kind == b"message":
                    self._receive(response[1], response[2])
                elif kind == b"subscribe":
                    self._confirmed(response[1].decode("utf-8", "replace"))
        finally:
            self._poke()  # wake the writer, which sees the reader ended

    def _confirmed(self, channel: str) -> None:
        left = self._expect.get(channel, 0) - 1
        if left > 0:
            self._expect[channel] = left
            return
        self._expect.pop(channel, None)
        if channel in self._sent:
            group = channel[len(self._prefix):]
            self._active.add(group)
            ready = self._ready.pop(group, None)
            if ready is not None and not ready.done():
                ready.set_result(None)

    def _receive(self, channel: bytes, data: Any) -> None:
        try:
            group = channel.decode("utf-8")[len(self._prefix):]
        except UnicodeDecodeError:
            return
        if group not in self._groups:
            return
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else str(data)
            message = json.loads(text)
        except ValueError:
            if group not in self._malformed:
                self._malformed.add(group)
                logger.warning(
                    "Broadcast %r ignored a message for group %r that is not UTF-8 JSON "
                    "(published by something other than aiodjango?); further ones are "
                    "ignored silently.",
                    self.alias, group,
                )
            return
        if "\n" in text or "\r" in text:  # pretty-printed by another publisher: one line
            text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        self._deliver(group, text, message)

    # -- closing ------------------------------------------------------------------

    async def _close(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        self._fail_waiters(ConnectionError("the broadcast was closed"))
        self._down = None
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
            await client.connection_pool.disconnect()

    def _abandon(self) -> None:
        super()._abandon()
        # The connections belong to a loop that is gone: forget them.
        self._supervisor = self._client = self._wake = None
        self._down = None
        self._ready = {}
        self._sent.clear()
        self._expect.clear()
        self._active.clear()


async def _within(awaitable: Any, timeout: float) -> Any:
    """``await awaitable`` for at most ``timeout`` seconds (``asyncio.TimeoutError`` after).

    Not ``asyncio.wait_for``: before Python 3.12 it can swallow a cancellation
    that arrives as the awaitable completes, and the broadcast's tasks must
    stop when cancelled.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait((task,), timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise asyncio.TimeoutError()
    return task.result()


async def _disconnect(connection: Any) -> None:
    try:
        await connection.disconnect()
    except Exception:  # already broken: nothing more to release
        pass
