"""Who is talking: the display name of the user behind an aiohttp request.

Lifted handlers bypass Django's middleware, so ``request.user`` does not
exist on them. Until aiodjango's session helpers are wired in here, everyone
in the chat is "anonymous"; this function is the one place to change.
"""

from __future__ import annotations

from aiohttp import web

ANONYMOUS = "anonymous"


async def get_username(request: web.Request) -> str:
    """Return the username of the Django user logged in on ``request``."""
    return ANONYMOUS
