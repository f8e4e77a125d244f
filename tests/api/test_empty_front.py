"""Empty fronts answer alike: `front/knee` and `front/best` both 404 with the reason, and `nas pareto` says it.

An all-infeasible job (a latency limit no candidate meets) on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nas_service.cli import app
from nas_service.worker import Worker
from tests.api.conftest import make_api

UNMEETABLE = {"budget": {"trials": 3}, "training": {"scorer": "estimate"}, "constraints": {"max_latency_ms": 0.01},
              "initial": [], "seed": 1}


def check_empty_front(url: str, artifacts: Path) -> None:
    for api in make_api(url, artifacts):
        queued = api.client.post("/api/v1/jobs", json={**UNMEETABLE, "budget": {"trials": 1}}, headers=api.alice)
        job = api.client.post("/api/v1/jobs", json=UNMEETABLE, headers=api.alice).json()
        answers = [api.client.get(f"/api/v1/jobs/{queued.json()['id']}/front/{path}", headers=api.alice)
                   for path in ("knee", "best?max_latency_ms=5")]
        assert [a.status_code for a in answers] == [404, 404], [a.text for a in answers]
        reason = "front is empty: no trial has finished yet (the job is queued)"
        assert all(reason in a.json()["detail"] for a in answers), [a.text for a in answers]
        api.client.post(f"/api/v1/jobs/{queued.json()['id']}/cancel", headers=api.alice)
        worker = Worker(api.settings)
        worker.run(job_id=job["id"], exit_when_idle=True)
        worker.close()
        base = f"/api/v1/jobs/{job['id']}"
        assert api.client.get(base, headers=api.alice).json()["trial_counts"] == {"infeasible": 3}
        answers = [api.client.get(f"{base}/front/{path}", headers=api.alice)
                   for path in ("knee", "best?max_latency_ms=5")]
        assert [a.status_code for a in answers] == [404, 404]
        details = {a.json()["detail"] for a in answers}
        assert len(details) == 1, details
        (detail,) = details
        assert f"job {job['id']}'s Pareto front is empty: none of its 3 finished trials joined it" in detail
        assert "3 infeasible (broke a constraint)" in detail
        result = CliRunner().invoke(app, ["pareto", str(job["id"]), "--db", url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert detail in " ".join(result.output.split()), result.output
        assert "Pareto front of job" not in result.output  # a message, not an empty table


def test_empty_fronts_on_sqlite(tmp_path: Path) -> None:
    check_empty_front(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "artifacts")


@pytest.mark.postgres
def test_empty_fronts_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    check_empty_front(postgres_url, tmp_path / "artifacts")
