"""Keeps benchmarks/broadcast.py from rotting: a tiny run of its aiodjango and bare aiohttp
configurations (Channels is only in its own virtualenv). It measures nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.needs import needs_program
from tests.support.servers import is_running

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "broadcast.py"


def test_broadcast_benchmark_runs_and_stops_everything(tmp_path):
    needs_program("redis-server")
    pytest.importorskip("redis", reason="redis-py is in the test extra")
    done = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--python", "current", "--only", "aiodjango,bare",
            "--subscribers", "20", "--rates", "5,10", "--seconds", "1", "--drain", "0.5",
            "--output-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    saved = json.loads((tmp_path / "broadcast-latest.json").read_text())
    for name in ("aiodjango", "bare"):
        steps = saved["runs"][name][0]["steps"]
        assert [step["rate"] for step in steps] == [5, 10]
        assert all(step["deliveries"] > 0 for step in steps)
        assert f"| {name}: " in done.stdout  # the markdown table
    # Every process it started (redis-server, servers, client, publisher) is gone.
    pids = [pid for runs in saved["runs"].values() for run in runs for pid in run["pids"]]
    assert len(pids) == 8
    for pid in pids:
        assert not is_running(pid), pid

