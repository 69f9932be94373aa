"""Running the example project for real: gunicorn, manage.py and redis-server subprocesses.

Shared by ``test_example*.py``, ``test_gunicorn*.py``, ``test_browser*.py`` and
``test_scaleout*.py``. Every process is started on a free 127.0.0.1 port, waited
for with a bound, and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.needs import needs_program

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example"
PYTHON = sys.executable
WORKER = "aiohttp.worker.GunicornWebWorker"
UVLOOP_WORKER = "aiohttp.worker.GunicornUVLoopWebWorker"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def example_env(db: Path, **extra: str) -> dict[str, str]:
    """The environment of an example process: aiodjango importable, its own database."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("REDIS_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["DJANGO_SQLITE_PATH"] = str(db)
    env["DJANGO_DEBUG"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the example's migrations applied (once per test session)."""
    folder = tmp_path_factory.getbasetemp() / "example-db"
    db = folder / "db.sqlite3"
    if not db.exists():
        folder.mkdir(exist_ok=True)
        scratch = folder / "migrating.sqlite3"
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=EXAMPLE,
            env=example_env(scratch),
            check=True,
            timeout=120,
        )
        scratch.rename(db)
    return db


ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery staple"


def db_with_admin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the migrated database with a superuser, ``ADMIN``."""
    db = tmp_path_factory.mktemp("example-admin") / "db.sqlite3"
    shutil.copy(migrated_db(tmp_path_factory), db)
    subprocess.run(
        [PYTHON, "manage.py", "createsuperuser", "--noinput"],
        cwd=EXAMPLE,
        env=example_env(
            db,
            DJANGO_SUPERUSER_USERNAME=ADMIN,
            DJANGO_SUPERUSER_EMAIL="admin@example.com",
            DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
        ),
        check=True,
        timeout=60,
        capture_output=True,
    )
    return db


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    """Send ``sig`` to ``proc`` (by PID) and wait; SIGKILL after ``timeout``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


def wait_for_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT) -> None:
    """Poll ``url`` until it answers; fail early with the log if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(
                f"server exited with {proc.returncode} before serving {url}:\n{read(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready after {timeout} s:\n{read(log)}")
        time.sleep(0.05)


def wait_for_log(log: Path, text: str, timeout: float = 10.0, count: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while read(log).count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged {count}x within {timeout} s:\n{read(log)}")
        time.sleep(0.05)


def read(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class Server:
    """A running server process: its base URL, process and log file."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def logged(self) -> str:
        return read(self.log)


@contextlib.contextmanager
def gunicorn(
    tmp_path: Path,
    db: Path,
    *args: str,
    app: str = "example.wsgi:app",
    worker: str | None = WORKER,
    env: dict[str, str] | None = None,
    ready_path: str = "/api/hello/ready/",
    name: str = "gunicorn",
) -> Iterator[Server]:
    """Run ``gunicorn app`` from example/ on a free port until the block ends."""
    port = free_port()
    log = tmp_path / f"{name}-{port}.log"
    command = [
        PYTHON, "-m", "gunicorn", app,
        "--bind", f"127.0.0.1:{port}",
        "--no-control-socket",
        "--graceful-timeout", "10",
        *(["--worker-class", worker] if worker else []),
        *args,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=EXAMPLE,
            env=example_env(db, **(env or {})),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}{ready_path}", proc, log)
        yield Server(proc, port, log)
    finally:
        stop(proc)


@contextlib.contextmanager
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A throw-away redis-server on a free port; yields its URL."""
    binary = needs_program("redis-server")
    port = free_port()
    log = tmp_path / f"redis-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary, "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {proc.returncode}:\n{read(log)}")
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        break
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server not ready:\n{read(log)}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)
