"""Faults: signals under load, views that raise or never return, workers killed.

The plain server is ``web.run_app()`` (``server_app.main``); the process
manager is gunicorn with ``aiohttp.worker.GunicornWebWorker``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import aiohttp
import pytest

from .conftest import REPORT, Server, gunicorn_server, settled, start_gunicorn, worker_pids


async def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def in_flight_then_sigterm(server: Server, signal_target: int) -> list[tuple[int, str]]:
    """Start slow requests of both kinds, SIGTERM once they run, collect the answers."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        slow = [
            asyncio.ensure_future(fetch(session, server.url + path))
            for path in ["/django/slow/?t=1.5"] * 3 + ["/lifted/sleep/?t=1.5"] * 3
        ]
        await wait_for(
            lambda: (d := server.diag())["sync_slow_inflight"] == 3 and d["lifted_inflight"] == 3,
            10,
            "six slow requests running",
        )
        os.kill(signal_target, signal.SIGTERM)
        return await asyncio.gather(*slow)


async def test_sigterm_lets_in_flight_requests_finish_then_exits_0(spawn) -> None:
    server = spawn("--shutdown-timeout", "10")
    started = time.monotonic()
    answers = await in_flight_then_sigterm(server, server.pid)
    assert answers == [(200, "slow done")] * 3 + [(200, "slept")] * 3
    assert await asyncio.to_thread(server.wait, 15) == 0
    assert time.monotonic() - started < 10, "the shutdown waited longer than its requests"
    assert server.proc.stdout.read().strip() == "EXITED cleanly"


async def test_sigterm_under_gunicorn_is_graceful(tmp_path) -> None:
    server = gunicorn_server(tmp_path, "--workers", "1")
    try:
        await asyncio.to_thread(start_gunicorn, server, 1)
        answers = await in_flight_then_sigterm(server, server.pid)
        assert answers == [(200, "slow done")] * 3 + [(200, "slept")] * 3
        assert await asyncio.to_thread(server.wait, 20) == 0, server.log()
        assert "Shutting down: Master" in server.log()
    finally:
        server.stop()


async def test_views_that_raise_get_a_500_logged_and_the_server_goes_on(spawn) -> None:
    server = spawn()
    baseline = server.diag()
    async with aiohttp.ClientSession() as session:
        for path in ["/lifted/raise/", "/django/raise/"] * 3:
            status, body = await fetch(session, server.url + path)
            assert status == 500, body
            assert "robustness: a" not in body  # DEBUG is off: no traceback to the client
            assert (await fetch(session, server.url + "/django/hello/"))[0] == 200
            assert (await fetch(session, server.url + "/lifted/hello/"))[0] == 200
    log = server.log()
    assert log.count("robustness: a lifted view raised") >= 3, log
    assert log.count("robustness: a Django view raised") >= 3, log
    settled(server, baseline)


@pytest.mark.parametrize("cancellation", [False, True], ids=["default", "handler_cancellation"])
async def test_a_lifted_view_that_never_returns(spawn, cancellation) -> None:
    """aiohttp has no handler timeout: a client timeout ends the request.

    With aiohttp's default (``handler_cancellation=False``) the handler goes
    on after the client left, until shutdown cancels it; with
    ``handler_cancellation=True`` it is cancelled when the client leaves.
    """
    options = ["--shutdown-timeout", "1"] + (["--handler-cancellation"] if cancellation else [])
    server = spawn(*options)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as session:
        with pytest.raises(asyncio.TimeoutError):
            await fetch(session, server.url + "/lifted/forever/")
    REPORT.clients_cut += 1
    if cancellation:
        await wait_for(lambda: server.diag()["lifted_inflight"] == 0, 5, "the handler cancelled")
    else:
        await asyncio.sleep(0.5)
        assert server.diag()["lifted_inflight"] == 1
    assert server.get("/lifted/hello/")[0] == 200
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.wait, 15) == 0
    assert time.monotonic() - started < 8


async def test_a_django_view_that_never_returns_does_not_block_shutdown(spawn) -> None:
    """A thread can't be stopped: the client's timeout ends the request, the
    thread stays busy, and shutdown gives up on it after
    ``AIODJANGO_SHUTDOWN_TIMEOUT`` (the pool's threads are daemons)."""
    server = spawn("--shutdown-timeout", "1", "--threads", "2", env={"ROBUSTNESS_SHUTDOWN_TIMEOUT": "1"})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as session:
        with pytest.raises(asyncio.TimeoutError):
            await fetch(session, server.url + "/django/slow/?t=3600")
    REPORT.clients_cut += 1
    assert server.diag()["sync_slow_inflight"] == 1
    assert server.get("/django/hello/")[0] == 200  # the other thread serves
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.wait, 20) == 0
    assert time.monotonic() - started < 6, "shutdown waited for the stuck view"
    assert "still running" in server.log()


async def test_sigkill_of_a_worker_is_replaced_and_other_workers_clients_see_no_error(tmp_path) -> None:
    server = gunicorn_server(tmp_path, "--workers", "2")
    try:
        await asyncio.to_thread(start_gunicorn, server, 2)
        await _kill_one_worker_under_load(server)
    finally:
        server.stop()


async def _kill_one_worker_under_load(server: Server) -> None:
    stop = asyncio.Event()
    results: dict[int, dict[str, Any]] = {}

    async def client(index: int) -> None:
        # One keep-alive connection per client: it stays on one worker.
        connector = aiohttp.TCPConnector(limit=1, force_close=False)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(server.url + "/__diag__/") as response:
                pid = (await response.json())["pid"]
            record = results[index] = {"pid": pid, "ok": 0, "errors": 0, "after_error": 0}
            while not stop.is_set():
                try:
                    for path in ("/django/hello/", "/lifted/hello/"):
                        status, _ = await fetch(session, server.url + path)
                        assert status == 200
                        record["after_error" if record["errors"] else "ok"] += 1
                except (aiohttp.ClientError, AssertionError, asyncio.TimeoutError):
                    record["errors"] += 1
                    await asyncio.sleep(0.05)

    # The kernel hands connections to whichever worker accepts first: open
    # clients until both workers hold a few.
    tasks: list[asyncio.Future[None]] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            per_pid: dict[int, int] = {}
            for record in results.values():
                per_pid[record["pid"]] = per_pid.get(record["pid"], 0) + 1
            if len(per_pid) == 2 and min(per_pid.values()) >= 3:
                break
            if time.monotonic() > deadline or len(tasks) >= 80:
                raise AssertionError(f"clients did not spread over both workers: {per_pid}")
            tasks.append(asyncio.ensure_future(client(len(tasks))))
            await asyncio.sleep(0.05)
        await wait_for(lambda: all(r["ok"] > 3 for r in results.values()), 15, "clients running")
        pids = sorted({r["pid"] for r in results.values()})
        victim, survivor = pids
        os.kill(victim, signal.SIGKILL)
        REPORT.clients_cut += sum(1 for r in results.values() if r["pid"] == victim)
        # The arbiter starts a replacement; new connections reach it.
        replacement = await wait_for(lambda: worker_pids(server) - set(pids), 20, "a replacement worker")
        await wait_for(lambda: len(worker_pids(server)) == 2, 20, "two workers again")
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 20)
    assert len(replacement) == 1 and victim not in worker_pids(server)
    survivors = [r for r in results.values() if r["pid"] == survivor]
    assert survivors, results
    assert all(r["errors"] == 0 for r in survivors), survivors
    victims = [r for r in results.values() if r["pid"] == victim]
    assert all(r["after_error"] > 0 for r in victims if r["errors"]), victims  # they reconnected
    assert server.proc.poll() is None, "the arbiter itself died"
    assert f"Worker (pid:{victim}) was sent SIGKILL" in server.log(), server.log()
