"""Jobs over REST: created from the CLI's spec, visible only to their owner, bad specs answered with 422."""

from __future__ import annotations

import time
from typing import Any

from tests.api.conftest import Api

SPEC: dict[str, Any] = {"name": "api-job", "space": "edgetpu", "resolution": 32, "device": "edgetpu_usb",
                        "budget": {"trials": 3}, "training": {"scorer": "estimate"}}


def test_create_list_get_cancel(api: Api) -> None:
    created = api.client.post("/api/v1/jobs", json=SPEC, headers=api.alice)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["owner"] == "alice" and job["status"] == "queued" and job["trials_budget"] == 3
    assert job["spec"]["training"]["scorer"] == "estimate"
    listed = api.client.get("/api/v1/jobs", headers=api.alice).json()
    assert job["id"] in [j["id"] for j in listed["items"]]
    assert api.client.get(f"/api/v1/jobs/{job['id']}", headers=api.alice).json()["name"] == "api-job"
    cancelled = api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=api.alice)
    assert cancelled.json()["status"] == "cancelled"
    again = api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=api.alice)
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


def test_other_users_jobs_are_not_found(api: Api) -> None:
    job = api.client.post("/api/v1/jobs", json=SPEC, headers=api.alice).json()
    for path in (f"/api/v1/jobs/{job['id']}", f"/api/v1/jobs/{job['id']}/trials", f"/api/v1/jobs/{job['id']}/front",
                 f"/api/v1/jobs/{job['id']}/points"):
        assert api.client.get(path, headers=api.bob).status_code == 404, path
        assert api.client.get(path, headers=api.alice).status_code == 200, path
    assert api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=api.bob).status_code == 404
    assert job["id"] not in [j["id"] for j in api.client.get("/api/v1/jobs", headers=api.bob).json()["items"]]
    assert api.client.get(f"/api/v1/jobs/{job['id']}", headers=api.alice).json()["status"] == "queued"


def test_bad_spec_names_field_and_allowed_values(api: Api) -> None:
    response = api.client.post("/api/v1/jobs", json={**SPEC, "sampler": "annealing"}, headers=api.alice)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "sampler"]
    assert "'nsga2', 'tpe' or 'random'" in error["msg"]
    response = api.client.post("/api/v1/jobs", json={**SPEC, "space": "nope"}, headers=api.alice)
    assert response.status_code == 422
    assert "nope" in str(response.json()["detail"]) and "edgetpu" in str(response.json()["detail"])
    response = api.client.post("/api/v1/jobs", json={**SPEC, "device": "tpu9000"}, headers=api.alice)
    assert response.status_code == 422 and "edgetpu_usb" in str(response.json()["detail"])
    response = api.client.post("/api/v1/jobs", json={**SPEC, "budget": {"trials": 0}}, headers=api.alice)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "budget", "trials"]


def test_a_resolution_the_space_does_not_allow_is_422(api: Api) -> None:
    """It was accepted (201) and ran with candidates outside the space."""
    before = api.client.get("/api/v1/jobs", headers=api.alice).json()["total"]
    for space, resolution, allowed in (("edgetpu_small", 33, "expected 28, 32, 48 or 64"),
                                       ("edgetpu_small", 100, "expected 28, 32, 48 or 64"),
                                       ("edgetpu", 28, "expected 32, 64, 96")):
        response = api.client.post("/api/v1/jobs", json={**SPEC, "space": space, "resolution": resolution},
                                   headers=api.alice)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "resolution"] and allowed in error["msg"] and str(resolution) in error["msg"]
    assert api.client.get("/api/v1/jobs", headers=api.alice).json()["total"] == before
    for resolution in (28, None):  # an allowed one, or none: the space's resolutions are searched
        response = api.client.post("/api/v1/jobs", json={**SPEC, "space": "edgetpu_small", "resolution": resolution},
                                   headers=api.alice)
        assert response.status_code == 201, response.text


def test_a_spec_naming_only_its_space_gets_a_resolution_of_that_space(api: Api) -> None:
    """The default resolution 28 is not one of `edgetpu`'s: `{"space": "edgetpu"}` was refused for a resolution
    the user never gave."""
    spec = {key: value for key, value in SPEC.items() if key != "resolution"}
    for space, resolution in (("edgetpu", 32), ("edgetpu_small", 28)):
        response = api.client.post("/api/v1/jobs", json={**spec, "space": space}, headers=api.alice)
        assert response.status_code == 201, response.text
        assert response.json()["spec"]["resolution"] == resolution


def test_empty_job_has_empty_front_and_points(api: Api) -> None:
    job = api.client.post("/api/v1/jobs", json=SPEC, headers=api.alice).json()
    base = f"/api/v1/jobs/{job['id']}"
    assert api.client.get(f"{base}/front", headers=api.alice).json() == {"items": [], "total": 0, "offset": 0,
                                                                         "limit": None}
    for path in ("front/knee", "front/best?max_latency_ms=5"):
        empty = api.client.get(f"{base}/{path}", headers=api.alice)
        assert empty.status_code == 404 and "front is empty: no trial has finished yet" in empty.json()["detail"]
    points = api.client.get(f"{base}/points", headers=api.alice).json()
    assert points["trial"] == [] and points["status"] == "queued"
    assert api.client.get(f"{base}/trials?sort=accuracy&order=desc", headers=api.alice).json()["total"] == 0


def test_catalog(api: Api) -> None:
    spaces = api.client.get("/api/v1/spaces", headers=api.alice).json()
    assert "edgetpu" in [s["name"] for s in spaces["items"]]
    devices = api.client.get("/api/v1/devices", headers=api.alice).json()
    assert "edgetpu_usb" in [d["name"] for d in devices["items"]]


def test_cached_results_follow_a_changed_job(api: Api) -> None:
    """A cached answer is revalidated in the background once older than the TTL: changes show within it."""
    cache = api.client.app.state.ctx.results  # type: ignore[attr-defined]
    cache.ttl, ttl = 0.05, cache.ttl
    try:
        job = api.client.post("/api/v1/jobs", json=SPEC, headers=api.alice).json()
        points = f"/api/v1/jobs/{job['id']}/points"
        assert api.client.get(points, headers=api.alice).json()["status"] == "queued"
        api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=api.alice)
        deadline = time.monotonic() + 5
        while api.client.get(points, headers=api.alice).json()["status"] != "cancelled":
            assert time.monotonic() < deadline, "the cached points never saw the cancellation"
            time.sleep(0.05)
    finally:
        cache.ttl = ttl
