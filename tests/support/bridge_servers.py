"""The bridge test project (``tests/bridge_project``) under real servers.

One migrated SQLite file per set of servers, and three gunicorn processes
serving the same project side by side:

* ``bridge``: ``wsgi:app`` under gunicorn's aiohttp worker (Django through
  aiodjango's WSGI bridge, ``AIODJANGO_THREADS`` threads);
* ``sync``: ``wsgi:application`` under gunicorn's sync worker (the reference);
* ``gthread``: ``wsgi:application`` under gunicorn's gthread worker, as many
  threads as the bridge (the reference for keep-alive and for threads).

Each on a free 127.0.0.1 port with ``--no-control-socket``, its output in a
log file, waited for with a bound and stopped by PID (process group).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .servers import free_port, stop

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.bridge_project.settings"
BRIDGE_WORKER = "aiohttp.worker.GunicornWebWorker"
START_TIMEOUT = 30.0


def project_env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a project process; its files live in ``folder``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "BRIDGE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        PYTHONPATH=os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])),
        PYTHONUNBUFFERED="1",
        BRIDGE_DB=str(folder / "db.sqlite3"),
        BRIDGE_RECORDS=str(folder / "records.jsonl"),
        BRIDGE_CALLS=str(folder / "calls.jsonl"),
        BRIDGE_GATES=str(folder / "gates"),
        # gunicorn trusts X-Forwarded-* from 127.0.0.1 by default; the bridge
        # never does.  Compare like with like.
        FORWARDED_ALLOW_IPS="",
    )
    env.update(extra)
    return env


def migrate(folder: Path) -> None:
    """Create the project's SQLite file in ``folder`` (schema and the 500 rows)."""
    (folder / "gates").mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v0"],
        cwd=ROOT, env=project_env(folder), check=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen
    log: Path
    folder: Path

    def logged(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def logged_since(self, offset: int) -> str:
        with open(self.log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def wait_logged(self, text: str, offset: int = 0, timeout: float = 5.0) -> str:
        """Poll the log (from ``offset``) until ``text`` shows up; return what was logged."""
        return self.wait_matching(re.escape(text), offset, timeout)

    def wait_matching(self, pattern: str, offset: int = 0, timeout: float = 5.0) -> str:
        """Poll the log (from ``offset``) until a line matches ``pattern``; return that line."""
        deadline = time.monotonic() + timeout
        while True:
            logged = self.logged_since(offset)
            match = re.search(pattern, logged, re.MULTILINE)
            if match:
                start = logged.rfind("\n", 0, match.start()) + 1
                end = logged.find("\n", match.end())
                return logged[start:] if end < 0 else logged[start:end]
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: nothing matching {pattern!r} logged within "
                                     f"{timeout} s:\n{logged[-3000:]}")
            time.sleep(0.02)


def records(folder: Path, name: str = "records.jsonl") -> list[dict[str, Any]]:
    try:
        text = (folder / name).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _wait_ready(server: Server, ready: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    probe = b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.logged()[-3000:]}")
        if ready == "log":
            if "Booting worker with pid" in server.logged():
                return
        else:
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
                    sock.sendall(probe)
                    if sock.recv(16).startswith(b"HTTP/"):
                        return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server.name} not ready within {START_TIMEOUT} s:\n{server.logged()[-3000:]}")
        time.sleep(0.05)


@contextlib.contextmanager
def gunicorn(name: str, folder: Path, app: str, worker: str, *args: str,
             env: dict[str, str] | None = None, ready: str = "http") -> Iterator[Server]:
    """``gunicorn tests.bridge_project.wsgi:<app> --worker-class <worker>`` on a free port.

    ``ready="log"`` waits for the worker's boot line instead of an answer (for
    configurations such as the PROXY protocol that refuse a plain request).
    """
    port = free_port()
    log = folder / f"{name}-{port}.log"
    command = [
        sys.executable, "-m", "gunicorn", f"tests.bridge_project.wsgi:{app}",
        "--bind", f"127.0.0.1:{port}",
        "--worker-class", worker,
        "--workers", "1",
        "--no-control-socket",
        "--graceful-timeout", "5",
        "--log-level", "info",
        *args,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=project_env(folder, **(env or {})),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(name, port, proc, log, folder)
    try:
        _wait_ready(server, ready)
        yield server
    finally:
        stop(proc)


@contextlib.contextmanager
def side_by_side(folder: Path, threads: int = 4) -> Iterator[dict[str, Server]]:
    """The three servers of the module docstring, sharing ``folder``'s database."""
    migrate(folder)
    with contextlib.ExitStack() as stack:
        servers = {
            "bridge": stack.enter_context(gunicorn(
                "bridge", folder, "app", BRIDGE_WORKER, env={"AIODJANGO_THREADS": str(threads)})),
            "sync": stack.enter_context(gunicorn("sync", folder, "application", "sync")),
            "gthread": stack.enter_context(gunicorn(
                "gthread", folder, "application", "gthread", "--threads", str(threads))),
        }
        yield servers
