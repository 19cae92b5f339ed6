"""A Python load generator, used when ``wrk`` is not installed. Run in its own process:

    python -m bench.load URL --duration 10 --connections 16 [--rate 2000] < requests.json

Saturation is closed-loop (each connection sends its next request on the answer). A fixed rate is
open-loop with Poisson arrivals, as the wrk driver's default: the gaps between requests are drawn
from an exponential distribution of mean ``1 / rate`` (a fixed seed), each request has its due
moment and its latency is counted from that moment, so a stalled server is charged for the requests
it delayed (no coordinated omission). Prints the same JSON line as the wrk driver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import ssl
import sys
import time
from typing import Any

import aiohttp
import uvloop


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def drive(url: str, requests: list[tuple[str, bytes]], *, duration: float, connections: int,
                rate: float | None) -> dict[str, Any]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    latencies: list[float] = []
    failed = 0
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=connections, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int, due: float) -> None:
            nonlocal failed
            path, body = requests[index % len(requests)]
            try:
                async with session.post(url + path, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        failed += 1
                        return
            except (aiohttp.ClientError, OSError):
                failed += 1
                return
            latencies.append(time.perf_counter() - due)

        start = time.perf_counter()
        end = start + duration
        if rate is None:
            async def loop(worker: int) -> None:
                index = worker
                while time.perf_counter() < end:
                    await one(index, time.perf_counter())
                    index += connections

            await asyncio.gather(*(loop(w) for w in range(connections)))
        else:
            tasks = set()
            index = 0
            arrivals = random.Random(19)
            due = start
            while True:
                due += arrivals.expovariate(rate)
                if due >= end:
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one(index, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                index += 1
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "requests": len(latencies) + failed,
        "duration_s": elapsed,
        "rate": (len(latencies) + failed) / elapsed,
        "failed": failed,
        "latency_ms": {
            "p50": percentile(ordered, 0.50) * 1000, "p90": percentile(ordered, 0.90) * 1000,
            "p99": percentile(ordered, 0.99) * 1000, "max": (ordered[-1] if ordered else 0.0) * 1000,
            "mean": (sum(ordered) / len(ordered) if ordered else 0.0) * 1000,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float)
    args = parser.parse_args()
    requests = [(path, body.encode()) for path, body in json.load(sys.stdin)]
    uvloop.install()
    result = asyncio.run(drive(args.url, requests, duration=args.duration, connections=args.connections,
                               rate=args.rate))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
