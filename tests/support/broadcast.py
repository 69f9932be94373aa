"""What the broadcast tests of every backend share."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


async def take(subscription: Any, count: int = 1, timeout: float = 5.0) -> list:
    """The next ``count`` messages of ``subscription``, within ``timeout`` seconds."""

    async def collect() -> list:
        return [await subscription.__anext__() for _ in range(count)]

    return await asyncio.wait_for(collect(), timeout)


async def publish_from_threads(broadcast: Any, group: str, names: str, messages: Any, each: int = 100) -> None:
    """One thread per name ``publish_sync()``-ing ``[name, n]`` for n < ``each`` to ``group``;
    every message arrives on ``messages``, each thread's in its order."""

    def worker(name: str) -> None:
        for n in range(each):
            broadcast.publish_sync(group, [name, n])

    threads = [threading.Thread(target=worker, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    received = await take(messages, each * len(names))
    for thread in threads:
        await asyncio.to_thread(thread.join, 10)
    for name in names:
        assert [n for who, n in received if who == name] == list(range(each))
