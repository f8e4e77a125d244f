"""Load on the read path of the API: GET front and GET trials of a 10,000-trial job, 100 requests in flight.

For each database (SQLite file; PostgreSQL when reachable) a finished job of `--trials` trials is
written (see `synthetic_job.py`), the API is started in its own process (uvicorn, as `nas serve`
runs it) and `--concurrency` keep-alive connections send `--requests` requests per endpoint, each
connection one request at a time. Printed per endpoint, as JSON lines: p50/p99 latency and
requests/s, with the result cache on (the service as shipped) and off (every read recomputed: the
baseline, measured in the same run). Target: p99 <= 50 ms for the front at 100 concurrent requests.

    .venv/bin/python bench/api_load.py [--trials 10000] [--concurrency 100] [--requests 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import POSTGRES_ADMIN, free_port, healthy, postgres_db, postgres_reachable, sqlite_db, wait_until  # noqa: E402
from synthetic_job import seed_job  # noqa: E402

from nas_service.db import make_engine, session_factory, upgrade_head  # noqa: E402
from nas_service.services import tokens  # noqa: E402

TARGET_P99_MS = 50.0
SERVER = """
import sys, uvicorn
from nas_service.api import create_app
from nas_service.config import Settings
app = create_app(Settings(database_url=sys.argv[1]), cache_results=sys.argv[3] == "on")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def prepare(url: str, trials: int) -> tuple[int, str, float]:
    engine = make_engine(url)
    upgrade_head(engine)
    start = time.perf_counter()
    with session_factory(engine)() as session:
        job_id = seed_job(session, "bench", trials)
        token = tokens.create_token(session, "bench").token
    engine.dispose()
    return job_id, token, time.perf_counter() - start


@contextmanager
def server(url: str, cache: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port), cache])
    try:
        wait_until(lambda: healthy(port) or proc.poll() is not None, 60, f"API server on port {port}")
        if proc.poll() is not None:
            raise RuntimeError(f"API server on port {port} exited with {proc.returncode}")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _connection(port: int, paths: list[str], token: str, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in paths:
            request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                       "Accept-Encoding: identity\r\n\r\n").encode()
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}")
    finally:
        writer.close()


async def _load(port: int, paths: list[str], token: str, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    shares = [paths[i::concurrency] for i in range(concurrency)]
    start = time.perf_counter()
    await asyncio.gather(*(_connection(port, share, token, latencies) for share in shares))
    return latencies, time.perf_counter() - start


def measure(port: int, paths: list[str], token: str, concurrency: int) -> dict[str, float]:
    asyncio.run(_load(port, paths[: min(len(paths), 2 * concurrency)], token, concurrency))  # warm-up
    latencies, elapsed = asyncio.run(_load(port, paths, token, concurrency))
    ms = sorted(x * 1000 for x in latencies)
    return {"p50_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 2),
            "rps": round(len(ms) / elapsed, 1), "requests": len(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    databases = {"sqlite": sqlite_db, "postgres": postgres_db}
    for backend in args.backends.split(","):
        if backend == "postgres" and not postgres_reachable():
            print(json.dumps({"bench": "api_load", "backend": backend, "skipped": f"{POSTGRES_ADMIN} unreachable"}))
            continue
        with databases[backend]() as url:
            job_id, token, seed_s = prepare(url, args.trials)
            base = f"/api/v1/jobs/{job_id}"
            endpoints = {
                "front": [f"{base}/front"] * args.requests,
                "trials": [f"{base}/trials?limit=100&sort=accuracy&order=desc&offset={100 * (i % 100)}"
                           for i in range(args.requests)],
            }
            for cache in ("on", "off"):
                with server(url, cache) as port:
                    for endpoint, paths in endpoints.items():
                        n = len(paths) if cache == "on" else max(len(paths) // 8, 2 * args.concurrency)
                        result = measure(port, paths[:n], token, args.concurrency)
                        line = {"bench": "api_load", "backend": backend, "endpoint": endpoint, "cache": cache,
                                "role": "service" if cache == "on" else "baseline (no result cache)",
                                "trials": args.trials, "concurrency": args.concurrency, **result,
                                "seed_seconds": round(seed_s, 1), "load_average_1m": round(os.getloadavg()[0], 2)}
                        if endpoint == "front":
                            line.update(target_p99_ms=TARGET_P99_MS, meets_target=result["p99_ms"] <= TARGET_P99_MS)
                        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
