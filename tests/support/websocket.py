"""Websocket handshakes through aiohttp's test client."""

from __future__ import annotations

from typing import Any, Optional

from aiohttp import WSServerHandshakeError


async def handshake(
    client: Any,
    origin: Optional[str],
    host: Optional[str] = None,
    proto: Optional[str] = None,
    path: str = "/ws/",
) -> int:
    """101 if an echo websocket at ``path`` opens and echoes, else the refusal's status."""
    headers = {}
    if origin is not None:
        headers["Origin"] = origin
    if host is not None:
        headers["Host"] = host
    if proto is not None:
        headers["X-Forwarded-Proto"] = proto
    try:
        ws = await client.ws_connect(path, headers=headers)
    except WSServerHandshakeError as exc:
        return exc.status
    try:
        await ws.send_str("ping")
        assert await ws.receive_str(timeout=5) == "echo: ping"
    finally:
        await ws.close()
    return 101
