"""The same API over PostgreSQL: tokens, a job run by a worker process's code, its results, owners' isolation."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas_service.worker import Worker
from tests.api.conftest import make_api


@pytest.mark.postgres
def test_api_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    for api in make_api(postgres_url, tmp_path / "artifacts"):
        spec = {"budget": {"trials": 6}, "training": {"scorer": "estimate"}, "seed": 5}
        job = api.client.post("/api/v1/jobs", json=spec, headers=api.alice).json()
        worker = Worker(api.settings)
        worker.run(exit_when_idle=True)
        worker.close()
        base = f"/api/v1/jobs/{job['id']}"
        assert api.client.get(base, headers=api.alice).json()["status"] == "completed"
        points = api.client.get(f"{base}/points", headers=api.alice).json()
        assert len(points["trial"]) == 6 and any(points["front"])
        front = api.client.get(f"{base}/front", headers=api.alice).json()
        assert front["total"] == sum(1 for _ in {c for c, f in zip(points["candidate"], points["front"], strict=True)
                                                 if f})
        assert api.client.get(f"{base}/front/knee", headers=api.alice).json()["candidate_id"]
        health = api.client.get("/api/v1/health").json()
        assert health["database"] == "postgresql"
        for path in (base, f"{base}/front", f"{base}/points", f"{base}/trials"):
            assert api.client.get(path, headers=api.bob).status_code == 404
        assert api.client.post(f"{base}/cancel", headers=api.alice).status_code == 409
