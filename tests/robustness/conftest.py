"""Fixtures of the robustness suite: real server subprocesses, and the summary table.

``AIODJANGO_SOAK=1`` selects the long mode (60 s of load, thousands of fuzz
examples); the default run is bounded for CI.  Every server is a subprocess
killed by PID in ``finally``; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("AIODJANGO_SOAK", "") not in ("", "0")


def scaled(default: float, soak: float) -> float:
    """A duration or count: ``default`` in the normal run, ``soak`` in the long mode."""
    return soak if SOAK else default


# --- the summary table -------------------------------------------------------


@dataclass
class Report:
    hostile_tried: int = 0
    hostile_refused: int = 0  # answered 4xx, or closed without calling a view
    hostile_routed: int = 0  # odd but legal: answered by the view resolve() picks
    hostile_upstream: int = 0  # accepted by aiohttp by design (documented)
    fuzz_examples: dict[str, int] = field(default_factory=dict)
    clients_cut: int = 0
    load_requests: int = 0
    load_errors: int = 0
    load_bytes: int = 0
    load_seconds: float = 0.0
    rss_kib: list[tuple[int, int]] = field(default_factory=list)  # (first half, second half)
    leak_checks: int = 0
    leaks_found: int = 0
    notes: list[str] = field(default_factory=list)

    def fuzz(self, name: str, count: int = 1) -> None:
        self.fuzz_examples[name] = self.fuzz_examples.get(name, 0) + count

    def used(self) -> bool:
        return bool(self.hostile_tried or self.fuzz_examples or self.load_requests or self.leak_checks)

    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ("hostile inputs tried", str(self.hostile_tried)),
            ("  refused (4xx or closed, no view called)", str(self.hostile_refused)),
            ("  odd but legal, answered as resolve() says", str(self.hostile_routed)),
            ("  accepted by aiohttp by design (documented)", str(self.hostile_upstream)),
            ("  not refused (failed, or known bug: xfail)", str(self.hostile_tried - self.hostile_refused - self.hostile_routed - self.hostile_upstream)),
            ("fuzz examples run", str(sum(self.fuzz_examples.values()))),
        ]
        rows += [(f"  {name}", str(count)) for name, count in sorted(self.fuzz_examples.items())]
        rows += [
            ("clients cut (vanished or timed out)", str(self.clients_cut)),
            ("requests under load", str(self.load_requests)),
            ("  errors under load", str(self.load_errors)),
        ]
        if self.load_seconds:
            rows.append(("  load duration / MiB moved", f"{self.load_seconds:.1f} s / {self.load_bytes / 2**20:.1f}"))
        for first, second in self.rss_kib:
            rows.append(("  server RSS 1st -> 2nd half", f"{first / 1024:.1f} -> {second / 1024:.1f} MiB ({(second - first) / first:+.1%})"))
        rows += [
            ("leak checks", str(self.leak_checks)),
            ("leaks found", str(self.leaks_found)),
            ("mode", "soak (AIODJANGO_SOAK=1)" if SOAK else "default"),
        ]
        return rows


REPORT = Report()


@pytest.fixture(scope="session")
def report() -> Report:
    return REPORT


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not REPORT.used():
        return
    rows = REPORT.rows()
    width = max(len(name) for name, _ in rows)
    terminalreporter.section("aiodjango robustness summary")
    for name, value in rows:
        terminalreporter.write_line(f"{name.ljust(width)}  {value}")
    for note in REPORT.notes:
        terminalreporter.write_line(f"note: {note}")
    target = os.environ.get("AIODJANGO_ROBUSTNESS_REPORT")
    if target:
        Path(target).write_text(json.dumps(dict(rows), indent=2) + "\n")


# --- server subprocesses --------------------------------------------------------


def _env(tmpdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.robustness.settings",
        PYTHONPATH=str(ROOT),
        TMPDIR=str(tmpdir),
        PYTHONUNBUFFERED="1",
    )
    env.pop("PYTHONWARNINGS", None)
    env.update(extra or {})
    return env


class Server:
    """A server subprocess on 127.0.0.1, with its log and a private $TMPDIR."""

    def __init__(self, argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.tmpdir = workdir / "tmp"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "server.log"
        self.argv = argv
        self.env = _env(self.tmpdir, env)
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.listener: socket.socket | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "Server":
        log = open(self.log_path, "w")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        finally:
            log.close()
        line = self._read_line(timeout)
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}\n{self.log()}")
        self.port = int(line.split()[1])
        return self

    def _read_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                return f"(nothing within {timeout} s)"
        return self.proc.stdout.readline().strip()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def diag(self) -> dict[str, Any]:
        status, _, body = self.get("/__diag__/")
        assert status == 200, body
        return json.loads(body)

    def rss_kib(self, pid: int | None = None) -> int:
        with open(f"/proc/{pid or self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # our own session: the server and its workers
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        if self.listener is not None:
            self.listener.close()
            self.listener = None


def aiodjango_server(workdir: Path, *options: str, env: dict[str, str] | None = None) -> Server:
    argv = [sys.executable, "-m", "tests.robustness.server_app", "--port", "0", *options]
    return Server(argv, workdir, env)


def gunicorn_server(workdir: Path, *options: str, env: dict[str, str] | None = None) -> Server:
    """gunicorn with aiohttp's worker, on a socket bound here and passed as fd://."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.set_inheritable(True)
    argv = [
        sys.executable, "-m", "gunicorn",
        "--no-control-socket",
        "--worker-class", "aiohttp.worker.GunicornWebWorker",
        "--bind", f"fd://{listener.fileno()}",
        "--graceful-timeout", "10",
        "--timeout", "30",
        *options,
        "tests.robustness.server_app:gunicorn_app",
    ]
    server = Server(argv, workdir, env)
    server.listener = listener
    server.port = listener.getsockname()[1]
    return server


def start_gunicorn(server: Server, workers: int, timeout: float = 30.0) -> Server:
    """Start gunicorn and wait until ``workers`` distinct workers answer."""
    log = open(server.log_path, "w")
    try:
        server.proc = subprocess.Popen(
            server.argv,
            cwd=ROOT,
            env=server.env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            pass_fds=(server.listener.fileno(),),
            start_new_session=True,
        )
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited {server.proc.returncode}:\n{server.log()}")
        if len(worker_pids(server)) == workers:
            try:
                server.diag()
                return server
            except (OSError, AssertionError):
                pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"gunicorn: {workers} workers did not answer within {timeout} s\n{server.log()}")


def worker_pids(server: Server) -> set[int]:
    """The arbiter's children (its workers)."""
    try:
        with open(f"/proc/{server.pid}/task/{server.pid}/children") as children:
            return {int(pid) for pid in children.read().split()}
    except OSError:
        return set()


@pytest.fixture
def spawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """``spawn(*options)`` starts an aiodjango server subprocess, stopped at teardown."""
    servers: list[Server] = []

    def start(*options: str, env: dict[str, str] | None = None) -> Server:
        server = aiodjango_server(tmp_path_factory.mktemp("server"), *options, env=env)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One aiodjango server subprocess shared by a test module."""
    server = aiodjango_server(tmp_path_factory.mktemp("server"))
    try:
        yield server.start()
    finally:
        server.stop()


# --- leak checks ------------------------------------------------------------------

def settled(server: Server, baseline: dict[str, Any], *, timeout: float = 5.0, fd_slack: int = 2) -> dict[str, Any]:
    """Wait (bounded) until the server holds nothing more than at ``baseline``.

    Counts every criterion still failing at the deadline as a leak in the
    report, and fails the test naming them.
    """
    deadline = time.monotonic() + timeout
    while True:
        now = server.diag()
        problems = leak_problems(baseline, now, fd_slack)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    REPORT.leak_checks += 1
    REPORT.leaks_found += len(problems)
    assert not problems, f"leaks after {timeout} s: {problems}"
    return now


def leak_problems(baseline: dict[str, Any], now: dict[str, Any], fd_slack: int = 2) -> list[str]:
    problems = []
    if now["fds"] > baseline["fds"] + fd_slack:
        problems.append(f"file descriptors {baseline['fds']} -> {now['fds']}")
    if now["tmp_files"]:
        problems.append(f"temporary files left: {now['tmp_files'][:5]}")
    for key in ("wsgi_inflight", "lifted_inflight", "ws_open", "sync_slow_inflight"):
        if now[key] > baseline.get(key, 0):
            problems.append(f"{key} {baseline.get(key, 0)} -> {now[key]}")
    if now["wsgi_not_closed"] > baseline.get("wsgi_not_closed", 0):
        problems.append(f"WSGI iterables never closed: {now['wsgi_not_closed']}")
    if now["django_stream_started"] != now["django_stream_closed"]:
        problems.append(f"Django streams started {now['django_stream_started']}, closed {now['django_stream_closed']}")
    if now["lifted_stream_started"] != now["lifted_stream_done"]:
        problems.append(f"lifted streams started {now['lifted_stream_started']}, done {now['lifted_stream_done']}")
    if now["violations"]:
        problems.append(f"corrupted environs reached Django: {now['violations'][:3]}")
    if now["canary"]:
        problems.append(f"smuggled requests reached a view: {now['canary']}")
    return problems
