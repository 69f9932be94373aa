"""Who is talking: the display name of the user behind an aiohttp request.

Lifted handlers bypass Django's middleware, so there is no ``request.user``;
aiodjango's ``get_user`` reads the Django session cookie and loads the user,
as ``SessionMiddleware`` and ``AuthenticationMiddleware`` would. Log in
through the admin (``/admin/``) and your messages carry your username.
"""

from __future__ import annotations

from aiohttp import web

from aiodjango.auth import get_user

ANONYMOUS = "anonymous"


async def get_username(request: web.Request) -> str:
    """The username of the Django user logged in on ``request``, else "anonymous"."""
    user = await get_user(request)
    return user.get_username() if user.is_authenticated else ANONYMOUS
