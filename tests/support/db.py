"""Helpers for tests that count database connections and threads of lifted views."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Callable, Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from aiodjango.db import close_idle_threads


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


@pytest.fixture
async def baseline():
    """One user; every connection closed; the pool emptied before and after.

    The test gets the number of database files open at the start.
    """
    from django.contrib.auth.models import User

    await close_idle_threads()
    await sync_to_async(User.objects.create_user)("ada")
    await sync_to_async(connections.close_all)()
    yield open_db_files()
    await close_idle_threads()
    await sync_to_async(connections.close_all)()


@pytest.fixture
def conn_max_age() -> Iterator[Callable[[Any], None]]:
    """``conn_max_age(value)`` sets the default database's CONN_MAX_AGE for the test."""
    database = connections.settings["default"]
    before = database.get("CONN_MAX_AGE", 0)

    def set_to(value: Any) -> None:
        database["CONN_MAX_AGE"] = value

    yield set_to
    database["CONN_MAX_AGE"] = before
