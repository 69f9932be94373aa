"""Helpers for tests that count database connections and threads of lifted views."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Callable

from django.db import connections


def open_db_files() -> int:
    """File descriptors of this process open on the test database file."""
    name = os.path.realpath(connections["default"].settings_dict["NAME"])
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == name:
                count += 1
        except OSError:  # closed meanwhile
            pass
    return count


def db_threads() -> list[threading.Thread]:
    """The lifted views' database threads alive now."""
    return [t for t in threading.enumerate() if t.name.startswith("aiodjango-db")]


async def poll(probe: Callable[[], Any], timeout: float = 5.0) -> bool:
    """Whether ``probe()`` became true within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not probe():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
