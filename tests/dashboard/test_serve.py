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
