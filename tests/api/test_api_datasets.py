"""API jobs may name built-in datasets and files inside NAS_DATA_DIR, never any other server path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from nas_service.api import create_app
from nas_service.api.datasets import DatasetNotAllowedError, api_dataset
from nas_service.config import Settings
from nas_service.db import make_engine, session_factory, upgrade_head
from nas_service.services import tokens

SPEC: dict[str, Any] = {"budget": {"trials": 1}, "training": {"scorer": "estimate"}}


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data directory with a .npz file, a class folder and a symlink out of it, and a secret outside it."""
    root = tmp_path_factory.mktemp("datasets")
    data, outside = root / "data", root / "outside"
    (data / "flowers" / "rose").mkdir(parents=True)
    outside.mkdir()
    arrays = np.zeros((2, 8, 8, 1), np.uint8)
    np.savez(data / "tiny.npz", x_train=arrays, y_train=[0, 1], x_test=arrays, y_test=[0, 1])
    np.savez(outside / "secret.npz", x=arrays)
    (data / "escape.npz").symlink_to(outside / "secret.npz")
    (data / "escape_dir").symlink_to(outside)
    return data, outside


@pytest.mark.parametrize("name", ["digits", "keras:cifar10", "tfds:cifar10", "tfds:imagenette/160px:1.0.0"])
def test_named_datasets_pass_unchanged_with_or_without_data_dir(name: str, layout: tuple[Path, Path]) -> None:
    assert api_dataset(name, None) == name
    assert api_dataset(name, layout[0]) == name


def test_paths_inside_the_data_dir_resolve_to_absolute_paths(layout: tuple[Path, Path]) -> None:
    data, _ = layout
    assert api_dataset("tiny.npz", data) == str((data / "tiny.npz").resolve())
    assert api_dataset("flowers/rose/../../flowers", data) == str((data / "flowers").resolve())
    assert api_dataset(str(data / "tiny.npz"), data) == str((data / "tiny.npz").resolve())


@pytest.mark.parametrize("name", ["../outside/secret.npz", "flowers/../../outside", "escape.npz", "escape_dir",
                                  "escape_dir/secret.npz", "/etc/passwd", "/etc", "keras:../../etc", "tfds:..",
                                  "missing.npz", "flowers/rose/none.npz", "nul\x00.npz"])
def test_paths_escaping_or_missing_are_refused(name: str, layout: tuple[Path, Path]) -> None:
    with pytest.raises(DatasetNotAllowedError, match="expected digits, fashion_mnist_small, fashion_mnist, keras:NAME"):
        api_dataset(name, layout[0])


def test_without_data_dir_no_path_is_allowed(layout: tuple[Path, Path]) -> None:
    for name in ("tiny.npz", str(layout[0] / "tiny.npz"), "/etc/passwd", "."):
        with pytest.raises(DatasetNotAllowedError, match="NAS_DATA_DIR"):
            api_dataset(name, None)


def _client(root: Path, data_dir: Path | None) -> Iterator[tuple[TestClient, dict[str, str]]]:
    url = f"sqlite:///{root / 'nas.db'}"
    engine = make_engine(url)
    upgrade_head(engine)
    with session_factory(engine)() as session:
        headers = {"Authorization": f"Bearer {tokens.create_token(session, 'alice').token}"}
    engine.dispose()
    with TestClient(create_app(Settings(database_url=url, artifacts_dir=root / "artifacts",
                                        data_dir=data_dir))) as client:
        yield client, headers


@pytest.fixture(scope="module")
def with_data_dir(tmp_path_factory: pytest.TempPathFactory,
                  layout: tuple[Path, Path]) -> Iterator[tuple[TestClient, dict[str, str]]]:
    yield from _client(tmp_path_factory.mktemp("api-data-dir"), layout[0])


def test_api_refuses_outside_paths_with_422_on_dataset(with_data_dir: tuple[TestClient, dict[str, str]],
                                                       layout: tuple[Path, Path]) -> None:
    client, headers = with_data_dir
    for name in ("../outside/secret.npz", str(layout[1] / "secret.npz"), "escape.npz"):
        response = client.post("/api/v1/jobs", json={**SPEC, "dataset": name}, headers=headers)
        assert response.status_code == 422, name
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "dataset"]
        assert "outside the data directory" in error["msg"] and "keras:NAME" in error["msg"]


def test_api_accepts_named_datasets_and_paths_inside(with_data_dir: tuple[TestClient, dict[str, str]],
                                                     layout: tuple[Path, Path]) -> None:
    client, headers = with_data_dir
    for name, stored in (("digits", "digits"), ("keras:mnist", "keras:mnist"),
                         ("tiny.npz", str((layout[0] / "tiny.npz").resolve()))):
        response = client.post("/api/v1/jobs", json={**SPEC, "dataset": name}, headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["spec"]["dataset"] == stored


def test_api_without_data_dir_refuses_every_path(tmp_path: Path, layout: tuple[Path, Path]) -> None:
    for client, headers in _client(tmp_path, None):
        response = client.post("/api/v1/jobs", json={**SPEC, "dataset": str(layout[0] / "tiny.npz")},
                               headers=headers)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "dataset"]
        assert "NAS_DATA_DIR" in response.json()["detail"][0]["msg"]
