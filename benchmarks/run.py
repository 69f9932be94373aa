#!/usr/bin/env python3
"""aiodjango's benchmarks, side by side with the servers users would pick instead.

    python benchmarks/run.py            # everything; see benchmarks/README.rst

Creates benchmarks/.venv with requirements.txt on first use (the comparison
servers) and re-runs itself there.  Each configuration runs one server
process pinned to one CPU and wrk pinned to another; results are the median
of interleaved runs.  Prints a markdown table, writes the raw results to
results/ (JSON) with a PNG chart, and rewrites RESULTS.md unless told not to.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import loadgen  # noqa: E402
import profiling  # noqa: E402
import report  # noqa: E402
from servers import (  # noqa: E402
    LARGE_URLCONF,
    NEEDS,
    REPO,
    SMALL_URLCONF,
    BenchError,
    Server,
    ServerSpec,
    cpu_ns,
    http_get,
    pin,
    reset_peak,
)

VENV = os.path.join(HERE, ".venv")
REQUIREMENTS = os.path.join(HERE, "requirements.txt")
DISTRIBUTIONS = ["Django", "aiohttp", "aiohttp-wsgi", "gunicorn", "uvicorn", "httptools", "asgiref"]
HELLO = b"Hello, World!"
SLEEP_CONNECTIONS_PER_THREAD = 4  # the pool stays busy, with a queue behind it
SLEEP_SECONDS = 0.1
STREAM_BYTES = 10 * 1024 * 1024  # the size of /sync/stream/
STREAM_CONNECTIONS = 8  # as many streams at once as there are pool threads
STALLED_CLIENTS = 150  # stalled uploads at once
STALLED_DECLARED = 2 * 1024 * 1024  # the Content-Length each announces (over the 1 MiB spool threshold)
STALLED_SENT = 1024 * 1024  # the body bytes each sends before it stalls


@dataclass
class Bench:
    name: str
    kind: str  # "http", "stream", "file", "stalled", "websockets" or "micro"
    spec: ServerSpec
    path: str
    background: Optional[str] = None  # a path loaded while measuring (the sleep views)
    data: dict = field(default_factory=dict)


def benches(threads: int) -> list[Bench]:
    aiodjango = ServerSpec("aiodjango", threads)
    large = ServerSpec("aiodjango", threads, LARGE_URLCONF)
    large_wsgi = ServerSpec("aiohttp-wsgi", threads, LARGE_URLCONF)
    sleep = f"/sync/sleep/?s={SLEEP_SECONDS}"
    # Configurations compared by a target run one after the other in a round,
    # so that slow drifts of a shared machine's load hit both alike.
    return [
        Bench("lifted/aiodjango", "http", aiodjango, "/lifted/hello/"),
        Bench("lifted/bare-aiohttp", "http", ServerSpec("bare-aiohttp", threads), "/lifted/hello/"),
        Bench("lifted/bare-aiohttp-same-bytes", "http", ServerSpec("bare-aiohttp", threads),
              "/lifted/hello-same-bytes/"),
        Bench("saturated/aiodjango", "http", aiodjango, "/lifted/hello/", background=sleep),
        Bench("routing/lifted-1000", "http", large, "/lifted/hello/"),
        Bench("django-async/uvicorn", "http", ServerSpec("uvicorn", threads), "/async/hello/"),
        Bench("sync/aiodjango", "http", aiodjango, "/sync/hello/"),
        Bench("sync/aiohttp-wsgi", "http", ServerSpec("aiohttp-wsgi", threads), "/sync/hello/"),
        Bench("sync/gunicorn-gthread", "http", ServerSpec("gunicorn-gthread", threads), "/sync/hello/"),
        Bench("sync/gunicorn-sync", "http", ServerSpec("gunicorn-sync", threads), "/sync/hello/"),
        Bench("sync/uvicorn", "http", ServerSpec("uvicorn", threads), "/sync/hello/"),
        Bench("routing/sync-first-1000/aiodjango", "http", large, "/sync/hello/"),
        Bench("routing/sync-first-1000/aiohttp-wsgi", "http", large_wsgi, "/sync/hello/"),
        Bench("routing/sync-last-1000/aiodjango", "http", large, "/sync/last/"),
        Bench("routing/sync-last-1000/aiohttp-wsgi", "http", large_wsgi, "/sync/last/"),
        Bench("routing/lookup", "micro", aiodjango, "/lifted/hello/, /sync/last/"),
        Bench("stream/aiodjango", "stream", aiodjango, "/sync/stream/"),
        Bench("stream/gunicorn-gthread", "stream", ServerSpec("gunicorn-gthread", threads), "/sync/stream/"),
        Bench("stream/aiohttp-wsgi", "stream", ServerSpec("aiohttp-wsgi", threads), "/sync/stream/"),
        Bench("file/aiodjango", "file", aiodjango, "/file/"),
        Bench("file/gunicorn-gthread", "file", ServerSpec("gunicorn-gthread", threads), "/file/"),
        Bench("file/aiohttp-wsgi", "file", ServerSpec("aiohttp-wsgi", threads), "/file/"),
        Bench("stalled/aiodjango", "stalled", aiodjango, "/sync/upload/"),
        Bench("stalled/gunicorn-gthread", "stalled", ServerSpec("gunicorn-gthread", threads), "/sync/upload/"),
        Bench("websockets/aiodjango", "websockets", aiodjango, "/ws/echo/"),
        Bench("websockets/bare-aiohttp", "websockets", ServerSpec("bare-aiohttp", threads), "/ws/echo/"),
    ]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- The comparison servers' virtualenv --------------------------------------


def venv_python() -> str:
    return os.path.join(VENV, "bin", "python")


def ensure_venv() -> str:
    """benchmarks/.venv with requirements.txt installed (again when it changed)."""
    with open(REQUIREMENTS, "rb") as file:
        wanted = hashlib.sha256(file.read()).hexdigest()
    stamp = os.path.join(VENV, "requirements.sha256")
    python = venv_python()
    try:
        with open(stamp) as file:
            if file.read().strip() == wanted and os.path.exists(python):
                return python
    except OSError:
        pass
    if not os.path.exists(python):
        log(f"Creating {VENV} …")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, timeout=300)
    log(f"Installing {REQUIREMENTS} into {VENV} …")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "-r", REQUIREMENTS], check=True, timeout=1800
    )
    with open(stamp, "w") as file:
        file.write(wanted)
    return python


# -- Measurements ---------------------------------------------------------------


@dataclass
class Context:
    python: str
    server_cpu: Optional[int]
    load_cpu: Optional[int]
    duration: int
    warmup: int
    connections: int
    versions: dict
    log_dir: str
    file_path: str = ""
    downloads: int = 5
    websockets: int = 10_000
    echoes: int = 1_000
    py_spy: Optional[str] = None
    profile_dir: str = ""
    round: int = 0
    started_pids: list = field(default_factory=list)

    def server(self, bench: Bench, ready_path: str) -> Server:
        env = {"BENCH_FILE": self.file_path} if self.file_path else {}
        return Server(
            bench.spec, python=self.python, cpu=self.server_cpu, versions=self.versions,
            log_path=os.path.join(self.log_dir, bench.name.replace("/", "_") + ".log"),
            ready_path=ready_path, env=env, started=self.started_pids,
        )


def check_hello(server: Server, path: str) -> None:
    status, body = http_get(server.url(path))
    if status != 200 or body != HELLO:
        raise BenchError(f"{server.spec.label} answered {path} with HTTP {status} {body[:80]!r}")


def run_http(ctx: Context, bench: Bench) -> dict[str, Any]:
    with ctx.server(bench, bench.path) as server:
        check_hello(server, bench.path)
        url = server.url(bench.path)
        if ctx.warmup:
            loadgen.wrk(url, duration=ctx.warmup, connections=ctx.connections, cpu=ctx.load_cpu)
        background = None
        if bench.background is not None:
            background = loadgen.BackgroundWrk(
                server.url(bench.background), duration=ctx.duration + 2,
                connections=SLEEP_CONNECTIONS_PER_THREAD * bench.spec.threads, cpu=ctx.load_cpu,
            )
        sampler = None
        try:
            if background is not None:
                time.sleep(1.0)  # every bridge thread is asleep by now, more requests queued
            if ctx.py_spy:
                raw = os.path.join(ctx.profile_dir, f"{bench.name.replace('/', '_')}-{ctx.round + 1}.raw")
                sampler = profiling.Sampler(ctx.py_spy, server.worker_pid, max(1, ctx.duration - 1), raw)
            cpu_before = cpu_ns(server.worker_pid)
            result = loadgen.wrk(url, duration=ctx.duration, connections=ctx.connections, cpu=ctx.load_cpu)
            used = cpu_ns(server.worker_pid) - cpu_before
            result["server_cpu_s"] = used / 1e9
            result["cpu_us_per_request"] = used / 1e3 / result["requests"] if result["requests"] else None
            if background is not None:
                result["background"] = background.result()
        finally:
            if background is not None:
                background.stop()
            if sampler is not None:
                summary = sampler.finish()
                if summary is not None:
                    report.write(sampler.raw_path[: -len(".raw")] + ".txt", summary)
        return result


def run_stream(ctx: Context, bench: Bench) -> dict[str, Any]:
    """wrk fetching a 10 MiB StreamingHttpResponse; throughput in MiB/s."""
    with ctx.server(bench, "/sync/hello/") as server:
        status, body = http_get(server.url(bench.path))
        if status != 200 or len(body) != STREAM_BYTES:
            raise BenchError(f"{server.spec.label} answered {bench.path} with HTTP {status}, "
                             f"{len(body)} bytes instead of {STREAM_BYTES}")
        url = server.url(bench.path)
        if ctx.warmup:
            loadgen.wrk(url, duration=ctx.warmup, connections=STREAM_CONNECTIONS, cpu=ctx.load_cpu)
        cpu_before = cpu_ns(server.worker_pid)
        result = loadgen.wrk(url, duration=ctx.duration, connections=STREAM_CONNECTIONS, cpu=ctx.load_cpu)
        used = cpu_ns(server.worker_pid) - cpu_before
        seconds = result["duration_us"] / 1e6
        result["mib_per_s"] = result["requests"] * STREAM_BYTES / (1 << 20) / seconds if seconds else 0.0
        result["server_cpu_s"] = used / 1e9
        result["cpu_us_per_request"] = used / 1e3 / result["requests"] if result["requests"] else None
        return result


def run_file(ctx: Context, bench: Bench) -> dict[str, Any]:
    with ctx.server(bench, "/sync/hello/") as server:
        for _ in range(20):  # warm the handler and the pool
            http_get(server.url("/sync/hello/"))
        pid = server.worker_pid
        before = server.memory()["VmRSS"]
        method = "VmHWM after clear_refs" if reset_peak(pid) else "VmHWM since start"
        downloads, cpu_ms = [], []
        for _ in range(ctx.downloads):
            cpu_before = cpu_ns(pid)
            got = loadgen.download(server.url(bench.path), cpu=ctx.load_cpu, python=ctx.python)
            cpu_ms.append((cpu_ns(pid) - cpu_before) / 1e6)
            expected = os.path.getsize(ctx.file_path)
            if got["bytes"] != expected:
                raise BenchError(f"{server.spec.label} sent {got['bytes']} of {expected} bytes")
            downloads.append(got["seconds"])
        after = server.memory()
        return {
            "rss_before_kib": before,
            "rss_after_kib": after["VmRSS"],
            "peak_kib": after["VmHWM"],
            "rss_growth_kib": after["VmHWM"] - before,
            "peak_method": method,
            "downloads_s": downloads,
            "server_cpu_ms": cpu_ms,
            "tool": got["tool"],
        }


def run_stalled(ctx: Context, bench: Bench) -> dict[str, Any]:
    """150 uploads stalled after ~1 MiB of 2 MiB: the worker's RSS growth.

    Measured twice, each time on a freshly started server: paced (a client's
    body goes once the server has read the previous one: what stalled uploads
    keep held) and in a burst (all bodies back to back: also what the C
    allocator keeps of the peak of reading them all at once).
    """
    result: dict[str, Any] = {}
    for mode in ("paced", "burst"):
        with ctx.server(bench, "/sync/hello/") as server:
            port = server.port
            for body in (os.urandom(STALLED_DECLARED), b"x" * 1000) * 3:  # warm up: a spooled, a small body
                status, answer = loadgen.post(port, bench.path, body)
                if status != 200 or answer != str(len(body)).encode():
                    raise BenchError(f"{server.spec.label} answered POST {bench.path} with HTTP "
                                     f"{status} {answer[:80]!r}")
            result[mode] = loadgen.stalled_uploads(
                server.worker_pid, port, bench.path, clients=STALLED_CLIENTS,
                declared=STALLED_DECLARED, sent=STALLED_SENT, paced=mode == "paced",
            )
    return result


def run_websockets(ctx: Context, bench: Bench) -> dict[str, Any]:
    ready = "/lifted/hello/" if bench.spec.kind == "bare-aiohttp" else "/sync/hello/"
    with ctx.server(bench, ready) as server:
        client = loadgen.WebsocketClient(
            server.url(bench.path, "ws"), count=ctx.websockets, echoes=ctx.echoes,
            cpu=ctx.load_cpu, python=ctx.python,
        )
        try:
            client.receive(timeout=60)  # the warm-up echo
            time.sleep(0.5)
            before = server.memory()["VmRSS"]
            cpu_before = cpu_ns(server.worker_pid)
            opened = client.send("open", timeout=300)
            open_cpu = (cpu_ns(server.worker_pid) - cpu_before) / 1e9
            if opened["errors"]:
                raise BenchError(
                    f"{opened['errors']} of {ctx.websockets} websockets failed to open: "
                    f"{opened['first_error']}"
                )
            time.sleep(1.0)
            after = server.memory()["VmRSS"]
            echo = client.send("echo", timeout=300)
            client.send("close", timeout=300)
        finally:
            client.stop()
    return {
        "opened": opened["opened"],
        "open_s": opened["seconds"],
        "open_server_cpu_s": open_cpu,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_per_connection_kib": (after - before) / max(1, opened["opened"]),
        "echo": echo,
    }


def run_micro(ctx: Context, bench: Bench) -> dict[str, Any]:
    """micro.py with each URLconf: route lookup in µs, in-process."""
    found = {}
    for patterns, urlconf in (("10", SMALL_URLCONF), ("1000", LARGE_URLCONF)):
        env = dict(os.environ, BENCH_URLCONF=urlconf, DJANGO_SETTINGS_MODULE="benchproject.settings")
        command = pin(ctx.server_cpu) + [ctx.python, os.path.join(HERE, "micro.py")]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        except subprocess.TimeoutExpired:
            raise BenchError(f"micro.py did not finish within 120 s: {' '.join(command)}")
        if done.returncode != 0:
            raise BenchError(f"micro.py failed: {done.stderr[-2000:]}")
        found[patterns] = json.loads(done.stdout)
    return found


RUNNERS: dict[str, Callable[[Context, Bench], dict[str, Any]]] = {
    "micro": run_micro,
    "http": run_http,
    "stream": run_stream,
    "file": run_file,
    "stalled": run_stalled,
    "websockets": run_websockets,
}


def make_file(directory: str, size_mib: int) -> str:
    path = os.path.join(directory, f"download-{size_mib}MiB.bin")
    block = os.urandom(1 << 20)
    with open(path, "wb") as file:
        for _ in range(size_mib):
            file.write(block)
    return path


# -- Machine notes ------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as file:
            return " ".join(file.read().split()[:3])
    except OSError:
        return "unknown"


def aiodjango_version() -> str:
    version = "unknown"
    with open(os.path.join(REPO, "aiodjango", "__init__.py")) as file:
        for line in file:
            if line.startswith("__version__"):
                version = line.split("=", 1)[1].strip().strip("\"'")
    try:
        commit = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "--", "aiodjango"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return version
    if commit:
        version += f" ({commit}{', aiodjango/ modified' if dirty else ''})"
    elif dirty:
        version += " (uncommitted)"
    return version


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit (inherited by servers and clients)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpus() -> tuple[Optional[int], Optional[int], str]:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) >= 2 and shutil.which("taskset"):
        server, load = allowed[0], allowed[1]
        return server, load, (
            f"Pinning: servers on CPU {server} (taskset -c {server}), "
            f"load generators on CPU {load} (taskset -c {load})."
        )
    return None, None, "Not pinning: fewer than 2 CPUs available, or taskset missing."


# -- Main -----------------------------------------------------------------------


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="aiodjango's benchmarks (see benchmarks/README.rst).",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each run (2)")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration; the median is kept (3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=8, help="thread pool size where a server has one (8)")
    parser.add_argument("--file-size", type=int, default=200, metavar="MIB", help="FileResponse size (200)")
    parser.add_argument("--downloads", type=int, default=5, help="downloads per file run (5)")
    parser.add_argument("--websockets", type=int, default=10_000, help="idle websockets to open (10000)")
    parser.add_argument("--echoes", type=int, default=1_000, help="echo round trips at that load (1000)")
    parser.add_argument(
        "--only", default="", metavar="PATTERNS",
        help="comma-separated names or globs, e.g. 'lifted/*,sync/aiodjango' (implies --no-publish)",
    )
    parser.add_argument("--list", action="store_true", help="list the configurations and exit")
    parser.add_argument(
        "--python", default=None,
        help="Python that runs the servers and clients: a path, or 'current' for this one "
        "(default: benchmarks/.venv, created from requirements.txt)",
    )
    parser.add_argument("--output-dir", default=os.path.join(HERE, "results"), help="JSON, chart and logs")
    parser.add_argument("--no-publish", action="store_true", help="leave RESULTS.md and RESULTS.png alone")
    parser.add_argument(
        "--profile", action="store_true",
        help="sample each HTTP server with py-spy during its measured runs (results/profiles/; "
        "implies --no-publish: sampling costs the server some CPU)",
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--duration and --runs must be at least 1, --warmup at least 0")
    return args


def selected(all_benches: list[Bench], only: str) -> list[Bench]:
    if not only:
        return all_benches
    patterns = [pattern.strip() for pattern in only.split(",") if pattern.strip()]
    chosen = [
        bench for bench in all_benches
        if any(fnmatch.fnmatchcase(bench.name, p) or bench.name.startswith(p.rstrip("/") + "/") for p in patterns)
    ]
    if not chosen:
        raise SystemExit(f"--only {only!r} matches no configuration; see --list")
    return chosen


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    all_benches = benches(args.threads)
    if args.list:
        for bench in all_benches:
            print(f"{bench.name:42} {bench.kind:10} {bench.spec.label}  {bench.path}")
        return 0
    if args.python is None:
        python = ensure_venv()
        if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
            # Run the harness itself there too (matplotlib draws the chart).
            os.execv(python, [python, os.path.abspath(__file__), *argv])
    elif args.python == "current":
        python = sys.executable
    else:
        python = args.python
    if not shutil.which("wrk"):
        log("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu), then run again.")
        return 2
    chosen = selected(all_benches, args.only)
    publish = not (args.no_publish or args.only or args.profile)
    py_spy = None
    if args.profile:
        py_spy = profiling.find_py_spy(python)
        if py_spy is None:
            log("--profile needs py-spy: pip install py-spy (into the servers' Python).")
            return 2

    server_cpu, load_cpu, pinning = cpus()
    log(pinning)
    fd_limit = raise_fd_limit(args.websockets + 1000)
    websockets = args.websockets
    if fd_limit < websockets + 200:
        websockets = max(1, fd_limit - 200)
        log(f"The open-file limit is {fd_limit}: opening {websockets} websockets instead of {args.websockets}.")

    versions = loadgen.versions(python, DISTRIBUTIONS)
    present = loadgen.python_has(python, sorted(set(NEEDS.values())))
    os.makedirs(args.output_dir, exist_ok=True)
    log_dir = os.path.join(args.output_dir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results: dict[str, Any] = {
        "meta": {
            "date": started,
            "command": " ".join(["python", "benchmarks/run.py", *argv]),
            "aiodjango": aiodjango_version(),
            "versions": versions,
            "wrk": loadgen.wrk_version(),
            "cpu_model": cpu_model(),
            "cpus": os.cpu_count(),
            "memory_gib": memory_gib(),
            "kernel": platform.release(),
            "loadavg_start": loadavg(),
            "server_cpu": server_cpu,
            "load_cpu": load_cpu,
            "pinning": pinning,
            "fd_limit": fd_limit,
            "python_for_servers": python,
        },
        "settings": {
            "duration": args.duration, "warmup": args.warmup, "runs": args.runs,
            "connections": args.connections, "threads": args.threads,
            "file_size_mib": args.file_size, "downloads": args.downloads,
            "websockets": websockets, "echoes": args.echoes,
            "sleep_connections": SLEEP_CONNECTIONS_PER_THREAD * args.threads,
            "sleep_seconds": SLEEP_SECONDS,
        },
        "benchmarks": {},
    }
    runnable = []
    for bench in chosen:
        entry = {"kind": bench.kind, "label": bench.spec.label, "path": bench.path,
                 "server": bench.spec.kind, "urlconf": bench.spec.urlconf, "runs": []}
        module = NEEDS[bench.spec.kind]
        if not present.get(module):
            entry["skipped"] = f"skipped: {module} is not installed for {python}"
        else:
            runnable.append(bench)
        results["benchmarks"][bench.name] = entry

    failed = False
    with tempfile.TemporaryDirectory(prefix="aiodjango-bench-") as scratch:
        ctx = Context(
            python=python, server_cpu=server_cpu, load_cpu=load_cpu, duration=args.duration,
            warmup=args.warmup, connections=args.connections, versions=versions,
            log_dir=log_dir, downloads=args.downloads, websockets=websockets, echoes=args.echoes,
            py_spy=py_spy, profile_dir=os.path.join(args.output_dir, "profiles"),
        )
        if py_spy:
            os.makedirs(ctx.profile_dir, exist_ok=True)
        if any(bench.kind == "file" for bench in runnable):
            ctx.file_path = make_file(scratch, args.file_size)
        rounds = [
            (round_, bench)
            for round_ in range(args.runs)
            for bench in runnable
            if bench.kind != "websockets" or round_ == 0  # 10,000 sockets: one run
        ]
        for number, (round_, bench) in enumerate(rounds, 1):
            entry = results["benchmarks"][bench.name]
            if "error" in entry:
                continue
            log(f"[{number}/{len(rounds)}] round {round_ + 1}: {bench.name} ({bench.spec.label}) …")
            ctx.round = round_
            ctx.started_pids = []
            try:
                run = RUNNERS[bench.kind](ctx, bench)
                run["server_pids"] = ctx.started_pids
            except (BenchError, OSError, subprocess.SubprocessError) as error:
                entry["error"] = f"failed: {error}"
                log(f"    FAILED: {error}")
                failed = True
                continue
            entry["runs"].append(run)
            if bench.kind == "http":
                log(f"    {run['rps']:,.0f} requests/s, p99 {run['latency_us']['p99'] / 1000:.2f} ms"
                    + (f", {run['error_count']} errors" if run["error_count"] else ""))
            elif bench.kind == "stalled":
                log("    RSS growth: " + ", ".join(
                    f"{mode} {run[mode]['rss_growth_kib'] / 1024:.1f} MiB" for mode in ("paced", "burst")))
    for entry in results["benchmarks"].values():
        entry["summary"] = report.summarise(entry)
    results["meta"]["loadavg_end"] = loadavg()
    results["targets"] = report.evaluate(results["benchmarks"])

    print(f"\n{pinning}\n")
    print(report.tables(results))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (f"results-{stamp}.json", "latest.json"):
        report.write(os.path.join(args.output_dir, name), json.dumps(results, indent=2) + "\n")
    chart_path = os.path.join(args.output_dir, "chart.png")
    why_not = report.chart(results, chart_path)
    log(f"Raw results: {os.path.join(args.output_dir, 'latest.json')}")
    log(f"Chart: {chart_path}" if why_not is None else f"No chart: {why_not}")
    if publish:
        published_chart = None
        if why_not is None:
            published_chart = "RESULTS.png"
            shutil.copyfile(chart_path, os.path.join(HERE, published_chart))
        results_md = os.path.join(HERE, "RESULTS.md")
        text = report.results_md(
            results, command=results["meta"]["command"], chart_name=published_chart,
            keep=report.kept_notes(results_md),
        )
        report.write(results_md, text)
        log(f"Wrote {results_md}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
