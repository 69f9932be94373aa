"""A 200 MiB Django ``FileResponse`` through the bridge, in a server subprocess.

``wsgi.file_wrapper`` files go out with ``loop.sendfile``: no file content
passes through Python, so the server's resident memory barely moves while it
serves a file far larger than the limit checked here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIZE = 200 * 1024 * 1024
WAIT = 30.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc"),
]


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid``, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def fetch(port: int, method: str) -> tuple[bytes, int, bytes, bytes]:
    """Return (head, body length, first 16 body bytes, last 16 body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(f"{method} /file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        data = b""
        while b"\r\n\r\n" not in data:
            n = sock.recv_into(buf)
            assert n, "connection closed before the headers"
            data += bytes(view[:n])
        head, _, rest = data.partition(b"\r\n\r\n")
        length, first, last = len(rest), rest[:16], rest[-16:]
        while True:
            n = sock.recv_into(buf)
            if not n:
                break
            if len(first) < 16:
                first = (first + bytes(view[:n]))[:16]
            last = (last + bytes(view[:n]))[-16:]
            length += n
    return head, length, first, last


def test_200_mib_file_response_memory(tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:  # sparse, with marked ends
        f.write(b"BEGIN-of-file---")
        f.seek(SIZE - 16)
        f.write(b"---end-of-file!!")
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.wsgi_apps", str(port_file), str(path)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": ""},
    )
    try:
        deadline = time.monotonic() + WAIT
        while not port_file.exists():
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode())  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        port = int(port_file.read_text())

        head, length, _, _ = fetch(port, "HEAD")  # warm up: imports, first request
        assert b"200 OK" in head and f"Content-Length: {SIZE}".encode() in head and length == 0
        before = memory(proc.pid)["VmRSS"]

        head, length, first, last = fetch(port, "GET")
        after = memory(proc.pid)
        assert b"200 OK" in head and b"attachment" in head
        assert (length, first, last) == (SIZE, b"BEGIN-of-file---", b"---end-of-file!!")
        growth = max(after["VmHWM"], after["VmRSS"]) - before
        assert growth < 20 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(WAIT)
        proc.stderr.close()  # type: ignore[union-attr]
