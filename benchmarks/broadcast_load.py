"""The two load processes of benchmarks/broadcast.py, driven over stdin/stdout.

``subscribe URL [URL...] --count N``
    opens N websockets, round-robin over the URLs, with a minimal client
    (handshake, unmasked server frames) so that the client costs as little CPU
    as possible; prints ``ready`` once every socket got its ``"ready"`` frame.
    Then, for each ``stats STEP`` line read, prints a JSON line: the frames of
    that step received, the sockets closed, and the publish-to-receive
    latency percentiles (sampled on every tenth socket).
``publish KIND``
    for each ``run STEP RATE SECONDS`` line read, publishes RATE messages a
    second for SECONDS (an absolute schedule: a late message goes out at once)
    through KIND (``aiodjango``: ``aiodjango.broadcast.publish``; ``bare``:
    redis-py's PUBLISH; ``channels``: ``channel_layer.group_send``), then
    prints a JSON line with how many went out and how long it took.

Every message is the JSON string ``"STEP SEQ SENT_NS"`` (``time.monotonic_ns``,
one clock for every process of the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import time
from urllib.parse import urlsplit

SAMPLE_EVERY = 10  # latency is recorded on every tenth socket


def _uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# The subscribers ---------------------------------------------------------------------


class Counts:
    def __init__(self) -> None:
        self.received: dict[int, int] = {}
        self.latencies: dict[int, list[int]] = {}
        self.closed = 0
        self.ready = 0


class Subscriber(asyncio.Protocol):
    def __init__(self, counts: Counts, sample: bool, ready: asyncio.Future) -> None:
        self.counts = counts
        self.sample = sample
        self.ready = ready
        self.buffer = bytearray()
        self.upgraded = False
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(bytes(buffer[:200]))
            del buffer[: end + 4]
            self.upgraded = True
        now = time.monotonic_ns()
        counts = self.counts
        offset = 0
        size = len(buffer)
        while size - offset >= 2:
            opcode = buffer[offset] & 0x0F
            length = buffer[offset + 1] & 0x7F
            head = 2
            if length == 126:
                if size - offset < 4:
                    break
                length = struct.unpack_from("!H", buffer, offset + 2)[0]
                head = 4
            elif length == 127:
                if size - offset < 10:
                    break
                length = struct.unpack_from("!Q", buffer, offset + 2)[0]
                head = 10
            if size - offset < head + length:
                break
            payload = bytes(buffer[offset + head: offset + head + length])
            offset += head + length
            if opcode == 0x1:
                if payload == b'"ready"':
                    if not self.ready.done():
                        self.ready.set_result(None)
                    continue
                step, _, sent = payload[1:-1].split(b" ")
                step = int(step)
                counts.received[step] = counts.received.get(step, 0) + 1
                if self.sample:
                    counts.latencies.setdefault(step, []).append(now - int(sent))
            elif opcode == 0x8:
                self.transport.close()
        del buffer[:offset]

    def connection_lost(self, exc) -> None:
        self.counts.closed += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready: {exc}"))


async def subscribe(urls: list[str], count: int) -> None:
    loop = asyncio.get_running_loop()
    counts = Counts()
    pending = []
    for n in range(count):
        parts = urlsplit(urls[n % len(urls)])
        ready = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda: Subscriber(counts, n % SAMPLE_EVERY == 0, ready), parts.hostname, parts.port
        )
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://{parts.netloc}\r\n\r\n".encode()
        )
        pending.append(ready)
        if len(pending) >= 50:
            await asyncio.wait_for(asyncio.gather(*pending), 60)
            pending.clear()
    await asyncio.wait_for(asyncio.gather(*pending), 60)
    print("ready", flush=True)
    reader = await _stdin()
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "quit":
            return
        step = int(line[1])
        latencies = sorted(counts.latencies.pop(step, []))
        print(
            json.dumps(
                {
                    "step": step,
                    "received": counts.received.pop(step, 0),
                    "closed": counts.closed,
                    "p50_ms": _percentile(latencies, 0.50),
                    "p99_ms": _percentile(latencies, 0.99),
                    "max_ms": latencies[-1] / 1e6 if latencies else None,
                    "samples": len(latencies),
                }
            ),
            flush=True,
        )


def _percentile(values: list[int], fraction: float):
    if not values:
        return None
    return values[min(len(values) - 1, int(len(values) * fraction))] / 1e6


async def _stdin() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


# The publisher ---------------------------------------------------------------------------


async def publisher(kind: str):
    """An ``async def send(text)`` for ``kind``, and a closer."""
    from broadcast_apps import CHANNEL, GROUP, REDIS_URL

    if kind == "aiodjango":
        from broadcast_apps import _django

        _django(
            INSTALLED_APPS=["aiodjango"],
            AIODJANGO_BROADCAST={
                "default": {
                    "BACKEND": "aiodjango.broadcast.backends.redis.RedisBroadcast",
                    "LOCATION": REDIS_URL,
                }
            },
        )
        import aiodjango.broadcast as broadcast

        async def send(text: str) -> None:
            await broadcast.publish(GROUP, text)

        return send, broadcast.close
    if kind == "bare":
        import redis.asyncio as redis

        client = redis.Redis.from_url(REDIS_URL)

        async def send(text: str) -> None:
            await client.publish(CHANNEL, json.dumps(text))

        return send, client.aclose
    if kind == "channels":
        from broadcast_apps import _channels_app

        _channels_app()
        from channels.layers import get_channel_layer

        layer = get_channel_layer()

        async def send(text: str) -> None:
            await layer.group_send(GROUP, {"type": "bench.message", "text": json.dumps(text)})

        async def close() -> None:
            pass  # channels_redis's connections close with the loop

        return send, close
    raise SystemExit(f"unknown publisher kind {kind!r}")


async def publish(kind: str) -> None:
    send, close = await publisher(kind)
    reader = await _stdin()
    try:
        while True:
            line = (await reader.readline()).decode().split()
            if not line or line[0] == "quit":
                return
            step, rate, seconds = int(line[1]), float(line[2]), float(line[3])
            total = int(rate * seconds)
            start = time.monotonic()
            errors = 0
            for seq in range(total):
                delay = start + seq / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    await send(f"{step} {seq} {time.monotonic_ns()}")
                except Exception:
                    errors += 1
            elapsed = time.monotonic() - start
            print(json.dumps({"step": step, "published": total - errors, "errors": errors,
                              "elapsed": elapsed}), flush=True)
    finally:
        await close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("subscribe")
    sub.add_argument("urls", nargs="+")
    sub.add_argument("--count", type=int, default=1000)
    pub = commands.add_parser("publish")
    pub.add_argument("kind", choices=["aiodjango", "bare", "channels"])
    args = parser.parse_args()
    _uvloop()
    if args.command == "subscribe":
        asyncio.run(subscribe(args.urls, args.count))
    else:
        asyncio.run(publish(args.kind))


if __name__ == "__main__":
    main()
