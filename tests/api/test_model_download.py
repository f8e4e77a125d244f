"""A trained candidate's int8 model: uploaded to the artifact store and attached to its Optuna trial, downloaded
over REST and by `nas export --front`, checked on every read, and removed with its job."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import optuna
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from nas_service.cli import app
from nas_service.db import Artifact, Job
from nas_service.worker import Worker
from tests.api.conftest import make_api

TRAINED = {"name": "trained", "budget": {"trials": 1}, "initial": ["small"], "seed": 0,
           "training": {"scorer": "train", "epochs": 1, "train_images": 200, "concurrency": 1}}


def runs_in_litert(model: bytes) -> None:
    from latency_models.litert import make_interpreter

    interpreter = make_interpreter(model)
    detail = interpreter.get_input_details()[0]
    assert detail["dtype"] == np.int8 and list(detail["shape"]) == [1, 28, 28, 3]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], np.int8))
    interpreter.invoke()
    assert interpreter.get_output_details()[0]["shape"][-1] == 10


@pytest.mark.slow
@pytest.mark.tf
def test_trained_candidate_model_downloads_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker and the API run in the working directory with `artifacts_dir` relative, as `make run` and `nas
    serve` do (the route once found no file there: it joined the directory onto a path that already held it)."""
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    monkeypatch.setenv("NAS_DATABASE_URL", db)
    monkeypatch.setenv("NAS_ARTIFACTS_DIR", "artifacts")
    for api in make_api(db, Path("artifacts")):
        job = api.client.post("/api/v1/jobs", json=TRAINED, headers=api.alice).json()
        worker = Worker(api.settings)
        worker.run(exit_when_idle=True)
        member = api.client.get(f"/api/v1/jobs/{job['id']}/front", headers=api.alice).json()["items"][0]
        assert member["has_tflite"]
        url = f"/api/v1/jobs/{job['id']}/candidates/{member['candidate_id']}/tflite"
        response = api.client.get(url, headers=api.alice)
        assert response.status_code == 200, response.text
        runs_in_litert(response.content)
        assert api.client.get(url, headers=api.bob).status_code == 404
        assert not list((tmp_path / "artifacts").glob("job-*/*.tflite"))  # the worker's scratch copy is gone

        # Attached to its Optuna trial, as optuna-dashboard lists it.
        with worker.sessions() as session:
            row = session.scalars(sa.select(Artifact)).one()
            study_name = session.get(Job, job["id"]).study_name  # type: ignore[union-attr]
        study = optuna.load_study(study_name=study_name, storage=db)
        metas = optuna.artifacts.get_all_artifact_meta(study.trials[0], storage=study._storage)
        assert [m.artifact_id for m in metas] == [row.id] and row.size == len(response.content)

        archive = zipfile.ZipFile(io.BytesIO(api.client.get(f"/api/v1/jobs/{job['id']}/front.zip",
                                                            headers=api.alice).content))
        index = json.loads(archive.read("front.json"))["front"]
        assert archive.read(index[0]["file"]) == response.content
        runner = CliRunner()
        out = runner.invoke(app, ["export", str(job["id"]), "--front", "--out", "front"])
        assert out.exit_code == 0, out.output
        assert Path("front", index[0]["file"]).read_bytes() == response.content

        # A damaged copy is refused, never served; a lost one is a 404 and a one-line CLI error naming it.
        store, what = worker.ctx.store, f"candidate {member['candidate_id']} of job {job['id']}"
        assert store is not None
        store.write(row.id, io.BytesIO(response.content[:-1] + b"\0"))
        damaged = api.client.get(url, headers=api.alice)
        assert damaged.status_code == 409 and f"{what}: artifact {row.id} failed its integrity check" in damaged.text
        store.remove(row.id)
        lost = api.client.get(url, headers=api.alice)
        assert lost.status_code == 404 and f"{what}: artifact {row.id} is missing" in lost.json()["detail"]
        out = runner.invoke(app, ["export", str(job["id"]), "--front", "--out", "again"])
        assert out.exit_code != 0 and what in str(out.exception)
        store.write(row.id, io.BytesIO(response.content))

        out = runner.invoke(app, ["rm", str(job["id"])])
        assert out.exit_code == 0 and "1 model file(s)" in out.output, out.output
        with pytest.raises(optuna.artifacts.exceptions.ArtifactNotFound):
            store.open_reader(row.id)
        with worker.sessions() as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(Artifact)) == 0
        worker.close()
