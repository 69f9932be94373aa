"""docs/bridge.rst says what works: its example runs as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

DOC = (Path(__file__).resolve().parent.parent / "docs" / "bridge.rst").read_text(encoding="utf-8")


def example() -> str:
    (block,) = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", DOC)
    return textwrap.dedent(block)


async def test_example_serves_a_plain_wsgi_app(aiohttp_client):
    namespace: dict = {"__name__": "any_wsgi_app"}
    exec(compile(example(), "docs/bridge.rst", "exec"), namespace)
    client = await aiohttp_client(namespace["make_app"]())
    resp = await client.get("/caf%C3%A9/")
    assert resp.status == 200
    assert await resp.read() == "Hello from /café/".encode()
