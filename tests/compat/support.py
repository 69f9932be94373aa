"""Helpers of the live-server tests: plain HTTP, websockets, and Chromium through playwright."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from typing import Any, Iterator, Optional

import aiohttp

from tests.support.needs import needs_module, needs_program
from tests.support.servers import CHROMIUM_FLAGS, WAIT_MS

TIMEOUT = 10.0


class Fetched:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(url: str, *, method: str = "GET", data: Optional[bytes] = None, headers: Optional[dict] = None) -> Fetched:
    """One request with urllib (what a test without an event loop has); errors are responses too."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return Fetched(response.status, response.headers, response.read())
    except urllib.error.HTTPError as e:
        with e:
            return Fetched(e.code, e.headers, e.read())


def ws_exchange(url: str, send: list[str], *, receive: int, cookies: Optional[dict] = None, origin: Optional[str] = None) -> list[Any]:
    """Open a websocket, read one message, then send each of ``send``; ``receive`` JSON messages in all."""

    async def run() -> list[Any]:
        async with aiohttp.ClientSession(cookies=cookies or {}) as session:
            async with session.ws_connect(url, origin=origin) as ws:
                messages = [await ws.receive_json(timeout=TIMEOUT)]
                for text in send:
                    await ws.send_str(text)
                while len(messages) < receive:
                    messages.append(await ws.receive_json(timeout=TIMEOUT))
                return messages

    return asyncio.run(run())


@contextlib.contextmanager
def chromium_page() -> Iterator[tuple[Any, list[str]]]:
    """A page of Debian's headless Chromium (and its JavaScript errors), through playwright's sync API.

    That API runs an event loop in this thread while it is open: Django
    refuses ORM calls here meanwhile (``SynchronousOnlyOperation``), so tests
    create their data before and check the database after.
    """
    chromium = needs_program("chromium")
    sync_playwright = needs_module("playwright.sync_api").sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_FLAGS, chromium_sandbox=False
        )
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            browser.close()
