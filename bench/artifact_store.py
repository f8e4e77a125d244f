"""Artifact store figures: throughput of a 5 MB model through the database store against the filesystem store
(same run, same machine), and the server's peak RSS while it streams a 20 MB and a 100 MB `front.zip`.

Throughput: `--rounds` uploads (`db.artifacts.save_stream`: hashed, one transaction of 1 MiB chunks for the
database store, a temporary file renamed for the filesystem store) and checked downloads (`chunks`: read
chunk by chunk, hashed, compared) of one 5 MB file; the median of each, in MB/s. The database store runs on
PostgreSQL when `--postgres` reaches one (a fresh database, dropped after), and on SQLite in any case.

Peak RSS: a job whose front holds members of incompressible random bytes totalling the zip's size, served by
`nas serve --workers 0` (a fresh process per size, on PostgreSQL with its default database store when reachable,
else SQLite with the filesystem store); the client reads the zip in 1 MiB pieces and discards them; the server's
VmHWM (peak resident set) is read from /proc before and after. Streaming holds one chunk at a time, so the
peak must not grow with the zip.

Prints one JSON object per line. Usage:
    .venv/bin/python bench/artifact_store.py [--rounds 7] [--postgres URL]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from nas_service.config import Settings
from nas_service.db import Candidate, make_engine, session_factory, upgrade_head
from nas_service.db.artifacts import chunks, make_store, save_stream

MB = 1_000_000
NAS = [sys.executable, "-c", "from nas_service.cli import main; main()"]


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str | None]:
    """A fresh database on the server at `admin_url` (None if it cannot be reached), dropped afterwards."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"nas_bench_{uuid.uuid4().hex[:10]}"
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        engine.dispose()
        yield None
        return
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def throughput(settings: Settings, label: str, rounds: int) -> dict[str, object]:
    engine = make_engine(settings.database_url)
    upgrade_head(engine, settings=settings)
    store = make_store(settings, engine)
    payload = os.urandom(5 * MB)
    ups, downs = [], []
    with session_factory(engine)() as session:
        for _ in range(rounds):
            start = time.perf_counter()
            saved = save_stream(session, store, io.BytesIO(payload), kind="model", filename="m.tflite")
            ups.append(time.perf_counter() - start)
            start = time.perf_counter()
            got = sum(len(block) for block in chunks(store, saved, what="bench"))
            downs.append(time.perf_counter() - start)
            assert got == len(payload)
    engine.dispose()
    return {"bench": "artifact_throughput", "store": label, "file_mb": 5, "rounds": rounds,
            "upload_mb_s": round(5 / statistics.median(ups), 1),
            "download_mb_s": round(5 / statistics.median(downs), 1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc")


def zip_job(settings: Settings, zip_mb: int, members: int = 5) -> tuple[int, str]:
    """A finished job whose front members hold `zip_mb` MB of random model bytes in the store; (job id, token)."""
    from nas_service.controller.scoring import EstimateScorer
    from nas_service.services import jobs, tokens
    from nas_service.spec import parse_spec
    from nas_service.worker import Worker

    engine = make_engine(settings.database_url)
    upgrade_head(engine, settings=settings)
    sessions = session_factory(engine)
    with sessions() as session:
        token = tokens.create_token(session, "bench").token
        job = jobs.create_job(session, parse_spec({"budget": {"trials": 12}, "training": {"scorer": "train"},
                                                   "sampler": "random", "seed": 2}), owner="bench")
    worker = Worker(settings, scorer=EstimateScorer())  # fast scoring; the files are stand-ins of a chosen size
    worker.run(exit_when_idle=True)
    store = make_store(settings, engine)
    with sessions() as session:
        front = list(session.scalars(sa.select(Candidate).where(Candidate.job_id == job.id,
                                                                Candidate.on_front.is_(True))))
        size = zip_mb * MB // len(front)
        for c in front:
            c.tflite_artifact = save_stream(session, store, io.BytesIO(os.urandom(size)), kind="model",
                                            filename=f"{c.id}.tflite", job_id=job.id).id
        session.commit()
    worker.close()
    engine.dispose()
    return job.id, token


def peak_rss(settings: Settings, label: str, zip_mb: int, root: Path) -> dict[str, object]:
    job_id, token = zip_job(settings, zip_mb)
    env = {**os.environ, "NAS_DATABASE_URL": settings.database_url, "NAS_ARTIFACTS_DIR": str(settings.artifacts_dir)}
    if settings.artifact_store:
        env["NAS_ARTIFACT_STORE"] = settings.artifact_store
    port = free_port()
    server = subprocess.Popen([*NAS, "serve", "--port", str(port), "--workers", "0", "--log-level", "warning"],
                              env=env, cwd=root)
    base = f"http://127.0.0.1:{port}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        for _ in range(3):  # warm up the routes the download uses
            urllib.request.urlopen(urllib.request.Request(f"{base}/jobs/{job_id}/front", headers=headers)).read()
        before = vm_hwm_kib(server.pid)
        start, received = time.perf_counter(), 0
        with urllib.request.urlopen(urllib.request.Request(f"{base}/jobs/{job_id}/front.zip", headers=headers),
                                    timeout=600) as response:
            while block := response.read(1 << 20):
                received += len(block)
        seconds = time.perf_counter() - start
        after = vm_hwm_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"bench": "front_zip_peak_rss", "store": label, "zip_mb": round(received / MB, 1),
            "server_peak_rss_mib_before": round(before / 1024, 1), "server_peak_rss_mib_after": round(after / 1024, 1),
            "growth_mib": round((after - before) / 1024, 1), "seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--postgres", default=os.environ.get("NAS_TEST_POSTGRES_URL",
                                                             "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sqlite = f"sqlite:///{root / 'nas.db'}"
        print(json.dumps(throughput(Settings(database_url=sqlite, artifacts_dir=root / "a", artifact_store="file"),
                                    "file (baseline)", args.rounds)), flush=True)
        print(json.dumps(throughput(Settings(database_url=sqlite, artifacts_dir=root / "a", artifact_store="db"),
                                    "db on SQLite", args.rounds)), flush=True)
        with postgres_database(args.postgres) as url:
            if url is not None:
                print(json.dumps(throughput(Settings(database_url=url, artifacts_dir=root / "a"), "db on PostgreSQL",
                                            args.rounds)), flush=True)
        for zip_mb in (20, 100):
            with postgres_database(args.postgres) as url:
                work = root / f"zip{zip_mb}"
                work.mkdir()
                if url is not None:
                    settings, label = Settings(database_url=url, artifacts_dir=work / "a"), "db on PostgreSQL"
                else:
                    settings, label = Settings(database_url=f"sqlite:///{work / 'nas.db'}",
                                               artifacts_dir=work / "a"), "file on SQLite"
                print(json.dumps(peak_rss(settings, label, zip_mb, work)), flush=True)


if __name__ == "__main__":
    main()
