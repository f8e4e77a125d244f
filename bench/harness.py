"""What the benchmarks share: throwaway databases, free ports, and `nas` processes started as a user would.

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

POSTGRES_ADMIN = os.environ.get("NAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NAS = [sys.executable, "-c", "from nas_service.cli import main; main()"]
"""The `nas` command of this interpreter's environment."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sqlite_db() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        yield f"sqlite:///{tmp}/nas.db"


@contextmanager
def postgres_db(admin_url: str = POSTGRES_ADMIN) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped (connections and all) afterwards."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"nas_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_reachable(admin_url: str = POSTGRES_ADMIN) -> bool:
    engine = sa.create_engine(admin_url)
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str = "condition") -> float:
    """Poll `predicate` every 50 ms; the seconds it took, or TimeoutError after `timeout_s`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what} not met within {timeout_s} s")
        time.sleep(0.05)
    return time.monotonic() - start


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def nas_env(url: str, artifacts: Path, **settings: str) -> dict[str, str]:
    """Environment for `nas` processes on `url`, with fast heartbeats so faults show within seconds."""
    env = {**os.environ, "NAS_DATABASE_URL": url, "NAS_ARTIFACTS_DIR": str(artifacts),
           "NAS_HEARTBEAT_INTERVAL_S": "1", "NAS_HEARTBEAT_GRACE_S": "3", "NAS_POLL_INTERVAL_S": "0.2"}
    env.update({f"NAS_{k.upper()}": v for k, v in settings.items()})
    return env


def _log(name: str) -> Any:
    """Where a started process writes its output: NAS_BENCH_LOGS/NAME.log when that folder is set, else nowhere."""
    logs = os.environ.get("NAS_BENCH_LOGS")
    return open(Path(logs) / f"{name}.log", "ab") if logs else subprocess.DEVNULL  # noqa: SIM115


def start_serve(env: dict[str, str], port: int, workers: int = 0, timeout_s: float = 60) -> subprocess.Popen[bytes]:
    """`nas serve` on `port`, returned once its health route answers."""
    log = _log(f"serve-{port}")
    proc = subprocess.Popen([*NAS, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
                            env=env, stdout=log, stderr=log)
    try:
        wait_until(lambda: healthy(port) or proc.poll() is not None, timeout_s, f"nas serve on port {port}")
    except TimeoutError:
        proc.kill()
        raise
    if proc.poll() is not None:
        raise RuntimeError(f"nas serve on port {port} exited with {proc.returncode}")
    return proc


def start_worker(env: dict[str, str], name: str, *extra: str) -> subprocess.Popen[bytes]:
    log = _log(name)
    return subprocess.Popen([*NAS, "worker", "--name", name, *extra], env=env, stdout=log, stderr=log)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not left within `timeout_s`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")
