"""A real job (estimate scorer, run by a real worker) read back over REST: points, front, knee, trials, candidates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nas_service.worker import Worker
from tests.api.conftest import Api, make_api, median_latency_ms

LIMIT_MS = median_latency_ms()
SPEC: dict[str, Any] = {"name": "results", "budget": {"trials": 14}, "training": {"scorer": "estimate"},
                        "constraints": {"max_latency_ms": LIMIT_MS, "max_params": None}, "seed": 3}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, int]]:
    root = tmp_path_factory.mktemp("results")
    for api in make_api(f"sqlite:///{root / 'nas.db'}", root / "artifacts"):
        job = api.client.post("/api/v1/jobs", json=SPEC, headers=api.alice).json()
        worker = Worker(api.settings)
        worker.run(exit_when_idle=True)
        worker.close()
        yield api, job["id"]


def get(api: Api, path: str) -> Any:
    response = api.client.get(f"/api/v1{path}", headers=api.alice)
    assert response.status_code == 200, response.text
    return response.json()


def test_job_completed_with_its_budget(finished: tuple[Api, int]) -> None:
    api, job_id = finished
    job = get(api, f"/jobs/{job_id}")
    assert job["status"] == "completed" and job["trials_done"] == 14 and job["front_size"] >= 1


def test_points_are_columns_matching_the_trials(finished: tuple[Api, int]) -> None:
    api, job_id = finished
    points = get(api, f"/jobs/{job_id}/points")
    n = len(points["trial"])
    assert n == 14
    assert all(len(points[k]) == n for k in ("candidate", "accuracy", "latency_ms", "feasible", "stopped", "front"))
    trials = get(api, f"/jobs/{job_id}/trials?limit=100")["items"]
    by_number = {t["number"]: t for t in trials}
    for i, number in enumerate(points["trial"]):
        assert points["feasible"][i] == (by_number[number]["state"] != "infeasible")
        assert points["front"][i] == by_number[number]["on_front"]
    infeasible = [i for i in range(n) if not points["feasible"][i]]
    assert infeasible, "the latency limit should make some candidates infeasible"
    assert all(points["accuracy"][i] is None and points["latency_ms"][i] > LIMIT_MS for i in infeasible)


def test_front_knee_and_best(finished: tuple[Api, int]) -> None:
    api, job_id = finished
    front = get(api, f"/jobs/{job_id}/front")["items"]
    latencies = [m["latency_ms"] for m in front]
    assert latencies == sorted(latencies)
    assert [m["accuracy"] for m in front] == sorted(m["accuracy"] for m in front)  # faster is never more accurate
    knee = get(api, f"/jobs/{job_id}/front/knee")
    assert knee["candidate_id"] in {m["candidate_id"] for m in front}
    limit = latencies[len(latencies) // 2] + 1e-9
    best = get(api, f"/jobs/{job_id}/front/best?max_latency_ms={limit}")
    assert best == max((m for m in front if m["latency_ms"] <= limit), key=lambda m: m["accuracy"])
    none = api.client.get(f"/api/v1/jobs/{job_id}/front/best?max_latency_ms={latencies[0] / 2}",
                          headers=api.alice)
    assert none.status_code == 404
    assert f"fastest member takes {latencies[0]:.4g} ms" in none.json()["detail"]


def test_trials_page_and_sort(finished: tuple[Api, int]) -> None:
    api, job_id = finished
    page = get(api, f"/jobs/{job_id}/trials?offset=2&limit=5&sort=accuracy&order=desc")
    assert page["total"] == 14 and page["offset"] == 2 and len(page["items"]) == 5
    everything = get(api, f"/jobs/{job_id}/trials?sort=accuracy&order=desc&limit=100")["items"]
    scored = [t["accuracy"] for t in everything if t["accuracy"] is not None]
    assert scored == sorted(scored, reverse=True)
    assert [t["accuracy"] for t in everything[len(scored):]] == [None] * (14 - len(scored))  # missing last
    assert page["items"] == everything[2:7]


def test_candidate_detail_and_missing_tflite(finished: tuple[Api, int]) -> None:
    api, job_id = finished
    member = get(api, f"/jobs/{job_id}/front")["items"][0]
    candidate = get(api, f"/jobs/{job_id}/candidates/{member['candidate_id']}")
    assert candidate["arch"] == member["arch"] and candidate["on_front"]
    assert candidate["layers"] and candidate["latency_layers"]
    assert sum(layer["params"] for layer in candidate["layers"]) == candidate["params"]
    assert get(api, f"/jobs/{job_id}/candidates/{member['candidate_id']}?layers=false")["layers"] is None
    download = api.client.get(f"/api/v1/jobs/{job_id}/candidates/{member['candidate_id']}/tflite",
                              headers=api.alice)
    assert download.status_code == 404 and "no int8 TFLite" in download.json()["detail"]
    other = api.client.get(f"/api/v1/jobs/{job_id}/candidates/{member['candidate_id']}", headers=api.bob)
    assert other.status_code == 404


def test_cached_reads_revalidate_and_answer_304(finished: tuple[Api, int]) -> None:
    api, job_id = finished
    first = api.client.get(f"/api/v1/jobs/{job_id}/front", headers=api.alice)
    for path in ("front", "front/knee", "points", "trials", "trials?sort=accuracy&order=desc&limit=5&offset=1"):
        # the second read comes from the fast path: the same answer
        answers = [api.client.get(f"/api/v1/jobs/{job_id}/{path}", headers=api.alice) for _ in range(2)]
        assert answers[0].content == answers[1].content and answers[0].headers == answers[1].headers
        gzipped = api.client.get(f"/api/v1/jobs/{job_id}/{path}", headers={**api.alice, "Accept-Encoding": "gzip"})
        assert gzipped.json() == answers[0].json()
    assert 'route="/api/v1/jobs/{job_id}/front"' in api.client.get("/metrics").text
    etag = first.headers["etag"]
    again = api.client.get(f"/api/v1/jobs/{job_id}/front", headers={**api.alice, "If-None-Match": etag})
    assert again.status_code == 304
    assert api.client.get(f"/api/v1/jobs/{job_id}/front", headers=api.bob).status_code == 404


def test_fast_path_keys_only_plain_trial_queries() -> None:
    from nas_service.api.result_keys import trials_page_key

    assert trials_page_key(3, "") == trials_page_key(3, "offset=0&limit=100&sort=number&order=asc")
    assert trials_page_key(3, "sort=accuracy&order=desc") == ("trials", 3, 0, 100, "accuracy", "desc")
    for odd in ("limit=0", "limit=1001", "offset=-1", "limit=5&limit=6", "sort=arch", "order=up", "x=1",
                "limit=", "offset=1e3"):
        assert trials_page_key(3, odd) is None, odd


def test_every_fast_path_pattern_is_a_real_route(finished: tuple[Api, int]) -> None:
    """The fast path answers exactly the GET routes it names: each is a route of the schema, and no other
    route's path matches its pattern."""
    from nas_service.api.fastpath import ROUTES, SUFFIXES

    api, _ = finished
    schema = api.client.get("/api/v1/openapi.json").json()["paths"]
    gets = {path for path, methods in schema.items() if "get" in methods}
    assert {f"/api/v1/jobs/{{job_id}}/{suffix}" for suffix in SUFFIXES} <= gets
    matched = {path for path in gets if ROUTES.match(path.replace("{job_id}", "7"))}
    assert matched == {f"/api/v1/jobs/{{job_id}}/{suffix}" for suffix in SUFFIXES}


def test_front_zip_refuses_an_estimator_job_with_the_reason(finished: tuple[Api, int]) -> None:
    api, job_id = finished
    response = api.client.get(f"/api/v1/jobs/{job_id}/front.zip", headers=api.alice)
    assert response.status_code == 409 and "cheap accuracy estimator" in response.json()["detail"]
    assert api.client.get(f"/api/v1/jobs/{job_id}/front.zip", headers=api.bob).status_code == 404


def test_front_zip_holds_every_member_file_and_the_index(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A training job (scored here by the estimator the worker is given, with small stand-in files): the zip has
    one file per front member, fastest first, and front.json naming them."""
    import io
    import json
    import zipfile

    import sqlalchemy as sa

    from nas_service.controller.scoring import EstimateScorer
    from nas_service.db import Candidate
    from nas_service.db.artifacts import save_stream

    root = tmp_path_factory.mktemp("zip")
    for api in make_api(f"sqlite:///{root / 'nas.db'}", root / "artifacts"):
        spec = {**SPEC, "training": {"scorer": "train"}}
        job = api.client.post("/api/v1/jobs", json=spec, headers=api.alice).json()
        worker = Worker(api.settings, scorer=EstimateScorer())
        worker.run(exit_when_idle=True)
        with worker.sessions() as session:
            for c in session.scalars(sa.select(Candidate).where(Candidate.on_front.is_(True))):
                saved = save_stream(session, worker.ctx.store, io.BytesIO(b"\0\0\0\0TFL3" + bytes([c.id])),
                                    kind="model", filename=f"{c.id}.tflite", job_id=job["id"])
                c.tflite_artifact = saved.id
            session.commit()
        worker.close()
        response = api.client.get(f"/api/v1/jobs/{job['id']}/front.zip", headers=api.alice)
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        index = json.loads(archive.read("front.json"))["front"]
        front = get(api, f"/jobs/{job['id']}/front")["items"]
        assert [e["candidate_id"] for e in index] == [m["candidate_id"] for m in front]
        assert sorted(archive.namelist()) == sorted([e["file"] for e in index] + ["front.json"])
        assert all(archive.read(e["file"])[-1] == e["candidate_id"] for e in index)


def test_every_route_with_a_job_id_hides_another_users_job(finished: tuple[Api, int]) -> None:
    """Walks the OpenAPI schema, so a new route is covered the day it is added: bob gets 404 on alice's ids,
    with the same answer as for a job that does not exist; nobody gets anything without a token."""
    api, job_id = finished
    member = get(api, f"/jobs/{job_id}/front")["items"][0]
    schema = api.client.get("/api/v1/openapi.json").json()
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            query = {p["name"]: "5" for p in operation.get("parameters", [])
                     if p["in"] == "query" and p.get("required")}
            url = path.replace("{job_id}", str(job_id)).replace("{candidate_id}", str(member["candidate_id"]))
            if not path.endswith("/health"):
                assert api.client.request(method, url, params=query).status_code == 401, (method, path)
            if "{job_id}" not in path:
                continue
            as_bob = api.client.request(method, url, params=query, headers=api.bob)
            missing = api.client.request(method, path.replace("{job_id}", "999999").replace(
                "{candidate_id}", str(member["candidate_id"])), params=query, headers=api.bob)
            assert as_bob.status_code == missing.status_code == 404, (method, path, as_bob.text)
            assert as_bob.json()["detail"].replace(str(job_id), "N") == missing.json()["detail"].replace("999999", "N")
            checked += 1
    assert checked >= 10
    assert job_id not in [j["id"] for j in api.client.get("/api/v1/jobs", headers=api.bob).json()["items"]]
