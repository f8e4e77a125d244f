"""DELETE /api/v1/jobs/{id} (as `nas rm`: owner only, refused while queued or running), 415 for a JSON body
sent as another type, and 404s that speak to API callers, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas_service.worker import Worker
from tests.api.conftest import Api, make_api

SPEC = {"budget": {"trials": 4}, "training": {"scorer": "estimate"}, "seed": 2}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api_on(request: pytest.FixtureRequest, tmp_path: Path) -> Api:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/a.db"
    generator = make_api(url, tmp_path / "artifacts")
    api = next(generator)
    request.addfinalizer(lambda: next(generator, None))
    return api


def test_delete_a_job_owner_only_and_not_while_it_runs(api_on: Api) -> None:
    api = api_on
    job = api.client.post("/api/v1/jobs", json=SPEC, headers=api.alice).json()
    base = f"/api/v1/jobs/{job['id']}"
    refused = api.client.delete(base, headers=api.alice)
    assert refused.status_code == 409 and "is queued: cancel it first" in refused.json()["detail"]
    assert "nas " not in refused.json()["detail"]
    worker = Worker(api.settings)
    worker.run(exit_when_idle=True)
    worker.close()
    assert api.client.get(f"{base}/front", headers=api.alice).status_code == 200  # cached now
    assert optuna.get_all_study_names(api.settings.database_url)

    other = api.client.delete(base, headers=api.bob)
    assert other.status_code == 404 and other.json()["detail"] == f"job {job['id']} not found"
    assert api.client.delete(base, headers=api.alice).status_code == 204
    for path in (base, f"{base}/front", f"{base}/points", f"{base}/trials"):
        gone = api.client.get(path, headers=api.alice)
        assert gone.status_code == 404 and "nas jobs" not in gone.text, path
    assert optuna.get_all_study_names(api.settings.database_url) == []
    assert api.client.delete(base, headers=api.alice).status_code == 404
    assert api.client.delete("/api/v1/jobs/1").status_code == 401


def test_json_sent_as_text_plain_is_415(api_on: Api) -> None:
    api = api_on
    body = '{"budget": {"trials": 1}, "training": {"scorer": "estimate"}}'
    for path in ("/api/v1/jobs", "/api/v1/latency/predict"):
        response = api.client.post(path, content=body, headers={**api.alice, "Content-Type": "text/plain"})
        assert response.status_code == 415, response.text
        assert "application/json" in response.json()["detail"]
    ok = api.client.post("/api/v1/jobs", content=body,
                         headers={**api.alice, "Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 201, ok.text
    assert api.client.post(f"/api/v1/jobs/{ok.json()['id']}/cancel", headers=api.alice).status_code == 200
