"""`nas serve`: the REST API and the dashboard, plus workers.

On SQLite (the embedded default) the workers run as threads of this process: one file, one machine,
no other command needed. With a PostgreSQL URL they run as separate `nas worker` processes, as they
would on other machines (`--workers 0` when workers are started elsewhere, e.g. by docker-compose).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Annotated

import typer

from nas_service.cli.database import DbOpt, migrated_engine, settings_for
from nas_service.cli.output import make_console
from nas_service.config import Settings
from nas_service.db.engine import is_sqlite


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 for every interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    db: DbOpt = None,
    workers: Annotated[int, typer.Option(min=0, max=64, help="Workers to run: threads on SQLite, `nas worker` "
                                         "processes on PostgreSQL; 0 to serve only.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the API under /api/v1 and the dashboard at /, with WORKERS workers running queued jobs."""
    import uvicorn

    from nas_service.api import create_app

    settings = settings_for(db)
    migrated_engine(settings).dispose()

    stop_workers = _start_workers(settings, workers)
    console = make_console(stderr=True)
    where = "in-process" if is_sqlite(settings.database_url) else "as processes"
    console.print(f"dashboard: http://{host}:{port}/  API docs: http://{host}:{port}/api/v1/docs  "
                  f"workers: {workers} {where}", highlight=False)
    signal.signal(signal.SIGTERM, _exit_through_finally)
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
    finally:
        stop_workers()


def _exit_through_finally(signum: int, frame: FrameType | None) -> None:
    """uvicorn shuts down on SIGTERM and then raises the signal again: with the default action this process
    died there, leaving its worker processes running on as orphans. Exiting by exception stops them first."""
    raise SystemExit(128 + signum)


def _start_workers(settings: Settings, count: int) -> Callable[[], None]:
    if count == 0:
        return lambda: None
    if is_sqlite(settings.database_url):
        return _worker_threads(settings, count)
    return _worker_processes(settings, count)


def _worker_threads(settings: Settings, count: int) -> Callable[[], None]:
    from nas_service.worker import Worker

    workers = [Worker(settings, name=f"serve-{os.getpid()}-{i}") for i in range(count)]
    threads = [threading.Thread(target=w.run, name=w.name, daemon=True) for w in workers]
    for thread in threads:
        thread.start()

    def stop() -> None:
        for w in workers:
            w.stopping.set()
        for thread in threads:
            thread.join(timeout=30)
        for w in workers:
            w.close()

    return stop


def _worker_processes(settings: Settings, count: int) -> Callable[[], None]:
    env = {**os.environ, "NAS_DATABASE_URL": settings.database_url, "NAS_ARTIFACTS_DIR": str(settings.artifacts_dir)}
    command = [sys.executable, "-c", "from nas_service.cli import main; main()", "worker"]
    procs = [subprocess.Popen(command, env=env) for _ in range(count)]

    def stop() -> None:
        for proc in procs:
            proc.terminate()  # SIGTERM: the worker finishes its trial in flight, then leaves
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()

    return stop
