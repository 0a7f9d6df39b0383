"""The CPU one web process spends per generation, measured inside that process. Prints figures.

Quieter than api_bench.py: no HTTP server, no load generator competing for the two cores, and
(with --memory-storage) no file system, whose own cost varies from minute to minute. It
prepares a fresh PostgreSQL database and starts the upstream simulator as api_bench.py does,
then loads the production ASGI application (``config.asgi``) in this process, runs its lifespan
startup (the event loop's own database pool), and drives ``POST /v1/images/generations``
through the application directly: ``--concurrency`` requests at a time, ``--requests`` a round,
``--rounds`` rounds, after a warm-up. For each round it prints the process's CPU time (user and
system, all threads) per request; then the median. The rate limiter counts through Redis as in
production.

Compare two versions by running this script in each checkout, alternately, several times:
the figures of one run move by a few per cent.

    .venv/bin/python bench/inprocess_bench.py --memory-storage
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api_bench import SIM_KEY, prepare_database  # noqa: E402 (beside this script)

from simulator.process import running_simulator  # noqa: E402

Message = MutableMapping[str, Any]
App = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]  # fmt: skip  # noqa: E501


# Limits no benchmark reaches: every request is still counted, as in production.
BENCH_TIER = {
    "id": "bench",
    "name": "Bench",
    "requests_per_minute": 10**9,
    "images_per_minute": 10**9,
    "concurrent_generations": 10**6,
}


def request_scope(raw_key: str) -> Message:
    path = "/v1/images/generations"
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {raw_key}".encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def one_request(app: App, scope: Message, body: bytes) -> None:
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays until it has its answer
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    status = sent[0]["status"]
    if status != 200:
        raise RuntimeError(f"the product answered {status}: {sent[1].get('body', b'')[:300]!r}")


async def drive(args: argparse.Namespace, app: App, keys: list[str]) -> list[float]:
    body = json.dumps({"model": "seedream-4-0", "prompt": "a benchmark fox"}).encode()
    scopes = [request_scope(key) for key in keys]
    startup: asyncio.Queue[Message] = asyncio.Queue()
    answers: asyncio.Queue[Message] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    lifespan = asyncio.ensure_future(app({"type": "lifespan"}, startup.get, answers.put))
    answer = await answers.get()
    if answer["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {answer}")

    async def worker(n: int, offset: int) -> None:
        for i in range(n):
            await one_request(app, scopes[(offset + i) % len(scopes)], body)

    per_worker = max(args.requests // args.concurrency, 1)
    await asyncio.gather(*(worker(max(per_worker // 4, 1), w) for w in range(args.concurrency)))
    figures = []
    for round_number in range(1, args.rounds + 1):
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(per_worker, w) for w in range(args.concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        count = per_worker * args.concurrency
        figures.append(cpu * 1000 / count)
        print(
            f"round {round_number}: {count} requests, {count / wall:.0f} req/s, "
            f"{figures[-1]:.3f} ms CPU per request"
        )
    await startup.put({"type": "lifespan.shutdown"})
    await lifespan
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=640, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--customers", type=int, default=16)
    parser.add_argument(
        "--memory-storage", action="store_true", help="keep the images in memory, not on disk"
    )
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/seedream_bench"
    )
    parser.add_argument("--rate-limit-redis", default="redis://127.0.0.1:6379/5")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="seedream-bench-"))
    try:
        keys = prepare_database(args.database_url, data_dir, args.customers)
        with running_simulator(latency=0.0, api_key=SIM_KEY) as sim_url:
            os.environ.update(
                {
                    "DATABASE_URL": args.database_url,
                    "DATA_DIR": str(data_dir),
                    "UPSTREAM_BASE_URL": sim_url,
                    "UPSTREAM_API_KEY": SIM_KEY,
                    "LOG_LEVEL": "WARNING",
                    "ALLOWED_HOSTS": "127.0.0.1",
                    "RATE_LIMIT_REDIS_URL": args.rate_limit_redis,
                    "RATE_LIMIT_TIERS": json.dumps([BENCH_TIER]),
                }
            )
            from django.test.utils import override_settings

            import config.asgi

            storages: dict[str, Any] = {}
            if args.memory_storage:
                from django.conf import settings

                memory = {"BACKEND": "django.core.files.storage.InMemoryStorage"}
                storages = {"STORAGES": {**settings.STORAGES, "default": memory}}
            with override_settings(**storages):
                app: App = config.asgi.application
                # In a fresh context, as a server's requests start.
                figures = contextvars.Context().run(asyncio.run, drive(args, app, keys))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(
        f"median {statistics.median(figures):.3f} ms CPU per request "
        f"(concurrency {args.concurrency}, {args.customers} customers, "
        f"{'images in memory' if args.memory_storage else 'images on disk'})"
    )


if __name__ == "__main__":
    main()
