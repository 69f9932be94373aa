"""Real processes for the broadcast tests: redis-server (stoppable and restartable on its
port) and gunicorn serving this project, each on a free 127.0.0.1 port, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

from tests.example_servers import free_port, read, stop, wait_for_http
from tests.support.needs import needs_program

ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT = 30.0


class RedisServer:
    """A throw-away redis-server; ``kill()`` and ``start()`` again keep its port."""

    def __init__(self, folder: Path) -> None:
        self.binary = needs_program("redis-server")
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Optional[subprocess.Popen] = None
        self.log = folder / f"redis-{self.port}.log"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", str(self.folder),
                ],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n{read(self.log)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server not ready:\n{read(self.log)}")
            time.sleep(0.05)

    def ping(self) -> bool:
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        return False

    def kill(self) -> None:
        """SIGKILL: connections drop at once, as when the machine or the process dies."""
        if self.proc is not None:
            stop(self.proc, signal.SIGKILL)
            self.proc = None

    def close(self) -> None:
        self.kill()


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[RedisServer]:
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.close()


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    def logged(self) -> str:
        return read(self.log)


@contextlib.contextmanager
def gunicorn(folder: Path, *args: str, env: Optional[dict] = None, name: str = "gunicorn") -> Iterator[Server]:
    """``gunicorn tests.broadcast_project.wsgi:app`` with aiohttp's worker, until the block ends."""
    port = free_port()
    log = folder / f"{name}-{port}.log"
    environ = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "BROADCAST_REDIS_URL")}
    environ["DJANGO_SETTINGS_MODULE"] = "tests.broadcast_project.settings"
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([environ["PYTHONPATH"]] if environ.get("PYTHONPATH") else []))
    environ["PYTHONUNBUFFERED"] = "1"
    environ.update(env or {})
    command = [
        sys.executable, "-m", "gunicorn", "tests.broadcast_project.wsgi:app",
        "--bind", f"127.0.0.1:{port}",
        "--worker-class", "aiohttp.worker.GunicornWebWorker",
        "--no-control-socket",
        "--graceful-timeout", "5",
        *args,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/stats/", proc, log)
        yield Server(proc, port, log)
    finally:
        stop(proc)
