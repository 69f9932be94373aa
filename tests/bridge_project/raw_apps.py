"""Plain WSGI apps (no Django) mounted under ``/__raw__/`` in front of Django.

They do what Django never does: ``write()``, ``start_response(..., exc_info)``
after the headers went out, hop-by-hop headers, no Content-Type, broken or
informational statuses.  :class:`Dispatcher` is a WSGI middleware like any a
project may wrap Django in; ``wsgi.py`` serves it under the bridge and under
gunicorn's own workers.

Nothing here imports Django, so the in-process tests can serve these apps
from a bare :class:`aiodjango.wsgi.WSGIBridge` too.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]

#: Longest a gated app waits for its gate before answering anyway.
GATE_WAIT = 10.0
_TOKEN = re.compile(r"[a-z0-9]{1,40}\Z").match
HOP_BY_HOP = {"connection": "close", "keep-alive": "timeout=99", "transfer-encoding": "chunked"}
STATUSES = {"99": "99 X", "600": "600 X", "abc": "abc", "103": "103 Early Hints", "100": "100 Continue"}


def _query(environ: dict) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _bad(start_response: StartResponse, why: str) -> list[bytes]:
    start_response("400 Bad Request", [("Content-Type", "text/plain")])
    return [why.encode() + b"\n"]


def file_gate(environ: dict) -> Callable[[], bool] | None:
    """Wait (bounded) until the test creates the file ``$BRIDGE_GATES/<gate>``.

    A threading.Event cannot cross into a server process; a file can.
    """
    name = _query(environ).get("gate", "")
    folder = os.environ.get("BRIDGE_GATES")
    if not folder or not _TOKEN(name):
        return None
    path = os.path.join(folder, name)

    def wait() -> bool:
        deadline = time.monotonic() + GATE_WAIT
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    return wait


def write_then_wait(gate_for: Callable[[dict], Callable[[], bool] | None]) -> WSGIApp:
    """``write(b"first")``, then block until the gate opens, then return the rest."""

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        gate = gate_for(environ)
        if gate is None:
            return _bad(start_response, "no gate")
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first\n")
        opened = gate()
        return [b"second\n" if opened else b"gate timed out\n"]

    return app


def write_then_exc_info(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """``write()`` a chunk, then fail and call start_response with exc_info.

    The server must re-raise (PEP 3333: the headers are already sent) and cut
    the connection; a server that lets the call succeed splices a second
    response into the first one.
    """
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"first\n")
    try:
        raise RuntimeError("failed after write()")
    except RuntimeError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"HTTP/1.1 500 spliced second response\r\n\r\n"]


def yield_then_exc_info(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """Like :func:`write_then_exc_info`, with the first chunk yielded instead."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body() -> Iterator[bytes]:
        yield b"first\n"
        try:
            raise RuntimeError("failed after the first chunk")
        except RuntimeError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"HTTP/1.1 500 spliced second response\r\n\r\n"

    return body()


def hop_by_hop(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    name = _query(environ).get("name", "")
    if name.lower() not in HOP_BY_HOP:
        return _bad(start_response, "unknown header")
    start_response("200 OK", [("Content-Type", "text/plain"), (name, HOP_BY_HOP[name.lower()])])
    return [b"hop-by-hop header set\n"]


def no_content_type(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("X-App", "no-content-type")])
    if _query(environ).get("kind") == "generator":
        return (chunk for chunk in (b"no ", b"content ", b"type\n"))
    return [b"no content type\n"]


def status(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    code = _query(environ).get("code", "")
    if code not in STATUSES:
        return _bad(start_response, "unknown status")
    start_response(STATUSES[code], [("Content-Type", "text/plain"), ("X-App", "status")])
    return [b"body of status " + code.encode() + b"\n"]


APPS: dict[str, WSGIApp] = {
    "write-gate": write_then_wait(file_gate),
    "write-exc-info": write_then_exc_info,
    "yield-exc-info": yield_then_exc_info,
    "hop-by-hop": hop_by_hop,
    "no-content-type": no_content_type,
    "status": status,
}


class Dispatcher:
    """``/__raw__/<name>`` to the plain apps above, anything else to ``fallback``."""

    prefix = "/__raw__/"

    def __init__(self, fallback: WSGIApp) -> None:
        self.fallback = fallback

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(self.prefix):
            app = APPS.get(path[len(self.prefix):])
            if app is not None:
                return app(environ, start_response)
        return self.fallback(environ, start_response)
