"""A bounded mixed load from a second process: nothing lost, nothing corrupted, no leak.

10 s in the default run, 60 s with ``AIODJANGO_SOAK=1``.  The load
generator (:mod:`tests.robustness.loadgen`) checks every body both ways;
this test samples the server's RSS during the measured phase and compares
the second half with the first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .conftest import REPORT, ROOT, scaled, settled

DURATION = scaled(10.0, 60.0)
WARMUP = scaled(2.0, 5.0)


def test_mixed_load_loses_nothing_and_leaks_nothing(spawn, tmp_path) -> None:
    server = spawn()
    baseline = server.diag()
    command = [
        sys.executable, "-m", "tests.robustness.loadgen", server.url,
        "--duration", str(DURATION), "--warmup", str(WARMUP), "--concurrency", "16",
    ]
    out = open(tmp_path / "loadgen.out", "w+")
    load = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    samples: list[tuple[float, int]] = []
    try:
        deadline = time.monotonic() + WARMUP + DURATION + 60
        while load.poll() is None and time.monotonic() < deadline:
            samples.append((time.time(), server.rss_kib()))
            time.sleep(0.2)
        if load.poll() is None:
            raise AssertionError(f"the load generator did not finish within {WARMUP + DURATION + 60} s")
    finally:
        if load.poll() is None:
            load.kill()
        load.wait(10)
        out.seek(0)
        output = out.read()
        out.close()
    assert load.returncode == 0, output
    result = json.loads(output.strip().splitlines()[-1])
    REPORT.load_requests += result["requests"]
    REPORT.load_errors += result["errors"]
    REPORT.load_bytes += result["bytes"]
    REPORT.load_seconds += result["seconds"]
    assert result["errors"] == 0, result["error_samples"]
    assert result["requests"] > 200, result
    assert set(result["kinds"]) == {
        "lifted hello", "django hello", "lifted echo", "django echo", "django upload",
        "lifted stream", "django stream", "websocket",
    }, result["kinds"]

    measured = [rss for when, rss in samples if when >= result["measured_from"]]
    assert len(measured) >= 10, samples
    half = len(measured) // 2
    first = sum(measured[:half]) / half
    second = sum(measured[half:]) / (len(measured) - half)
    REPORT.rss_kib.append((int(first), int(second)))
    assert second <= first * 1.10, f"RSS grew from {first:.0f} KiB to {second:.0f} KiB (> 10%)"

    settled(server, baseline)
