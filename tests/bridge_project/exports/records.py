"""What the views and signal receivers record for the tests, one JSON line each.

Lines are appended with ``O_APPEND`` in one ``write()``, so records from
several threads and worker processes never interleave.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from django.utils import translation

_local = threading.local()


def append(variable: str, record: dict[str, Any]) -> None:
    """Append ``record`` to the file named by the environment variable ``variable``."""
    path = os.environ.get(variable)
    if not path:
        return
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def tag(rid: str) -> None:
    """Mark the request this thread is serving (read back by request_finished)."""
    _local.rid = rid


def on_request_started(sender: Any, **kwargs: Any) -> None:
    _local.rid = None


def on_request_finished(sender: Any, **kwargs: Any) -> None:
    """Record on which thread a tagged request's response was closed.

    Django sends ``request_finished`` from ``HttpResponse.close()``, which the
    WSGI server calls; the thread-local tag is the request whose view last ran
    on this thread, so a close() run on another thread than the view shows up
    as a missing or doubled record.
    """
    rid = getattr(_local, "rid", None)
    if rid is None:
        return
    _local.rid = None
    append("BRIDGE_RECORDS", {
        "event": "finished",
        "rid": rid,
        "thread": threading.get_ident(),
        "pid": os.getpid(),
        "lang": translation.get_language(),
    })
