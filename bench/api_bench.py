"""Benchmark POST /v1/images/generations on the production-style server. Prints figures.

Starts, on loopback: the upstream simulator, and uvicorn serving config.asgi with 2 worker
processes on a fresh PostgreSQL database; then drives the API with wrk (closed loop, N
connections) for a fixed time per scenario:

- concurrency 1, 16 and 64 with a zero-latency simulator;
- concurrency 256 with a simulator that answers after 1 second (closed loop with wrk, then an
  open loop at a fixed arrival rate);
- concurrency 16 asking for one 4K image as ``b64_json`` (about 4 MB of JSON each), and a few
  connections asking for ten 4K images each as ``b64_json`` (about 40 MB of JSON each): each
  web process's resident memory before the run and at its peak (VmHWM, reset before the run).

For each it prints requests/s, p50 and p99 latency, errors, and the server's CPU per request
(utime + stime of the uvicorn process tree from /proc, divided by the requests served), and the
same figures for wrk driving the simulator directly (the floor: what the upstream alone costs).
Every product request includes the image download from the simulator, its storage, and the
ledger. Run: `make bench` or `.venv/bin/python bench/api_bench.py --duration 10`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.process import running_simulator  # noqa: E402
from tests.support.server import running_server  # noqa: E402

SIM_KEY = "bench-sim-key"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    name: str
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float | None
    # The machine's speed just before the row: CPU ms of a fixed pure-Python loop.
    reference_ms: float | None = None


def reference_cpu_ms() -> float:
    """CPU time of a fixed pure-Python loop, best of three. On a shared VM the same work takes
    from 355 to 581 ms of CPU from one minute to the next: rows measured when this is high cost
    more CPU per request for no fault of the code."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, (time.process_time() - started) * 1000)
    return best


def process_tree_cpu_seconds(root_pid: int) -> float:
    """utime + stime of a process and all its descendants, in seconds."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        stack.extend(children.get(pid, []))
    return total / CLOCK_TICKS


def _find(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"wrk printed no {pattern!r}:\n{text}")
    return match


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(
    url: str, body: dict, headers: dict[str, str], concurrency: int, seconds: int
) -> tuple[int, int, float, float, float]:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if len(BEARERS) > 1 and headers.get("Authorization") in BEARERS:
        # Each request from the next customer's key, in turn (per wrk thread).
        lines += [
            "local bearers = {" + ", ".join(json.dumps(b) for b in BEARERS) + "}",
            "local sent = 0",
            "request = function()",
            "  sent = sent + 1",
            '  wrk.headers["Authorization"] = bearers[(sent % #bearers) + 1]',
            "  return wrk.format()",
            "end",
        ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    threads = min(2, concurrency)
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s",
         "--latency", "-s", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)
    requests = int(_find(r"(\d+) requests in", output).group(1))
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    p50 = _find(r"50%\s+([\d.]+)(us|ms|s|m)\b", output)
    p99 = _find(r"99%\s+([\d.]+)(us|ms|s|m)\b", output)
    return requests, errors, rps, _ms(*p50.groups()), _ms(*p99.groups())


def run_open_loop(
    url: str, body: dict, headers: dict[str, str], rate: float, seconds: int
) -> tuple[int, int, float, float, float]:
    """Open loop: requests start at a constant rate whatever the answers do, and each latency
    counts from the request's scheduled start, so queueing shows honestly."""
    import asyncio

    import aiohttp

    async def drive() -> tuple[int, int, float, float, float]:
        latencies: list[float] = []
        errors = 0
        payload = json.dumps(body)
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one(scheduled: float) -> None:
                nonlocal errors
                try:
                    async with session.post(url, data=payload, headers=headers) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append(time.monotonic() - scheduled)

            start = time.monotonic()
            total = int(rate * seconds)
            tasks = []
            for i in range(total):
                scheduled = start + i / rate
                delay = scheduled - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(scheduled)))
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - start
        latencies.sort()
        done = len(latencies) - errors
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        return len(latencies), errors, done / elapsed, p50, p99

    return asyncio.run(drive())


def measure(
    name: str,
    url: str,
    body: dict,
    headers: dict[str, str],
    concurrency: int,
    seconds: int,
    pid: int | None,
    repeat: int = 1,
) -> Result:
    """wrk at ``concurrency`` for ``seconds``; of ``repeat`` runs, the one of median CPU/req."""
    results = []
    for _ in range(repeat):
        reference = reference_cpu_ms()
        cpu_before = process_tree_cpu_seconds(pid) if pid else 0.0
        requests, errors, rps, p50, p99 = run_wrk(url, body, headers, concurrency, seconds)
        cpu = (process_tree_cpu_seconds(pid) - cpu_before) if pid else None
        per_request = cpu * 1000 / requests if cpu is not None and requests else None
        results.append(
            Result(name, concurrency, requests, errors, rps, p50, p99, per_request, reference)
        )
    results.sort(key=lambda r: r.cpu_ms_per_request or 0.0)
    return results[len(results) // 2]


# The product's requests rotate through these "Bearer <key>" values (one per customer).
BEARERS: list[str] = []


def prepare_database(database_url: str, data_dir: Path, customers: int = 1) -> list[str]:
    """A fresh database with ``customers`` customers holding plenty of credits; returns their
    raw keys."""
    import psycopg

    admin_url, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(data_dir)}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    code = (
        "from accounts.models import User; from billing import services as b; "
        "from keys import services as k\n"
        f"for n in range({customers}):\n"
        "    u = User.objects.create_user(f'bench{n or \"\"}@example.com')\n"
        "    a = u.personal_account\n"
        "    b.grant(a, 10**12, description='bench', idempotency_key=f'bench{n}')\n"
        "    print(k.create_key(a, 'bench').raw_key)"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return out.strip().splitlines()[-customers:]


def server_pid(base_url: str) -> int:
    """The pid of the process that owns the listening socket and is not a child of another."""
    port = base_url.rsplit(":", 1)[1]
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True
    ).stdout
    pids = {int(pid) for pid in re.findall(r"pid=(\d+)", out)}
    for pid in pids:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if ppid not in pids:
            return pid
    raise RuntimeError(f"no server process on port {port}")


def worker_pids(root_pid: int) -> list[int]:
    """uvicorn's worker processes (its children, less multiprocessing's resource tracker)."""
    out = subprocess.run(["pgrep", "-P", str(root_pid)], capture_output=True, text=True).stdout
    workers = [
        int(pid)
        for pid in out.split()
        if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    return workers or [root_pid]


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def measure_large_responses(name: str, url: str, body: dict, headers: dict[str, str], pid: int,
                            concurrency: int,
                            seconds: int) -> tuple[Result, list[tuple[int, int]], int]:  # fmt: skip
    """``concurrency`` connections asking for ``body`` (large b64_json answers): the result,
    each worker's (resident before, peak) in MiB, and the size of one response in bytes."""
    import httpx

    response = httpx.post(url, json=body, headers=headers, timeout=120)
    if response.status_code != 200:
        raise RuntimeError(f"{name}: HTTP {response.status_code}: {response.text[:300]}")
    response_bytes = len(response.content)
    del response
    workers = worker_pids(pid)
    before = {}
    for worker in workers:
        # Writing 5 resets the peak (VmHWM) to the present resident size.
        Path(f"/proc/{worker}/clear_refs").write_text("5")
        before[worker] = memory_kib(worker, "VmRSS")
    result = measure(name, url, body, headers, concurrency, seconds, pid)
    peaks = [(before[w] // 1024, memory_kib(w, "VmHWM") // 1024) for w in workers]
    return result, peaks, response_bytes


def print_table(results: list[Result]) -> None:
    print()
    columns = ("conc", "req/s", "p50 ms", "p99 ms", "errors", "CPU ms/req", "ref ms")
    print(f"{'scenario':<42} " + " ".join(f"{c:>10}" for c in columns))
    for r in results:
        cpu = f"{r.cpu_ms_per_request:.2f}" if r.cpu_ms_per_request is not None else "-"
        ref = f"{r.reference_ms:.0f}" if r.reference_ms is not None else "-"
        cells = [r.concurrency, f"{r.rps:.1f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", r.errors]
        cells += [cpu, ref]
        print(f"{r.name:<42} " + " ".join(f"{c:>10}" for c in cells))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/seedream_bench"
    )
    parser.add_argument(
        "--concurrency", default="1,16,64", help="wrk connections of the fast scenario"
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=16,
        help="customers whose keys the requests rotate through (1: every request moves one "
        "balance, the worst case for row locks)",
    )
    parser.add_argument("--only", default="fast,slow,large,many", help="fast, slow, large, many")
    parser.add_argument(
        "--many-concurrency",
        type=int,
        default=8,
        help="connections of the many scenario (each asks for ten 4K images as b64_json)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each product row this many times and keep the median (by CPU/req)",
    )
    parser.add_argument(
        "--open-rate",
        type=float,
        default=220.0,
        help="requests/s of the open-loop run in the slow scenario (0: none)",
    )
    parser.add_argument(
        "--rate-limit-redis",
        default="redis://127.0.0.1:6379/5",
        help="Redis for the rate-limit counters (empty: the database backend)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    data_dir = Path(tempfile.mkdtemp(prefix="seedream-bench-"))
    keys = prepare_database(args.database_url, data_dir, args.customers)
    BEARERS[:] = [f"Bearer {key}" for key in keys]
    key = keys[0]
    product_body = {"model": "seedream-4-0", "prompt": "a benchmark fox", "size": args.size}
    upstream_body = {
        **product_body,
        "model": "seedream-4-0-250828",
        "watermark": False,
        "sequential_image_generation": "disabled",
        "response_format": "url",
    }
    json_headers = {"Content-Type": "application/json"}
    results: list[Result] = []
    memory_lines: list[str] = []
    fast_levels = [int(c) for c in args.concurrency.split(",")]
    scenarios = args.only.split(",")
    try:
        for latency, concurrencies, label in [
            (0.0, fast_levels, "fast"),
            (1.0, [256], "slow"),
            (0.0, [], "large"),
            (0.0, [], "many"),
        ]:
            if label not in scenarios:
                continue
            with running_simulator(latency=latency, api_key=SIM_KEY) as sim_url:
                sim_pid = server_pid(sim_url.removesuffix("/api/v3"))
                env = {
                    "DATABASE_URL": args.database_url,
                    "DATA_DIR": str(data_dir),
                    "UPSTREAM_BASE_URL": sim_url,
                    "UPSTREAM_API_KEY": SIM_KEY,
                    "DB_POOL_MAX_SIZE": "40",
                    "LOG_LEVEL": "WARNING",
                    "ALLOWED_HOSTS": "127.0.0.1,localhost",
                    # Counted as in production (every request goes through the limiter), with
                    # limits no benchmark reaches.
                    "RATE_LIMIT_REDIS_URL": args.rate_limit_redis,
                    "RATE_LIMIT_TIERS": json.dumps(
                        [
                            {
                                "id": "bench",
                                "name": "Bench",
                                "requests_per_minute": 10**9,
                                "images_per_minute": 10**9,
                                "concurrent_generations": 10**6,
                            }
                        ]
                    ),
                }
                with running_server(env, workers=args.workers) as base_url:
                    pid = server_pid(base_url)
                    product_url = f"{base_url}/v1/images/generations"
                    headers = {**json_headers, "Authorization": f"Bearer {key}"}
                    run_wrk(product_url, product_body, headers, 4, 2)  # warm-up
                    if label in ("large", "many"):
                        # Photograph-sized JPEGs ([sim:photo]) at the largest size, as base64.
                        images, concurrency = (
                            (1, 16) if label == "large" else (10, args.many_concurrency)
                        )
                        large_body = {
                            **product_body,
                            "prompt": "[sim:photo] a benchmark fox",
                            "size": "4K",
                            "n": images,
                            "response_format": "b64_json",
                        }
                        name = f"gateway, {images} x 4K b64_json"
                        result, peaks, size = measure_large_responses(
                            name, product_url, large_body, headers, pid, concurrency, args.duration
                        )
                        results.append(result)
                        for n, (rss, peak) in enumerate(peaks, 1):
                            memory_lines.append(
                                f"web process {n}: {rss} MiB resident before, {peak} MiB peak "
                                f"(+{peak - rss}) during {concurrency} concurrent requests for "
                                f"{images} x 4K b64_json ({size / 1e6:.1f} MB each)"
                            )
                        print_table(results[-1:])
                        print("\n".join(memory_lines[-len(peaks) :]))
                    for c in concurrencies:
                        product = measure(f"gateway, simulator {latency:g} s", product_url,
                                          product_body, headers, c, args.duration, pid,
                                          args.repeat)  # fmt: skip
                        results.append(product)
                        sim_headers = {**json_headers, "Authorization": f"Bearer {SIM_KEY}"}
                        sim = measure(
                            f"simulator alone (floor), {latency:g} s",
                            f"{sim_url}/images/generations",
                            upstream_body,
                            sim_headers,
                            c,
                            args.duration,
                            sim_pid,
                        )
                        results.append(sim)
                        print_table(results[-2:])
                    if label == "slow" and args.open_rate:
                        reference = reference_cpu_ms()
                        cpu_before = process_tree_cpu_seconds(pid)
                        n, errors, rps, p50, p99 = run_open_loop(
                            product_url, product_body, headers, args.open_rate, args.duration
                        )
                        cpu = (process_tree_cpu_seconds(pid) - cpu_before) * 1000 / max(n, 1)
                        results.append(Result(f"gateway, open loop at {args.open_rate:g}/s, 1 s", 0,
                                              n, errors, rps, p50, p99, cpu,
                                              reference))  # fmt: skip
                        print_table(results[-1:])
                del sim_pid
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(
        f"workers={args.workers} customers={args.customers} size={args.size} "
        f"duration={args.duration}s cores={os.cpu_count()}"
    )
    print_table(results)
    print("\n".join(memory_lines))


if __name__ == "__main__":
    main()
