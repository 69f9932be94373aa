"""Keeps the benchmark harness (benchmarks/run.py) from rotting.

Runs it for real with tiny durations on the configurations that need nothing
beyond the test extras (aiodjango and bare aiohttp), plus wrk.  It measures
nothing: speed targets live in benchmarks/RESULTS.md, never in tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.needs import needs_program
from tests.support.servers import is_running

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
TIMEOUT = 120  # seconds; the run itself takes 5-20 (server start-up is most of it)


def run_harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RUN), "--python", "current", *args],
        capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )


def require_wrk() -> None:
    needs_program("wrk", "apt-get install -y wrk")


def test_lists_every_configuration():
    done = run_harness("--list")
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    for name in ("lifted/aiodjango", "lifted/bare-aiohttp-same-bytes", "sync/gunicorn-gthread",
                 "file/aiodjango", "routing/lifted-1000", "websockets/aiodjango"):
        assert name in names


def test_says_how_to_install_wrk_when_missing(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # an empty PATH: no wrk on it
    done = run_harness("--only", "lifted/aiodjango", "--no-publish", env=env)
    assert done.returncode == 2
    assert "apt-get install -y wrk" in done.stderr


@pytest.mark.slow
def test_runs_and_writes_results(tmp_path):
    require_wrk()
    done = run_harness(
        "--only", "lifted/aiodjango,lifted/bare-aiohttp,websockets/aiodjango",
        "--duration", "1", "--warmup", "0", "--runs", "1", "--websockets", "20", "--echoes", "10",
        "--output-dir", str(tmp_path), "--no-publish",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "latest.json").read_text())
    benchmarks = results["benchmarks"]

    for name in ("lifted/aiodjango", "lifted/bare-aiohttp"):
        summary = benchmarks[name]["summary"]
        assert summary["rps"] > 0, name
        assert summary["errors"] == 0, name
        assert summary["p99_ms"] >= summary["p50_ms"] > 0, name
        assert f"| {name} |" in done.stdout  # the markdown table
    websockets = benchmarks["websockets/aiodjango"]["summary"]
    assert websockets["opened"] == 20
    assert websockets["echo_p99_ms"] > 0

    ratio = next(t for t in results["targets"] if t["versus"] == "lifted/bare-aiohttp")
    assert ratio["value"] > 0
    assert "taskset" in results["meta"]["pinning"] or "Not pinning" in results["meta"]["pinning"]
    # Every server the harness started was stopped by the time it returned.
    pids = [pid for bench in benchmarks.values() for run in bench["runs"] for pid in run["server_pids"]]
    assert len(pids) == 3
    for pid in pids:
        assert not is_running(pid), pid



async def test_same_bytes_anchor_sends_the_headers_of_a_lifted_view(aiohttp_client, settings):
    """``lifted/bare-aiohttp-same-bytes`` answers with the policy headers aiodjango's
    lifted view gets from the same MIDDLEWARE: the same response bytes."""
    from aiohttp import web

    from aiodjango import get_aio_application
    from tests.middleware_support import STARTPROJECT, policy_headers

    sys.path.insert(0, str(RUN.parent))
    try:
        import serve
    finally:
        sys.path.remove(str(RUN.parent))
    settings.MIDDLEWARE = STARTPROJECT
    settings.ROOT_URLCONF = "tests.middleware_urls"

    async def hello(request):
        return web.Response(text="lifted page")

    bare = web.Application()
    bare.router.add_get("/lifted/page/", serve.same_bytes(hello))
    anchor = await aiohttp_client(bare)
    lifted = await aiohttp_client(get_aio_application())
    async with anchor.get("/lifted/page/") as one, lifted.get("/lifted/page/") as other:
        assert policy_headers(one) == policy_headers(other)
        assert "X-Frame-Options" in policy_headers(one)
        assert await one.read() == await other.read()
