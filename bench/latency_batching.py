"""Requests per second of `POST /latency/total` at 100 concurrent clients, micro-batched against priced one by one.

Two API servers run in their own processes (uvicorn, as `nas serve` runs it) on the same SQLite database: the
service as shipped (concurrent requests priced in one vectorised call per device) and the baseline with
batching off (each request priced on its own, in the thread pool), measured in the same run. Each of
`--clients` keep-alive connections sends requests one at a time, with architectures drawn from the
`edgetpu_small` space; `--rounds` alternating rounds per server, medians printed as JSON lines.

    .venv/bin/python bench/latency_batching.py [--clients 100] [--requests 5000] [--rounds 3]
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
from harness import free_port, healthy, sqlite_db, wait_until  # noqa: E402

from nas_service.db import make_engine, session_factory, upgrade_head  # noqa: E402
from nas_service.services import tokens  # noqa: E402
from search_spaces import encode, load_space  # noqa: E402

SERVER = """
import sys, uvicorn
from nas_service.api import create_app
from nas_service.config import Settings
app = create_app(Settings(database_url=sys.argv[1]), batch_latency=sys.argv[3] == "on")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


@contextmanager
def server(url: str, batching: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port), batching])
    try:
        wait_until(lambda: healthy(port) or proc.poll() is not None, 60, f"API server on port {port}")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _client(port: int, bodies: list[bytes], token: str, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for body in bodies:
            request = (f"POST /api/v1/latency/total HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"answered {head.split(b' ', 2)[1].decode()}")
    finally:
        writer.close()


async def _round(port: int, bodies: list[bytes], token: str, clients: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, bodies[i::clients], token, latencies) for i in range(clients)))
    return latencies, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    archs = load_space("edgetpu_small").random_members(args.requests, resolution=28, seed=11)
    bodies = [json.dumps({"arch": encode(a), "device": "edgetpu_usb"}).encode() for a in archs]
    with sqlite_db() as url:
        engine = make_engine(url)
        upgrade_head(engine)
        with session_factory(engine)() as session:
            token = tokens.create_token(session, "bench").token
        engine.dispose()
        runs: dict[str, list[tuple[float, float, float]]] = {"on": [], "off": []}
        with server(url, "on") as on_port, server(url, "off") as off_port:
            for _ in range(args.rounds):
                for batching, port in (("on", on_port), ("off", off_port)):
                    asyncio.run(_round(port, bodies[: 2 * args.clients], token, args.clients))  # warm-up
                    latencies, elapsed = asyncio.run(_round(port, bodies, token, args.clients))
                    ms = sorted(x * 1000 for x in latencies)
                    runs[batching].append((len(ms) / elapsed, statistics.median(ms), ms[int(0.99 * (len(ms) - 1))]))
    medians = {}
    for batching, rows in runs.items():
        rps, p50, p99 = (statistics.median(column) for column in zip(*rows, strict=True))
        medians[batching] = rps
        print(json.dumps({"bench": "latency_batching", "batching": batching,
                          "role": "service" if batching == "on" else "baseline (one prediction per request)",
                          "clients": args.clients, "requests": args.requests, "rounds": args.rounds,
                          "rps_median": round(rps, 1), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
                          "rps_each_round": [round(r[0], 1) for r in rows],
                          "load_average_1m": round(os.getloadavg()[0], 2)}), flush=True)
    print(json.dumps({"bench": "latency_batching", "batched_over_unbatched": round(medians["on"] / medians["off"], 2)}))


if __name__ == "__main__":
    main()
