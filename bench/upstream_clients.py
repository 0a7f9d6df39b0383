"""Which HTTP client should call the upstream? Prints figures; asserts nothing.

Starts the upstream simulator on loopback (answering after ``--latency`` seconds) and, in this one
process, drives it the way a web process does: ``--concurrency`` tasks, each calling
``POST /images/generations`` and then downloading the image it links to, in a loop for
``--duration`` seconds. For each client it prints generations/s, p50/p99 of one generation, and
the CPU this process spent per generation (``time.process_time``).

Clients: aiohttp used directly (what generation/upstream.py does), httpx's own pool, and httpx's API
over aiohttp's pool (``httpx-aiohttp``, measured only if installed: ``pip install httpx-aiohttp``).
Each gets a pool as large as the concurrency, so the pool limit is never what caps it.

    .venv/bin/python bench/upstream_clients.py --concurrency 256 --latency 1 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.process import running_simulator  # noqa: E402

KEY = "bench-sim-key"
BODY = {
    "model": "seedream-4-0-250828",
    "prompt": "a client benchmark fox",
    "size": "1024x1024",
    "response_format": "url",
    "sequential_image_generation": "disabled",
    "watermark": False,
}
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

Generate = Callable[[], Awaitable[int]]


async def with_aiohttp(
    url: str, limit: int, run: Callable[[Generate], Coroutine[Any, Any, None]]
) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def generate() -> int:
            payload = json.dumps(BODY).encode()
            async with session.post(url, data=payload, headers=HEADERS) as response:
                link = json.loads(await response.read())["data"][0]["url"]
            async with session.get(link) as image:
                return len(await image.read())

        await run(generate)


async def with_httpx(
    url: str,
    limit: int,
    run: Callable[[Generate], Coroutine[Any, Any, None]],
    *,
    over_aiohttp: bool,
) -> None:
    import httpx

    limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
    client: httpx.AsyncClient
    if over_aiohttp:
        from httpx_aiohttp import HttpxAiohttpClient

        client = HttpxAiohttpClient(limits=limits, timeout=60)
    else:
        client = httpx.AsyncClient(limits=limits, timeout=60)
    async with client:

        async def generate() -> int:
            response = await client.post(url, json=BODY, headers=HEADERS)
            link = response.json()["data"][0]["url"]
            return len((await client.get(link)).content)

        await run(generate)


def driver(concurrency: int, seconds: float, results: dict[str, Any]) -> Any:
    async def run(generate: Generate) -> None:
        await asyncio.gather(*(generate() for _ in range(min(concurrency, 8))))  # warm-up
        latencies: list[float] = []
        stop = time.monotonic() + seconds
        cpu_before, started = time.process_time(), time.monotonic()

        async def loop() -> None:
            while time.monotonic() < stop:
                began = time.monotonic()
                await generate()
                latencies.append(time.monotonic() - began)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_before
        latencies.sort()
        results.update(
            rate=len(latencies) / elapsed,
            p50=latencies[len(latencies) // 2] * 1000,
            p99=latencies[int(len(latencies) * 0.99) - 1] * 1000,
            cpu=cpu * 1000 / len(latencies),
        )

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()

    clients: dict[str, Callable[..., Coroutine[Any, Any, None]]] = {
        "aiohttp (generation/upstream.py)": with_aiohttp,
        "httpx": lambda *a: with_httpx(*a, over_aiohttp=False),
    }
    try:
        import httpx_aiohttp  # noqa: F401

        clients["httpx over aiohttp (httpx-aiohttp)"] = lambda *a: with_httpx(*a, over_aiohttp=True)
    except ImportError:
        print("httpx-aiohttp is not installed: skipped")

    with running_simulator(latency=args.latency, api_key=KEY) as sim_url:
        url = f"{sim_url}/images/generations"
        rows = []
        for name, client in clients.items():
            results: dict[str, Any] = {}
            asyncio.run(
                client(url, args.concurrency, driver(args.concurrency, args.duration, results))
            )
            rows.append((name, results))
            print(f"{name}: {results}")
    print(
        f"\nconcurrency {args.concurrency}, upstream latency {args.latency:g} s, "
        f"{args.duration:g} s each\n"
    )
    print(f"{'client':<38} {'gen/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/gen':>11}")
    for name, r in rows:
        print(f"{name:<38} {r['rate']:>8.1f} {r['p50']:>8.0f} {r['p99']:>8.0f} {r['cpu']:>11.2f}")


if __name__ == "__main__":
    main()
