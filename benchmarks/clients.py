"""Clients that run in their own process, pinned to the load CPU (started by run.py).

    python clients.py websockets URL --count N --echoes M
    python clients.py download URL

``websockets`` opens N idle websocket connections with aiohttp and answers
commands read from stdin, one JSON line each: ``open`` (connect all, after one
warm-up echo was printed at start), ``echo`` (M sequential round trips spread
over the open connections: latency percentiles), ``close``.
``download`` prints ``STATUS BYTES SECONDS`` as curl's ``--write-out`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import urllib.request

OPEN_CONCURRENCY = 200
STEP_TIMEOUT = 120.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def say(**values: object) -> None:
    print(json.dumps(values), flush=True)


async def websockets(url: str, count: int, echoes: int) -> None:
    import aiohttp

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up: one connection and one echo, so the server has imported and
        # allocated what a websocket needs before its baseline is read.
        async with session.ws_connect(url, autoping=True, heartbeat=None) as ws:
            await ws.send_str("warm-up")
            await asyncio.wait_for(ws.receive(), STEP_TIMEOUT)
        say(step="warm", ok=True)
        connections: list = []
        while True:
            # Read commands off the loop, so that connections stay served meanwhile.
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command = line.strip()
            if command == "open":
                started = time.perf_counter()
                gate = asyncio.Semaphore(OPEN_CONCURRENCY)

                async def connect():
                    async with gate:
                        return await session.ws_connect(url, autoping=True, heartbeat=None)

                results = await asyncio.wait_for(
                    asyncio.gather(*(connect() for _ in range(count)), return_exceptions=True),
                    STEP_TIMEOUT,
                )
                connections = [r for r in results if not isinstance(r, BaseException)]
                errors = [repr(r) for r in results if isinstance(r, BaseException)]
                say(step="open", opened=len(connections), errors=len(errors),
                    first_error=errors[0] if errors else None,
                    seconds=time.perf_counter() - started)
            elif command == "echo":
                latencies = []
                if connections:
                    stride = max(1, len(connections) // max(1, echoes))
                    for i in range(echoes):
                        ws = connections[(i * stride) % len(connections)]
                        sent = time.perf_counter()
                        await ws.send_str("ping")
                        await asyncio.wait_for(ws.receive(), STEP_TIMEOUT)
                        latencies.append((time.perf_counter() - sent) * 1e6)
                say(step="echo", count=len(latencies),
                    p50_us=percentile(latencies, 0.50), p99_us=percentile(latencies, 0.99),
                    max_us=max(latencies, default=0.0))
            elif command == "close":
                await asyncio.wait_for(
                    asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True),
                    STEP_TIMEOUT,
                )
                connections = []
                say(step="close", ok=True)
                return


def download(url: str) -> None:
    started = time.perf_counter()
    size = 0
    with urllib.request.urlopen(url, timeout=STEP_TIMEOUT) as response:
        status = response.status
        while True:
            block = response.read(1 << 20)
            if not block:
                break
            size += len(block)
    print(status, size, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ws = commands.add_parser("websockets")
    ws.add_argument("url")
    ws.add_argument("--count", type=int, default=10_000)
    ws.add_argument("--echoes", type=int, default=1_000)
    dl = commands.add_parser("download")
    dl.add_argument("url")
    args = parser.parse_args()
    if args.command == "websockets":
        asyncio.run(websockets(args.url, args.count, args.echoes))
    else:
        download(args.url)


if __name__ == "__main__":
    main()
