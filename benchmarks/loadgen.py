"""The load generators: wrk for requests/s and latency, curl for downloads,
``clients.py`` for websockets, raw sockets for stalled uploads.  Each is
bounded in time and pinned to the load CPU, but the stalled uploads: they are
sockets of the harness process itself, which is not pinned."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from typing import Any, Optional

from servers import HERE, BenchError, memory, pin

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


# -- Stalled uploads ----------------------------------------------------------------
#
# A compact port of tests/test_bridge_memory.py (benchmarks import nothing
# from tests/): many raw-socket clients each send a POST head and part of the
# body it announces, then stall with the connection open; the server worker's
# RSS is read once it has settled, before and after.

STALL_SEND_SIZE = 256 * 1024  # bytes per send() of a client
STALL_NO_PROGRESS = 2.0  # seconds: a client whose bytes the server stops taking is left so
STALL_DEADLINE = 300.0  # seconds for opening and feeding all the clients
STALL_SETTLE = 60.0  # seconds for the worker's RSS to become steady
STALL_STEADY_KIB = 512  # ... within this much over the last STALL_STEADY_SAMPLES samples
STALL_STEADY_SAMPLES = 5  # taken every STALL_SAMPLE_EVERY seconds
STALL_SAMPLE_EVERY = 0.2


def server_receive_queues(port: int) -> dict[int, int]:
    """Per client port: bytes the kernel received for the server on ``port`` that it has not read."""
    queues = {}
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state, rx_tx = fields[1], fields[2], fields[3], fields[4]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:  # ESTABLISHED
                queues[int(remote.rsplit(":", 1)[1], 16)] = int(rx_tx.split(":")[1], 16)
    return queues


def unsent(sock: socket.socket) -> int:
    """Bytes still in a client's send queue (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def post(port: int, path: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """One POST on a new connection (``Connection: close``): (status, response body)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n".encode() + body
        )
        data = b""
        while time.monotonic() < deadline:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        else:
            raise BenchError(f"POST {path} got no complete answer within {timeout:.0f} s")
    head, _, rest = data.partition(b"\r\n\r\n")
    try:
        return int(head.split()[1]), rest
    except (IndexError, ValueError):
        raise BenchError(f"POST {path} got no HTTP answer: {data[:200]!r}")


def settle(pid: int, port: int) -> dict[str, Any]:
    """Poll until the worker's RSS and the bytes it leaves unread are both steady.

    A server that reads everything sent ends with empty receive queues; one
    that does not (gthread beyond its threads) with queues that no longer move.
    """
    started = time.monotonic()
    deadline = started + STALL_SETTLE
    samples: list[tuple[int, int]] = []
    while True:
        unread = sum(server_receive_queues(port).values())
        samples.append((memory(pid)["VmRSS"], unread))
        last = samples[-STALL_STEADY_SAMPLES:]
        rss = [kib for kib, _ in last]
        if (len(last) == STALL_STEADY_SAMPLES and max(rss) - min(rss) < STALL_STEADY_KIB
                and len({queued for _, queued in last}) == 1):
            return {"rss_kib": rss[-1], "server_unread_bytes": unread,
                    "settle_s": time.monotonic() - started}
        if time.monotonic() > deadline:
            raise BenchError(
                f"the worker did not settle within {STALL_SETTLE:.0f} s: "
                f"last (RSS KiB, unread bytes) samples {last}"
            )
        time.sleep(STALL_SAMPLE_EVERY)


def _feed(sock: socket.socket, body: memoryview, deadline: float) -> int:
    """Send ``body`` on non-blocking ``sock`` until sent, or no progress for STALL_NO_PROGRESS s."""
    offset = 0
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        while offset < len(body):
            if time.monotonic() > deadline:
                raise BenchError(f"feeding the stalled uploads took over {STALL_DEADLINE:.0f} s")
            if not selector.select(timeout=STALL_NO_PROGRESS):
                break  # the server takes no more from this client: counted as unsent
            try:
                offset += sock.send(body[offset:offset + STALL_SEND_SIZE])
            except BlockingIOError:
                pass
    return offset


def _wait_read(sock: socket.socket, port: int, deadline: float) -> bool:
    """Wait until the server has read every byte sent on ``sock``; False once it stops reading."""
    client_port = sock.getsockname()[1]
    last, since = -1, time.monotonic()
    while True:
        pending = unsent(sock) + server_receive_queues(port).get(client_port, 0)
        if not pending:
            return True
        now = time.monotonic()
        if pending != last:
            last, since = pending, now
        elif now - since > STALL_NO_PROGRESS:
            return False
        if now > deadline:
            raise BenchError(f"feeding the stalled uploads took over {STALL_DEADLINE:.0f} s")
        time.sleep(0.002)


def stalled_uploads(
    pid: int, port: int, path: str, *, clients: int, declared: int, sent: int, paced: bool,
) -> dict[str, Any]:
    """RSS growth of worker ``pid`` while ``clients`` uploads are stalled after ``sent`` bytes.

    Every connection is opened and given its POST head (``Content-Length:
    declared``) first; then each is sent ``sent`` body bytes.  ``paced``: a
    client's body goes once the server has read the previous one, for as long
    as the server keeps reading (the first client it leaves unread ends the
    pacing, so a server that stops reading costs STALL_NO_PROGRESS seconds
    once, not per client).  Unpaced: all of them back to back (a burst).
    The sockets are closed before returning, on every path.
    """
    before = settle(pid, port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    ).encode()
    body = memoryview(os.urandom(sent))  # one buffer for every client
    socks: list[socket.socket] = []
    started = time.monotonic()
    deadline = started + STALL_DEADLINE
    fed: list[int] = []
    paced_clients = 0
    pacing = paced
    try:
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", port), timeout=STALL_NO_PROGRESS * 5)
            socks.append(sock)
            sock.sendall(head)
        for sock in socks:
            sock.setblocking(False)
            fed.append(_feed(sock, body, deadline))
            if pacing:
                pacing = _wait_read(sock, port, deadline)
                paced_clients += pacing
        fed_s = time.monotonic() - started
        after = settle(pid, port)
        # Body bytes the server took from the kernel, per client: what was sent
        # minus what is still queued on either side, where an unread head is
        # queued too (hence the max: it is read before the body).
        queues = server_receive_queues(port)
        body_read = sum(
            max(0, sent_here - unsent(sock) - queues.get(sock.getsockname()[1], 0))
            for sock, sent_here in zip(socks, fed)
        )
    finally:
        for sock in socks:
            sock.close()
    return {
        "paced": paced,
        "clients": clients,
        "declared_bytes": declared,
        "sent_bytes": sum(fed),
        "read_bytes": body_read,
        "paced_clients": paced_clients,
        "feed_s": fed_s,
        "rss_before_kib": before["rss_kib"],
        "rss_after_kib": after["rss_kib"],
        "rss_growth_kib": after["rss_kib"] - before["rss_kib"],
        "settle_s": after["settle_s"],
    }


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
