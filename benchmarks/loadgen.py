"""The load generators: wrk for requests/s and latency, curl for downloads,
``clients.py`` for websockets.  Each runs pinned to the load CPU and bounded in time."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from typing import Any, Optional

from servers import HERE, BenchError, pin

REPORT_LUA = os.path.join(HERE, "wrk_report.lua")
CLIENTS = os.path.join(HERE, "clients.py")
WRK_SOCKET_TIMEOUT = 5  # seconds: a request slower than this counts as a timeout
SLACK = 30.0  # seconds allowed on top of a run's own duration


def wrk_command(url: str, *, duration: int, connections: int, cpu: Optional[int]) -> list[str]:
    return pin(cpu) + [
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
        "--timeout", f"{WRK_SOCKET_TIMEOUT}s", "--latency", "-s", REPORT_LUA, url,
    ]


def parse_wrk(output: str, command: list[str]) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("WRK_JSON "):
            result = json.loads(line[len("WRK_JSON "):])
            seconds = result["duration_us"] / 1e6
            result["rps"] = result["requests"] / seconds if seconds else 0.0
            result["error_count"] = sum(result["errors"].values())
            return result
    raise BenchError(f"no summary in the output of {' '.join(command)}:\n{output[-2000:]}")


def wrk(url: str, *, duration: int, connections: int, cpu: Optional[int]) -> dict[str, Any]:
    """One wrk run against ``url``; requests/s and latency percentiles (µs)."""
    command = wrk_command(url, duration=duration, connections=connections, cpu=cpu)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + SLACK
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {duration + SLACK:.0f} s: {' '.join(command)}")
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {' '.join(command)}\n{done.stderr}")
    return parse_wrk(done.stdout, command)


class BackgroundWrk:
    """wrk running while something else is measured; stopped by PID."""

    def __init__(self, url: str, *, duration: int, connections: int, cpu: Optional[int]) -> None:
        self.duration = duration
        self.command = wrk_command(url, duration=duration, connections=connections, cpu=cpu)
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def result(self) -> dict[str, Any]:
        try:
            stdout, stderr = self.process.communicate(timeout=self.duration + SLACK)
        except subprocess.TimeoutExpired:
            self.stop()
            raise BenchError(f"background wrk overran: {' '.join(self.command)}")
        if self.process.returncode != 0:
            raise BenchError(f"background wrk failed: {' '.join(self.command)}\n{stderr}")
        return parse_wrk(stdout, self.command)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=SLACK)


def download(url: str, *, cpu: Optional[int], python: str, timeout: float = 120.0) -> dict[str, Any]:
    """Download ``url`` to nowhere; seconds taken and bytes received.

    curl when installed (the client should not be the bottleneck), else a
    Python client (``clients.py download``).
    """
    if shutil.which("curl"):
        command = pin(cpu) + [
            "curl", "--silent", "--show-error", "--output", "/dev/null",
            "--write-out", "%{http_code} %{size_download} %{time_total}", url,
        ]
        tool = "curl"
    else:
        command = pin(cpu) + [python, CLIENTS, "download", url]
        tool = "python"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"download did not finish within {timeout:.0f} s: {' '.join(command)}")
    if done.returncode != 0:
        raise BenchError(f"download failed: {' '.join(command)}\n{done.stderr}")
    status, size, seconds = done.stdout.split()
    if status != "200":
        raise BenchError(f"download of {url} answered HTTP {status}")
    return {"bytes": int(size), "seconds": float(seconds), "tool": tool}


class WebsocketClient:
    """``clients.py websockets`` in its own process, driven line by line.

    It prints one JSON object per line; each command written to it ("open",
    "echo", "close") is answered by one line.
    """

    def __init__(self, url: str, *, count: int, echoes: int, cpu: Optional[int], python: str) -> None:
        self.command = pin(cpu) + [
            python, CLIENTS, "websockets", url, "--count", str(count), "--echoes", str(echoes),
        ]
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def receive(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"websocket client silent for {timeout:.0f} s")
        if line is None:
            self.process.wait(timeout=SLACK)
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise BenchError(f"websocket client exited ({self.process.returncode}):\n{stderr[-2000:]}")
        return json.loads(line)

    def send(self, command: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.receive(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=SLACK)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self._reader.join(timeout=SLACK)


def python_has(python: str, modules: list[str]) -> dict[str, bool]:
    """Which of ``modules`` the servers' Python can import."""
    code = (
        "import importlib.util, json, sys; "
        "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))"
    )
    done = subprocess.run(
        [python, "-c", code, *modules], capture_output=True, text=True, timeout=SLACK
    )
    if done.returncode != 0:
        raise BenchError(f"can't run {python}: {done.stderr}")
    return json.loads(done.stdout)


def versions(python: str, distributions: list[str]) -> dict[str, Optional[str]]:
    code = (
        "import json, sys\n"
        "from importlib import metadata\n"
        "found = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        found[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n"
        "        found[name] = None\n"
        "found['python'] = sys.version.split()[0]\n"
        "print(json.dumps(found))\n"
    )
    done = subprocess.run(
        [python, "-c", code, *distributions], capture_output=True, text=True, timeout=SLACK
    )
    if done.returncode != 0:
        raise BenchError(f"can't run {python}: {done.stderr}")
    return json.loads(done.stdout)


def wrk_version() -> Optional[str]:
    if not shutil.which("wrk"):
        return None
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=SLACK)
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0].split(" [")[0] if text else "unknown"


def current_python() -> str:
    return sys.executable
