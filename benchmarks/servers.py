"""The servers under test: command lines, start-up, memory readings, stop by PID.

Every server runs the benchmark project (``project/``) in one process (for
gunicorn: one master and one worker), pinned to one CPU with ``taskset``.
aiodjango is imported from this working tree (``PYTHONPATH``), the other
servers from the Python that runs them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PROJECT = os.path.join(HERE, "project")
SMALL_URLCONF = "benchproject.urls"
LARGE_URLCONF = "benchproject.urls_large"

#: What each kind of server imports, so a run can skip what is not installed.
NEEDS = {
    "aiodjango": "aiohttp",
    "bare-aiohttp": "aiohttp",
    "aiohttp-wsgi": "aiohttp_wsgi",
    "gunicorn-gthread": "gunicorn",
    "gunicorn-sync": "gunicorn",
    "uvicorn": "uvicorn",
}

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class BenchError(RuntimeError):
    """A server or a load generator did not behave; the message says which."""


def pin(cpu: Optional[int]) -> list[str]:
    """``taskset -c CPU`` in front of a command, or nothing when not pinning."""
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ServerSpec:
    """One server configuration: its kind, thread count and URLconf."""

    kind: str
    threads: int = 8
    urlconf: str = SMALL_URLCONF

    @property
    def label(self) -> str:
        threads = f", {self.threads} threads"
        return {
            "aiodjango": "aiodjango" + threads,
            "bare-aiohttp": "bare aiohttp",
            "aiohttp-wsgi": "aiohttp + aiohttp-wsgi" + threads,
            "gunicorn-gthread": "gunicorn gthread" + threads,
            "gunicorn-sync": "gunicorn sync",
            "uvicorn": "uvicorn (Django ASGI)",
        }[self.kind]

    def command(self, python: str, port: int, versions: dict[str, Optional[str]]) -> list[str]:
        kind = self.kind
        if kind in ("aiodjango", "bare-aiohttp", "aiohttp-wsgi"):
            return [
                python, os.path.join(HERE, "serve.py"), kind,
                "--port", str(port), "--threads", str(self.threads),
            ]
        if kind.startswith("gunicorn-"):
            command = [
                python, "-m", "gunicorn", "benchproject.wsgi:application",
                "--bind", f"127.0.0.1:{port}", "--workers", "1", "--log-level", "warning",
            ]
            if _major(versions.get("gunicorn")) >= 27:
                command.append("--no-control-socket")
            if kind == "gunicorn-gthread":
                return command + ["--worker-class", "gthread", "--threads", str(self.threads)]
            return command + ["--worker-class", "sync"]
        if kind == "uvicorn":
            # The asyncio loop, as aiohttp uses, and the C HTTP parser when
            # installed (aiohttp has its own).
            http = "httptools" if versions.get("httptools") else "h11"
            return [
                python, "-m", "uvicorn", "benchproject.asgi:application",
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                "--lifespan", "off", "--loop", "asyncio", "--http", http,
                "--log-level", "warning",
            ]
        raise ValueError(f"unknown server kind {kind!r}; choose one of {sorted(NEEDS)}")


def _major(version: Optional[str]) -> int:
    try:
        return int((version or "0").split(".")[0])
    except ValueError:
        return 0


def _start_time(pid: int) -> Optional[str]:
    """The kernel's start time of ``pid`` (to never signal a recycled PID)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[19]
    except OSError:
        return None


def children(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.extend(int(child) for child in file.read().split())
        except OSError:
            pass
    return found


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found.append(child)
        found.extend(descendants(child))
    return found


def memory(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of ``pid`` in KiB, from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


def cpu_ns(pid: int) -> int:
    """CPU time used so far by the threads of ``pid``, in ns (/proc/PID/task/*/schedstat).

    Unlike requests/s, CPU time per request barely moves when other processes
    compete for the CPU, so it cross-checks the ratios on a busy machine.
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as file:
                total += int(file.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended
    return total


def reset_peak(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux 4.0+); False where refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


class Server:
    """A server subprocess: ``with Server(...) as server:`` starts it and stops it by PID."""

    def __init__(
        self,
        spec: ServerSpec,
        *,
        python: str,
        cpu: Optional[int],
        log_path: str,
        versions: dict[str, Optional[str]],
        ready_path: str = "/sync/hello/",
        env: Optional[dict[str, str]] = None,
        started: Optional[list[int]] = None,
    ) -> None:
        self.spec = spec
        self.python = python
        self.cpu = cpu
        self.log_path = log_path
        self.versions = versions
        self.ready_path = ready_path
        self.extra_env = env or {}
        self.port = 0
        self.process: Optional[subprocess.Popen] = None
        self.worker_pid = 0
        self._known: list[tuple[int, Optional[str]]] = []
        self.started = started if started is not None else []  # every PID seen, for the record

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "Server":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.port = free_port()
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONWARNINGS")
        }
        env["PYTHONPATH"] = os.pathsep.join(
            [PROJECT, REPO] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        env["DJANGO_SETTINGS_MODULE"] = "benchproject.settings"
        env["BENCH_URLCONF"] = self.spec.urlconf
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        command = pin(self.cpu) + self.spec.command(self.python, self.port, self.versions)
        with open(self.log_path, "ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command, cwd=PROJECT, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )
        self._remember(self.process.pid)
        self._wait_ready()
        self.worker_pid = self._find_worker()

    def _remember(self, pid: int) -> None:
        if all(known != pid for known, _ in self._known):
            self._known.append((pid, _start_time(pid)))
            self.started.append(pid)

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        url = self.url(self.ready_path)
        last_error: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.spec.label} exited with code {self.process.returncode} while "
                    f"starting; its output is in {self.log_path}:\n{self.log_tail()}"
                )
            try:
                status, _ = http_get(url, timeout=2.0)
            except OSError as error:
                last_error = error
            else:
                if status == 200:
                    return
                last_error = f"HTTP {status}"
            time.sleep(0.05)
        raise BenchError(
            f"{self.spec.label} did not answer 200 on {url} within {START_TIMEOUT:.0f} s "
            f"(last: {last_error}); its output is in {self.log_path}:\n{self.log_tail()}"
        )

    def _find_worker(self) -> int:
        """The PID that serves requests: gunicorn's worker, else the process itself."""
        assert self.process is not None
        pid = self.process.pid
        for child in descendants(pid):
            self._remember(child)
        if self.spec.kind.startswith("gunicorn-"):
            workers = children(pid)
            if len(workers) != 1:
                raise BenchError(f"expected one gunicorn worker under PID {pid}, found {workers}")
            return workers[0]
        return pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as log:
                return b"\n".join(log.read().splitlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def memory(self) -> dict[str, int]:
        return memory(self.worker_pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait; every PID it started is checked."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            for child in descendants(process.pid):
                self._remember(child)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        for pid, started in self._known:
            if pid != process.pid and started is not None and _start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process = None
