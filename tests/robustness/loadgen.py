"""A mixed load against ``server_app``, run as a second process.

``python -m tests.robustness.loadgen URL --duration 10`` runs ``--concurrency``
clients for ``--warmup`` + ``--duration`` seconds, each picking at random:
lifted and Django hellos, echoes of random bodies (checksums both ways),
multipart uploads (spooled to disk by Django above 64 KiB), streamed
responses (every byte checked) and websocket conversations.  It prints one
JSON object: requests, errors (the first few described), bytes moved, and
the time the measured phase started, for the caller's RSS sampling.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
import time
from typing import Any

import aiohttp

from tests.robustness.server_app import pattern


class Load:
    def __init__(self, url: str, seed: int) -> None:
        self.url = url.rstrip("/")
        self.random = random.Random(seed)
        self.requests = 0
        self.errors: list[str] = []
        self.error_count = 0
        self.bytes = 0
        self.kinds: dict[str, int] = {}

    def body(self, small: bool = False) -> bytes:
        size = self.random.choice([0, 1, 100, 4096, 65535, 65537, 200_000] if not small else [1, 10, 1000])
        return os.urandom(size)

    async def hello(self, session: aiohttp.ClientSession, kind: str) -> None:
        path, text = {"lifted": ("/lifted/hello/", "lifted hello"), "django": ("/django/hello/", "django hello")}[kind]
        async with session.get(self.url + path) as response:
            body = await response.text()
            assert response.status == 200 and body == text, (response.status, body[:100])

    async def echo(self, session: aiohttp.ClientSession, kind: str) -> None:
        body = self.body()
        digest = hashlib.sha256(body).hexdigest()
        async with session.post(f"{self.url}/{kind}/echo/", data=body) as response:
            back = await response.read()
            assert response.status == 200, (response.status, back[:200])
            assert response.headers["X-SHA256"] == digest, "the server received other bytes"
            assert hashlib.sha256(back).hexdigest() == digest, "the client received other bytes"
        self.bytes += 2 * len(body)

    async def upload(self, session: aiohttp.ClientSession) -> None:
        content = self.body()
        form = aiohttp.FormData()
        form.add_field("note", "load")
        form.add_field("file", content, filename="data.bin", content_type="application/octet-stream")
        async with session.post(self.url + "/django/upload/", data=form) as response:
            result = await response.json()
            assert response.status == 200, (response.status, result)
            got = result["files"]["file"]
            assert (got["sha256"], got["size"]) == (hashlib.sha256(content).hexdigest(), len(content)), got
            assert got["spooled"] or len(content) <= 64 * 1024, got  # Django spooled it to $TMPDIR
        self.bytes += len(content)

    async def stream(self, session: aiohttp.ClientSession, kind: str) -> None:
        chunks, size = self.random.randint(1, 12), self.random.choice([1, 1000, 16384, 65536])
        async with session.get(f"{self.url}/{kind}/stream/?chunks={chunks}&size={size}") as response:
            body = await response.read()
            assert response.status == 200, response.status
            assert body == b"".join(pattern(size, i) for i in range(chunks)), "stream bytes differ"
        self.bytes += len(body)

    async def websocket(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(self.url + "/ws/") as ws:
            for _ in range(self.random.randint(1, 5)):
                if self.random.random() < 0.5:
                    text = os.urandom(self.random.randint(1, 2000)).hex()
                    await ws.send_str(text)
                    reply = await ws.receive_str()
                    assert reply == hashlib.sha256(text.encode()).hexdigest() + ":" + text, "ws text differs"
                    self.bytes += 2 * len(text)
                else:
                    data = self.body()
                    await ws.send_bytes(data)
                    assert await ws.receive_bytes() == data, "ws bytes differ"
                    self.bytes += 2 * len(data)

    async def one(self, session: aiohttp.ClientSession) -> None:
        choice = self.random.random()
        if choice < 0.15:
            kind, call = "lifted hello", self.hello(session, "lifted")
        elif choice < 0.30:
            kind, call = "django hello", self.hello(session, "django")
        elif choice < 0.42:
            kind, call = "lifted echo", self.echo(session, "lifted")
        elif choice < 0.54:
            kind, call = "django echo", self.echo(session, "django")
        elif choice < 0.66:
            kind, call = "django upload", self.upload(session)
        elif choice < 0.76:
            kind, call = "lifted stream", self.stream(session, "lifted")
        elif choice < 0.86:
            kind, call = "django stream", self.stream(session, "django")
        else:
            kind, call = "websocket", self.websocket(session)
        try:
            await asyncio.wait_for(call, 30)
        except Exception as error:  # every failure is counted and described
            self.error_count += 1
            if len(self.errors) < 10:
                self.errors.append(f"{kind}: {type(error).__name__}: {error}"[:300])
        self.requests += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    async def client(self, until: float) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            while time.monotonic() < until:
                await self.one(session)


async def run(url: str, duration: float, warmup: float, concurrency: int, seed: int) -> dict[str, Any]:
    load = Load(url, seed)
    started = time.monotonic()
    await asyncio.gather(*(load.client(started + warmup) for _ in range(concurrency)))
    measured = time.time()
    began = time.monotonic()
    await asyncio.gather(*(load.client(began + duration) for _ in range(concurrency)))
    return {
        "requests": load.requests,
        "errors": load.error_count,
        "error_samples": load.errors,
        "bytes": load.bytes,
        "kinds": load.kinds,
        "measured_from": measured,
        "seconds": time.monotonic() - started,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    result = asyncio.run(run(options.url, options.duration, options.warmup, options.concurrency, options.seed))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
