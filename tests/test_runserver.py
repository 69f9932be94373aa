"""``manage.py runserver`` for real: subprocesses serving tests/runserver_project.

Each server runs in a copy of the project in ``tmp_path``, on a free port of
127.0.0.1, in its own process group (so SIGINT reaches it as Ctrl-C does), and
is killed in ``finally``.  Every wait is bounded and polls.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import django
import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT = Path(__file__).resolve().parent / "runserver_project"

AIOHTTP_3_9 = tuple(int(p) for p in aiohttp.__version__.split(".")[:2]) < (3, 10)
START_TIMEOUT = 30.0
BANNER = "Starting aiodjango development server at "


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def copy_project(dest: Path) -> Path:
    shutil.copytree(PROJECT, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def wait_for(predicate, timeout: float, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s: {message}")
        time.sleep(interval)


class Server:
    """``python manage.py runserver ...`` in ``cwd``, with its output collected."""

    def __init__(
        self,
        cwd: Path,
        *options: str,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: dict | None = None,
    ):
        self.cwd = cwd
        self.host = f"[{host}]" if ":" in host else host
        self.port = free_port(host) if port is None else port
        self.args = [*options, f"{self.host}:{self.port}"]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DEMO_")}
        environ.update(
            DJANGO_SETTINGS_MODULE="project.settings",
            PYTHONPATH=os.pathsep.join(
                [str(REPO), str(cwd), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        environ.pop("DJANGO_RUNSERVER_HIDE_WARNING", None)
        environ.update(env or {})
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", *self.args],
            cwd=cwd,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's job
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    @property
    def out(self) -> str:
        return "".join(self.stdout)

    @property
    def err(self) -> str:
        return "".join(self.stderr)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        return f"--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"

    def wait_started(self, timeout: float = START_TIMEOUT) -> None:
        def started():
            if self.proc.poll() is not None:
                pytest.fail(f"runserver exited with {self.proc.returncode}\n{self.output()}")
            return BANNER in self.out

        wait_for(started, timeout, message=f"no banner\n{self.output()}")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str, dict]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read().decode(), dict(error.headers)

    def try_get(self, path: str) -> str | None:
        """The body of a 200 answer, or ``None`` while nothing (good) answers."""
        try:
            status, body, _ = self.get(path, timeout=2.0)
        except OSError:
            return None
        return body if status == 200 else None

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        finally:
            self.proc.wait(10)
            for reader in self._readers:
                reader.join(5)
            self.proc.stdout.close()
            self.proc.stderr.close()


def start(cwd: Path, *args: str, **kwargs) -> Server:
    server = Server(cwd, *args, **kwargs)
    try:
        server.wait_started()
    except BaseException:
        server.close()
        raise
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the read-only tests: DEBUG on, no reloader."""
    srv = start(copy_project(tmp_path_factory.mktemp("runserver") / "site"), "--noreload")
    try:
        yield srv
    finally:
        srv.close()


# -- the combined app -------------------------------------------------------


def test_lifted_view_answers(server):
    status, body, _ = server.get("/hello/")
    assert (status, body) == (200, "Hello from aiohttp")


def test_django_view_answers_through_the_wsgi_middleware(server):
    status, body, headers = server.get("/django/")
    assert (status, body) == (200, "Hello from Django")
    # WSGI_APPLICATION is served as wsgi.py builds it, middleware included.
    assert headers["X-WSGI-Middleware"] == "yes"


async def test_websocket_answers_and_its_handshake_is_logged(server):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.url + "/ws/") as ws:
            await ws.send_str("ping")
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.data == "echo: ping"
            # Logged at the handshake, while the socket is still open.
            await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: wait_for(
                    lambda: '"GET /ws/ HTTP/1.1" 101 0' in server.err, 5, message=server.err
                ),
            )


def test_static_file_served_with_debug(server):
    status, body, headers = server.get("/static/demo/hello.txt")
    assert (status, body) == (200, "static hello\n")
    assert headers["Content-Type"].startswith("text/plain")


def test_missing_static_file_is_404(server):
    status, body, _ = server.get("/static/demo/missing.txt")
    assert status == 404
    assert "demo/missing.txt" in body


def test_banner_checks_and_migrations_notice(server):
    out = server.out
    assert out.startswith("Performing system checks...\n\nSystem check identified no issues")
    assert "You have 2 unapplied migration(s)" in out
    assert f"Django version {django.get_version()}, using settings 'project.settings'\n" in out
    assert f"{BANNER}http://127.0.0.1:{server.port}/\nQuit the server with CONTROL-C." in out
    assert "Starting development server" not in out
    assert "Starting WSGI development server" not in out
    runserver_source = Path(django.__file__).parent / "core/management/commands/runserver.py"
    if "DJANGO_RUNSERVER_HIDE_WARNING" in runserver_source.read_text():
        assert "WARNING: This is a development server." in out


def test_access_lines_in_djangos_format(server):
    server.get("/hello/?x=1")
    server.get("/nowhere/")
    line = r'\[\d{2}/[A-Z][a-z]{2}/\d{4} \d{2}:\d{2}:\d{2}\] "GET %s HTTP/1\.1" %s\n'
    wait_for(
        lambda: re.search(line % (re.escape("/hello/?x=1"), "200 18"), server.err)
        and re.search(line % ("/nowhere/", r"404 \d+"), server.err),
        5,
        message=server.err,
    )
    assert "Traceback" not in server.err


# -- static files: DEBUG, --insecure, --nostatic ----------------------------


@pytest.mark.parametrize(
    ("debug", "options", "expected"),
    [
        ("0", [], 404),
        ("0", ["--insecure"], 200),
        ("1", ["--nostatic", "--skip-checks"], 404),
    ],
    ids=["debug-off", "debug-off-insecure", "nostatic-skip-checks"],
)
def test_static_files_options(tmp_path, debug, options, expected):
    cwd = copy_project(tmp_path / "site")
    srv = Server(cwd, "--noreload", *options, env={"DEMO_DEBUG": debug})
    try:
        srv.wait_started()
        status, body, _ = srv.get("/static/demo/hello.txt")
        assert status == expected, srv.output()
        if expected == 200:
            assert body == "static hello\n"
        assert srv.get("/hello/")[0] == 200
    finally:
        srv.close()
    assert ("Performing system checks" in srv.out) != ("--skip-checks" in options)


def test_without_staticfiles_and_with_the_warning_hidden(tmp_path):
    """Django's runserver is chained to when staticfiles is not installed."""
    cwd = copy_project(tmp_path / "site")
    env = {"DEMO_NO_STATICFILES": "1", "DJANGO_RUNSERVER_HIDE_WARNING": "true"}
    srv = Server(cwd, "--noreload", env=env)
    try:
        srv.wait_started()
        assert srv.get("/hello/")[0] == 200
        assert srv.get("/static/demo/hello.txt")[0] == 404
    finally:
        srv.close()
    assert "WARNING: This is a development server" not in srv.out


def test_nostatic_is_refused_without_staticfiles(tmp_path):
    cwd = copy_project(tmp_path / "site")
    srv = Server(cwd, "--noreload", "--nostatic", env={"DEMO_NO_STATICFILES": "1"})
    try:
        assert srv.wait() == 2  # argparse's usage error, as with Django's runserver
    finally:
        srv.close()
    assert "error: unrecognized arguments: --nostatic" in srv.err


# -- errors and signals -----------------------------------------------------


def test_port_in_use_is_one_line_and_exit_1(tmp_path):
    cwd = copy_project(tmp_path / "site")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        srv = Server(cwd, port=port)  # with the autoreloader, as users run it
        try:
            assert srv.wait(20) == 1, srv.output()
        finally:
            srv.close()
    assert srv.err.endswith("Error: That port is already in use.\n"), srv.err
    assert "Traceback" not in srv.err
    assert BANNER not in srv.out


def test_address_not_available_is_one_line_and_exit_1(tmp_path):
    cwd = copy_project(tmp_path / "site")
    # TEST-NET-1 (RFC 5737): never an address of this machine.
    srv = Server(cwd, "--noreload", host="192.0.2.1", port=free_port())
    try:
        assert srv.wait(20) == 1, srv.output()
    finally:
        srv.close()
    assert srv.err == "Error: That IP address can't be assigned to.\n", srv.err


def test_ctrl_c_exits_0_without_traceback(tmp_path):
    cwd = copy_project(tmp_path / "site")
    srv = Server(cwd)  # with the autoreloader
    try:
        srv.wait_started()
        assert srv.get("/hello/")[0] == 200
        srv.interrupt()
        assert srv.wait() == 0, srv.output()
    finally:
        srv.close()
    assert "Traceback" not in srv.err
    assert "KeyboardInterrupt" not in srv.err


async def test_ctrl_c_closes_websockets_and_runs_cleanup_hooks(tmp_path):
    """AIODJANGO_APPLICATION's app: its hooks run, open websockets get 1001."""
    cwd = copy_project(tmp_path / "site")
    hooks = tmp_path / "hooks.txt"
    loop = asyncio.get_running_loop()
    srv = Server(
        cwd,
        "--noreload",
        env={"DEMO_AIODJANGO_APPLICATION": "project.aio.app", "DEMO_HOOKS_FILE": str(hooks)},
    )
    try:
        await loop.run_in_executor(None, srv.wait_started)
        async with aiohttp.ClientSession() as session:
            async with session.get(srv.url + "/hello/") as response:
                assert await response.text() == "Hello from aiohttp"
            async with session.ws_connect(srv.url + "/ws/") as ws:
                await ws.send_str("ping")
                assert (await asyncio.wait_for(ws.receive(), 5)).data == "echo: ping"
                srv.interrupt()
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.type == aiohttp.WSMsgType.CLOSE
                # 1001, going away; on aiohttp 3.9 the handler's own close (1000),
                # made as its receive loop ends, can get out first.
                assert msg.data in (1001, 1000) if AIOHTTP_3_9 else msg.data == 1001
        assert await loop.run_in_executor(None, srv.wait) == 0, srv.output()
    finally:
        await loop.run_in_executor(None, srv.close)
    assert "Traceback" not in srv.err
    assert hooks.read_text().split() == ["shutdown", str(srv.proc.pid), "cleanup", str(srv.proc.pid)]


# -- autoreload -------------------------------------------------------------


def wait_for_edit(srv: Server, path: Path, predicate, timeout: float = 30.0, message: str = ""):
    """Poll ``predicate``; touch ``path`` again now and then.

    Django's StatReloader notices a change only to a file whose previous
    mtime it has seen (it looks once a second), so an edit made before that
    first look is re-announced by a newer mtime.
    """
    deadline = time.monotonic() + timeout
    next_touch = time.monotonic() + 1.5
    while True:
        result = predicate()
        if result:
            return result
        now = time.monotonic()
        if now > deadline:
            pytest.fail(f"timed out after {timeout}s: {message}\n{srv.output()}")
        if srv.proc.poll() is not None:
            pytest.fail(f"runserver exited with {srv.proc.returncode}\n{srv.output()}")
        if now > next_touch:
            os.utime(path)
            next_touch = now + 1.5
        time.sleep(0.1)


def test_autoreload_serves_edits_and_recovers_from_a_syntax_error(tmp_path):
    cwd = copy_project(tmp_path / "site")
    views = cwd / "demo" / "views.py"
    source = views.read_text()
    hooks = tmp_path / "hooks.txt"
    srv = Server(
        cwd,
        env={"DEMO_AIODJANGO_APPLICATION": "project.aio.app", "DEMO_HOOKS_FILE": str(hooks)},
    )
    try:
        srv.wait_started()
        assert srv.try_get("/hello/") == "Hello from aiohttp"

        views.write_text(source.replace("Hello from aiohttp", "Edited once"))
        wait_for_edit(srv, views, lambda: srv.try_get("/hello/") == "Edited once", message="edit")
        # The first server process ran its app's shutdown and cleanup hooks.
        assert hooks.read_text().split()[::2] == ["shutdown", "cleanup"]

        views.write_text(source + "\ndef broken(:\n")
        wait_for_edit(srv, views, lambda: "SyntaxError" in srv.err, message="syntax error")
        assert srv.proc.poll() is None  # the reloader waits for the fix

        views.write_text(source.replace("Hello from aiohttp", "Fixed"))
        wait_for_edit(srv, views, lambda: srv.try_get("/hello/") == "Fixed", message="fix")
        assert srv.try_get("/django/") == "Hello from Django"
    finally:
        srv.close()


# -- IPv6 -------------------------------------------------------------------


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_address(tmp_path):
    cwd = copy_project(tmp_path / "site")
    srv = Server(cwd, "--noreload", host="::1")
    try:
        srv.wait_started()
        assert f"{BANNER}http://[::1]:{srv.port}/" in srv.out
        assert srv.try_get("/hello/") == "Hello from aiohttp"
    finally:
        srv.close()
