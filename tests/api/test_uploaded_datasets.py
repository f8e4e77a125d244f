"""Datasets uploaded over REST: checked as `nas search` checks a dataset, owned by the uploader, limited in size and
quota, named `upload:<id>` by a job that a worker then runs from the store, and managed with `nas datasets`."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nas_service.config import Settings
from nas_service.worker import Worker
from tests.api.conftest import Api, make_api


def npz(classes: int = 3, train: int = 30, test: int = 9, seed: int = 0, nan: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 255, (train, 16, 16), dtype=np.uint8).astype(np.float32 if nan else np.uint8)
    if nan:
        x_train[3, 2, 2] = np.nan
    buffer = io.BytesIO()
    np.savez(buffer, x_train=x_train, y_train=np.arange(train) % classes,
             x_test=rng.integers(0, 255, (test, 16, 16), dtype=np.uint8), y_test=np.arange(test) % classes)
    return buffer.getvalue()


def class_folders_zip(prefix: str = "") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label in ("cat", "dog"):
            for i in range(6):
                image = io.BytesIO()
                Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(image, "PNG")
                archive.writestr(f"{prefix}{label}/{i}.png", image.getvalue())
    return buffer.getvalue()


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "artifacts")


def upload(api: Api, name: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    response = api.client.post("/api/v1/datasets", params={"name": name}, content=body,
                               headers={**(headers or api.alice), "Content-Type": "application/octet-stream"})
    return response.status_code, response.json() if response.content else {}


def test_upload_list_get_delete_are_the_owners_only(api: Api) -> None:
    code, made = upload(api, "shapes.npz", npz())
    assert code == 201, made
    assert (made["num_classes"], made["train_shape"], made["test_shape"]) == (3, [30, 32, 32, 3], [9, 32, 32, 3])
    assert len(made["sha256"]) == 64 and made["size"] == len(npz())
    code, folders = upload(api, "pets.zip", class_folders_zip("pets/"))
    assert code == 201 and folders["classes"] == ["cat", "dog"], folders
    listed = api.client.get("/api/v1/datasets", headers=api.alice).json()
    assert [d["id"] for d in listed] == [made["id"], folders["id"]]
    assert api.client.get("/api/v1/datasets", headers=api.bob).json() == []
    for method in ("GET", "DELETE"):
        assert api.client.request(method, f"/api/v1/datasets/{made['id']}", headers=api.bob).status_code == 404
    assert api.client.delete(f"/api/v1/datasets/{made['id']}", headers=api.alice).status_code == 204
    assert api.client.get(f"/api/v1/datasets/{made['id']}", headers=api.alice).status_code == 404


@pytest.mark.parametrize(("name", "body", "expected"), [
    ("junk.npz", b"\x93NUMPY" + bytes(300), "cannot be read as a .npz"),
    ("nan.npz", npz(nan=True), "NaN or infinite"),
    ("data.csv", b"a,b\n", "expected a .npz file"),
    ("bad.zip", b"PK not a zip", "is not a zip file"),
    ("escape.zip", class_folders_zip("../"), "unsafe path"),
    ("flat.zip", b"", "is not a zip file"),
])
def test_bad_uploads_get_one_line_naming_the_problem(api: Api, name: str, body: bytes, expected: str) -> None:
    code, answer = upload(api, name, body)
    message = answer["detail"][0]["msg"]
    assert code == 422 and expected in message and "\n" not in message, answer
    assert "/tmp" not in message and name in message


def test_size_limit_and_quota(tmp_path: Path) -> None:
    one = len(npz())
    for api in make_api(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "artifacts"):
        api.client.app.state.ctx.settings = Settings(  # type: ignore[attr-defined]
            database_url=api.settings.database_url, artifacts_dir=api.settings.artifacts_dir,
            dataset_max_bytes=one + 10, dataset_quota_bytes=2 * one + 10)
        assert upload(api, "a.npz", npz())[0] == 201
        code, answer = upload(api, "big.npz", npz(train=60))
        assert code == 413 and "limit of" in answer["detail"] and "NAS_DATASET_MAX_BYTES" in answer["detail"]
        assert upload(api, "b.npz", npz(seed=1))[0] == 201
        code, answer = upload(api, "c.npz", npz(seed=2))
        assert code == 413 and "quota" in answer["detail"]
        assert upload(api, "c.npz", npz(seed=2), api.bob)[0] == 201  # the quota is per user


def test_a_job_names_its_upload_and_a_worker_runs_it_from_the_store(api: Api) -> None:
    _, made = upload(api, "shapes.npz", npz())
    spec = {"dataset": f"upload:{made['id']}", "budget": {"trials": 2}, "training": {"scorer": "estimate"},
            "resolution": 32, "initial": []}
    bobs = api.client.post("/api/v1/jobs", json=spec, headers=api.bob)
    assert bobs.status_code == 422 and "not found (or not yours)" in bobs.text
    job = api.client.post("/api/v1/jobs", json=spec, headers=api.alice).json()
    busy = api.client.delete(f"/api/v1/datasets/{made['id']}", headers=api.alice)
    assert busy.status_code == 409 and f"job(s) [{job['id']}]" in busy.text
    worker = Worker(api.settings)
    worker.run(exit_when_idle=True)
    worker.close()
    done = api.client.get(f"/api/v1/jobs/{job['id']}", headers=api.alice).json()
    assert done["status"] == "completed", done
    copies = list((api.settings.artifacts_dir / "datasets").glob("*.npz"))
    assert len(copies) == 1 and copies[0].read_bytes() == npz()
    assert api.client.delete(f"/api/v1/datasets/{made['id']}", headers=api.alice).status_code == 204


@pytest.mark.slow
def test_nas_datasets_commands_against_a_server(tmp_path: Path) -> None:
    import json
    import os

    from tests.dashboard.conftest import nas, serving

    (tmp_path / "shapes.npz").write_bytes(npz())
    with serving(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path, workers=0) as served:
        env = {**os.environ, "NAS_SERVER_URL": served.url, "NAS_TOKEN": served.token}
        out = nas("datasets", "upload", str(tmp_path / "shapes.npz"), env=env)
        assert "use it as dataset upload:1" in out and "3 classes" in out
        listed = json.loads(nas("datasets", "list", "--json", env=env))
        assert [d["name"] for d in listed] == ["shapes.npz"]
        assert "deleted dataset 1" in nas("datasets", "rm", "1", env=env)
        failed = __import__("subprocess").run(
            [os.sys.executable, "-c", "from nas_service.cli import main; main()", "datasets", "rm", "1"],
            env=env, capture_output=True, text=True, timeout=120)
        assert failed.returncode == 2 and "404 dataset 1 not found" in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1
