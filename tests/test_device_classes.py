"""Device classes: a job's `training.device_class` and a worker's class decide who claims it (SQLite, PostgreSQL).

Claims only: no trial is trained, except the estimator's millisecond ones of the `Worker` runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from nas_service.cli import app
from nas_service.config import Settings
from nas_service.db import Job, make_engine, session_factory, upgrade_head
from nas_service.db.job_queue import claim_job
from nas_service.devices import DeviceClassError, check_runs_here, worker_device_class
from nas_service.services import jobs
from nas_service.spec import parse_spec
from nas_service.worker import Worker
from tests.api.conftest import Api, make_api


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    url = f"sqlite:///{tmp_path / 'nas.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade_head(engine)
    yield url, session_factory(engine)
    engine.dispose()


def queue(sessions: sessionmaker[Session], device_class: str) -> int:
    with sessions() as session:
        spec = parse_spec({"training": {"scorer": "estimate", "device_class": device_class}, "budget": {"trials": 1},
                           "initial": []})
        return jobs.create_job(session, spec).id


def claim(sessions: sessionmaker[Session], device_class: str | None) -> int | None:
    with sessions() as session:
        return claim_job(session, f"w-{device_class}", device_class=device_class)  # type: ignore[arg-type]


def status(sessions: sessionmaker[Session], job_id: int) -> str:
    with sessions() as session:
        return jobs.get_job(session, job_id).status


def test_a_cpu_worker_never_claims_a_gpu_job(database: tuple[str, sessionmaker[Session]]) -> None:
    _, sessions = database
    gpu = queue(sessions, "gpu")
    assert claim(sessions, "cpu") is None
    assert claim(sessions, None) is None  # a worker that has not looked which class it is takes `any` jobs only
    assert status(sessions, gpu) == "queued"  # waits for a gpu worker
    assert claim(sessions, "gpu") == gpu and status(sessions, gpu) == "running"
    assert claim(sessions, "cpu") is None  # nor once it runs on a gpu worker


def test_each_class_prefers_the_jobs_asking_for_it(database: tuple[str, sessionmaker[Session]]) -> None:
    _, sessions = database
    older_any, cpu, gpu = queue(sessions, "any"), queue(sessions, "cpu"), queue(sessions, "gpu")
    assert claim(sessions, "gpu") == gpu  # before the older `any` job
    assert claim(sessions, "cpu") == cpu
    assert claim(sessions, None) == older_any


def test_any_jobs_go_to_both_classes(database: tuple[str, sessionmaker[Session]]) -> None:
    _, sessions = database
    first, second = queue(sessions, "any"), queue(sessions, "any")
    assert claim(sessions, "cpu") == first
    with sessions() as session:  # its one trial taken: the next worker goes on to the next job with trials left
        session.execute(sa.update(Job).where(Job.id == first).values(trials_reserved=1))
        session.commit()
    assert claim(sessions, "gpu") == second
    assert claim(sessions, "gpu") == second and claim(sessions, "cpu") == second  # shared while it has trials left


def test_a_job_stored_before_the_field_asks_for_any(database: tuple[str, sessionmaker[Session]]) -> None:
    _, sessions = database
    old = queue(sessions, "any")
    with sessions() as session:
        job = session.get(Job, old)
        assert job is not None
        training = {k: v for k, v in job.spec["training"].items() if k != "device_class"}
        job.spec = {**job.spec, "training": training}
        session.commit()
    assert claim(sessions, "gpu") == old and claim(sessions, "cpu") == old


@pytest.mark.postgres
def test_a_locked_gpu_job_is_skipped_for_the_next_claimable_one(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    upgrade_head(engine)
    sessions = session_factory(engine)
    gpu, other = queue(sessions, "gpu"), queue(sessions, "any")
    with sessions() as holder:  # another worker's claim of the gpu job, not committed yet
        holder.execute(sa.select(Job).where(Job.id == gpu).with_for_update())
        assert claim(sessions, "gpu") == other
        holder.rollback()
    assert claim(sessions, "gpu") == gpu
    engine.dispose()


def test_a_worker_of_the_setting_runs_only_what_it_may(database: tuple[str, sessionmaker[Session]],
                                                       tmp_path: Path) -> None:
    url, sessions = database
    gpu, cpu = queue(sessions, "gpu"), queue(sessions, "cpu")
    for device_class, runs, waits in (("cpu", cpu, gpu), ("gpu", gpu, None)):
        # no class given: the worker reads NAS_DEVICE_CLASS once a job asks for one
        worker = Worker(Settings(database_url=url, artifacts_dir=tmp_path, device_class=device_class),
                        name=f"w-{device_class}")
        worker.run(exit_when_idle=True)
        worker.close()
        assert worker.device_class == device_class
        assert status(sessions, runs) == "completed"
        if waits is not None:
            assert status(sessions, waits) == "queued"


def test_worker_device_class_honours_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert worker_device_class(Settings(device_class="gpu")) == "gpu"
    assert worker_device_class(Settings(device_class="cpu")) == "cpu"
    monkeypatch.setenv("NAS_DEVICE_CLASS", "gpu")
    assert Settings().device_class == "gpu" and worker_device_class(Settings()) == "gpu"
    monkeypatch.setenv("NAS_DEVICE_CLASS", "tpu")
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'gpu'"):
        Settings()
    assert check_runs_here("any", Settings(device_class="cpu")) is None
    assert check_runs_here("gpu", Settings(device_class="gpu")) == "gpu"
    with pytest.raises(DeviceClassError, match="asks for training.device_class 'gpu' but this machine's device class "
                                               r"is 'cpu' \(NAS_DEVICE_CLASS=cpu\)"):
        check_runs_here("gpu", Settings(device_class="cpu"))


def test_a_set_device_class_does_not_import_tensorflow() -> None:
    script = ("import sys\nfrom nas_service.config import Settings\n"
              "from nas_service.devices import worker_device_class\n"
              "assert worker_device_class(Settings(device_class='gpu')) == 'gpu'\n"
              "sys.exit(1 if 'tensorflow' in sys.modules else 0)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    yield from make_api(f"sqlite:///{root / 'nas.db'}", root / "artifacts")


def test_rest_takes_the_field_and_refuses_a_bad_one_with_422(api: Api) -> None:
    body = {"training": {"scorer": "estimate", "device_class": "tpu"}, "budget": {"trials": 1}}
    refused = api.client.post("/api/v1/jobs", json=body, headers=api.alice)
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["detail"]
    assert error["loc"] == ["body", "training", "device_class"] and "'any', 'cpu' or 'gpu'" in error["msg"]
    body["training"]["device_class"] = "gpu"  # type: ignore[index]
    created = api.client.post("/api/v1/jobs", json=body, headers=api.alice)
    assert created.status_code == 201, created.text
    shown = api.client.get(f"/api/v1/jobs/{created.json()['id']}", headers=api.alice).json()
    assert shown["status"] == "queued" and shown["spec"]["training"]["device_class"] == "gpu"
    schema = api.client.get("/api/v1/openapi.json").json()["components"]["schemas"]["Training"]
    assert schema["properties"]["device_class"]["enum"] == ["any", "cpu", "gpu"]
    assert schema["properties"]["device_class"]["default"] == "any"


def test_the_cli_says_the_class_and_refuses_a_job_this_machine_cannot_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from nas_service.cli.errors import run_cli

    db = f"sqlite:///{tmp_path / 'nas.db'}"
    monkeypatch.setenv("NAS_DEVICE_CLASS", "cpu")
    monkeypatch.setenv("NAS_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setattr("sys.argv", ["nas", "search", "--scorer", "estimate", "--device-class", "gpu", "--db", db])
    assert run_cli(app) == 2
    err = capsys.readouterr().err
    assert "device class is 'cpu'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr("sys.argv", ["nas", "jobs", "--json", "--db", db])
    assert run_cli(app) == 0
    assert json.loads(capsys.readouterr().out) == []  # no job was created

    monkeypatch.setattr("sys.argv", ["nas", "worker", "--device-class", "gpu", "--exit-when-idle", "--db", db])
    assert run_cli(app) == 0
    assert "device class gpu: takes jobs asking for gpu first, then any" in capsys.readouterr().err


@pytest.mark.tf
def test_an_auto_worker_looks_up_its_class_once_a_job_names_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import tensorflow as tf

    from nas_service.cli.errors import run_cli

    here = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    other = {"gpu": "cpu", "cpu": "gpu"}[here]
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    engine = make_engine(url)
    upgrade_head(engine)
    sessions = session_factory(engine)
    mine, theirs = queue(sessions, here), queue(sessions, other)
    monkeypatch.delenv("NAS_DEVICE_CLASS", raising=False)
    monkeypatch.setenv("NAS_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setattr("sys.argv", ["nas", "worker", "--exit-when-idle", "--db", url])
    assert run_cli(app) == 0
    err = capsys.readouterr().err
    assert "device class auto: gpu where TensorFlow sees a GPU" in err
    assert f"device class {here} (TensorFlow sees {'a' if here == 'gpu' else 'no'} GPU), looked up" in err
    assert status(sessions, mine) == "completed" and status(sessions, theirs) == "queued"
    engine.dispose()
