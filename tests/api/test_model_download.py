"""A trained candidate's int8 model downloaded over REST, with the service's default relative artifacts directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas_service.worker import Worker
from tests.api.conftest import make_api

TRAINED = {"name": "trained", "budget": {"trials": 1}, "initial": ["small"], "seed": 0,
           "training": {"scorer": "train", "epochs": 1, "train_images": 200, "concurrency": 1}}


@pytest.mark.slow
@pytest.mark.tf
def test_trained_candidate_model_downloads_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker and the API both run in the working directory with `artifacts_dir` relative, as `make run` and
    `nas serve` do: the route found no file (it joined the directory onto a path that already held it)."""
    from latency_models.litert import make_interpreter

    monkeypatch.chdir(tmp_path)
    for api in make_api(f"sqlite:///{tmp_path / 'nas.db'}", Path("artifacts")):
        job = api.client.post("/api/v1/jobs", json=TRAINED, headers=api.alice).json()
        worker = Worker(api.settings)
        worker.run(exit_when_idle=True)
        worker.close()
        member = api.client.get(f"/api/v1/jobs/{job['id']}/front", headers=api.alice).json()["items"][0]
        assert member["has_tflite"]
        url = f"/api/v1/jobs/{job['id']}/candidates/{member['candidate_id']}/tflite"
        response = api.client.get(url, headers=api.alice)
        assert response.status_code == 200, response.text
        interpreter = make_interpreter(response.content)
        detail = interpreter.get_input_details()[0]
        assert detail["dtype"] == np.int8 and list(detail["shape"]) == [1, 28, 28, 3]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], np.int8))
        interpreter.invoke()
        assert interpreter.get_output_details()[0]["shape"][-1] == 10
        assert api.client.get(url, headers=api.bob).status_code == 404
        assert api.client.get(f"/api/v1/jobs/{job['id']}/front.zip", headers=api.alice).status_code == 200
