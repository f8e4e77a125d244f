"""Bearer tokens: 401 without a valid one, public health and docs, tokens stored only hashed."""

from __future__ import annotations

import sqlalchemy as sa

from nas_service.db import ApiToken, make_engine
from nas_service.services.tokens import hash_token, well_formed
from tests.api.conftest import Api


def test_health_and_docs_are_public(api: Api) -> None:
    health = api.client.get("/api/v1/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["database"] == "sqlite"
    assert api.client.get("/api/v1/openapi.json").status_code == 200
    assert api.client.get("/api/v1/docs").status_code == 200


def test_no_token_gives_401(api: Api) -> None:
    for path in ("/api/v1/me", "/api/v1/jobs", "/api/v1/spaces", "/api/v1/jobs/1/front"):
        response = api.client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    assert api.client.get("/api/v1/me", headers={"Authorization": "Bearer nas_wrong"}).status_code == 401
    assert api.client.get("/api/v1/me", headers={"Authorization": "Basic YWxpY2U6eA=="}).status_code == 401


def test_token_names_its_user(api: Api) -> None:
    assert api.client.get("/api/v1/me", headers=api.alice).json() == {"user": "alice"}
    assert api.client.get("/api/v1/me", headers=api.bob).json() == {"user": "bob"}


def test_only_the_hash_is_stored(api: Api) -> None:
    token = api.alice["Authorization"].removeprefix("Bearer ")
    engine = make_engine(api.settings.database_url)
    with engine.connect() as conn:
        stored = set(conn.scalars(sa.select(ApiToken.token_hash)))
    engine.dispose()
    assert hash_token(token) in stored
    assert token not in stored


def test_metrics_count_requests(api: Api) -> None:
    api.client.get("/api/v1/health")
    text = api.client.get("/metrics").text
    assert 'nas_http_requests_total{method="GET",route="/api/v1/health",status="200"}' in text
    assert 'nas_jobs{status="queued"}' in text and "nas_trials_done" in text


def test_tokens_of_the_wrong_shape_are_refused_without_a_lookup(api: Api) -> None:
    issued = api.alice["Authorization"].removeprefix("Bearer ")
    assert well_formed(issued)
    for token in ("nas_wrong", issued + "x", issued[:-1], issued.upper().replace("NAS_", "xyz_"), "x" * 5000):
        assert not well_formed(token)
        assert api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
