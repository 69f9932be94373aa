"""An aiohttp application built by the project, for ``AIODJANGO_APPLICATION``."""

import os

from aiodjango import get_aio_application

from .wsgi import application

app = get_aio_application(application)


async def on_shutdown(app):
    _mark("shutdown")


async def on_cleanup(app):
    _mark("cleanup")


def _mark(event):
    path = os.environ.get("DEMO_HOOKS_FILE")
    if path:
        with open(path, "a") as f:
            f.write(f"{event} {os.getpid()}\n")


app.on_shutdown.append(on_shutdown)
app.on_cleanup.append(on_cleanup)
