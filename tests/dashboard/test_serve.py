"""`nas serve` end to end over HTTP: workers in-process on SQLite, separate `nas worker` processes on PostgreSQL."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.conftest import Served, serving


def call(served: Served, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{served.url}/api/v1{path}", data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {served.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def run_job(served: Served) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    job = call(served, "/jobs", {"budget": {"trials": 5}, "training": {"scorer": "estimate"}})
    deadline = time.monotonic() + 180
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = call(served, f"/jobs/{job['id']}")
    return job, call(served, f"/jobs/{job['id']}/trials")["items"]


def test_serve_runs_jobs_in_process_on_sqlite(served: Served) -> None:
    job, trials = run_job(served)
    assert job["status"] == "completed" and len(trials) == 5
    assert {t["worker"].split("-")[0] for t in trials} == {"serve"}  # threads of the serving process


@pytest.mark.postgres
def test_serve_starts_worker_processes_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    with serving(postgres_url, tmp_path, workers=1) as served:
        job, trials = run_job(served)
    assert job["status"] == "completed" and len(trials) == 5
    assert all(not t["worker"].startswith("serve-") for t in trials)  # `nas worker` processes: host:pid
    assert others_connected(postgres_url) == 0  # a stopped server leaves no worker running on the database


def others_connected(url: str) -> int:
    """Sessions on `url`'s database other than this one, a few seconds after its users were told to stop."""
    import time

    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        for _ in range(50):
            with engine.connect() as conn:
                count = conn.scalar(sa.text("SELECT count(*) FROM pg_stat_activity "
                                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            if count == 0:
                break
            time.sleep(0.2)
    finally:
        engine.dispose()
    return int(count or 0)


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_bad_jobs_never_take_the_service_down(db: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Three bad datasets: `nas search` refuses each in one line before a job exists; the same jobs queued anyway
    (as an older client could) fail with their reasons once `nas serve` runs, and a REST job then completes."""
    import os
    import subprocess
    import sys

    import numpy as np

    from nas_service.cli.database import session_maker, settings_for
    from nas_service.services import jobs
    from nas_service.spec import parse_spec

    url = f"sqlite:///{tmp_path / 'nas.db'}" if db == "sqlite" else str(request.getfixturevalue("postgres_url"))
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((4, 8, 8)))
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    bad = {str(tmp_path / "missing.npz"): "not found", str(tmp_path / "partial.npz"): "lacks y_train",
           str(tmp_path / "corrupt.npz"): "cannot be read as a .npz"}
    env = {**os.environ, "NAS_DATABASE_URL": url, "NAS_ARTIFACTS_DIR": str(tmp_path / "artifacts")}
    for dataset, why in bad.items():
        run = subprocess.run([sys.executable, "-c", "from nas_service.cli import main; main()", "search",
                              "--scorer", "estimate", "--dataset", dataset], env=env, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 2 and why in run.stderr and len(run.stderr.strip().splitlines()) == 1
    with session_maker(settings_for(url))() as session:
        assert jobs.list_jobs(session).total == 0  # refused before the job row exists
        queued = {jobs.create_job(session, parse_spec({"dataset": name, "training": {"scorer": "estimate"}}),
                                  owner="alice").id: why for name, why in bad.items()}
    with serving(url, tmp_path, workers=1) as served:
        job, trials = run_job(served)
        assert job["status"] == "completed" and len(trials) == 5
        for job_id, why in queued.items():
            failed = call(served, f"/jobs/{job_id}")
            assert failed["status"] == "failed" and why in failed["error"] and "\n" not in failed["error"]
