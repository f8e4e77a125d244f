"""Datasets: the built-in digits, image folders and .npz files load at any resolution; bad input fails clearly."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas_service.trainer.datasets import DatasetError, load_dataset


def test_digits_is_upsampled_rgb_with_a_fixed_stratified_split() -> None:
    data = load_dataset("digits", 32)
    assert data.x_train.shape == (1437, 32, 32, 3) and data.x_test.shape == (360, 32, 32, 3)
    assert data.x_train.dtype == np.uint8 and data.num_classes == 10
    assert np.array_equal(data.x_train[..., 0], data.x_train[..., 2])  # grayscale repeated
    assert np.bincount(data.y_test).min() >= 35  # every class in the test split
    again = load_dataset("digits", 24).resized(32)
    assert np.array_equal(again.y_test, data.y_test)  # the split does not depend on resolution


def _folder(root: Path, counts: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            size = (12 + i % 3, 10)  # images of different sizes are resized alike
            Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_image_folder_has_one_class_per_subfolder(tmp_path: Path) -> None:
    data = load_dataset(str(_folder(tmp_path / "imgs", {"cat": 5, "dog": 5})), 16)
    assert data.classes == ("cat", "dog")
    assert data.x_train.shape == (8, 16, 16, 3) and len(data.x_test) == 2
    assert sorted(data.y_test.tolist()) == [0, 1]


@pytest.mark.parametrize(("counts", "message"), [
    ({}, "has no class subfolders"),
    ({"cat": 3, "dog": 0}, "holds no images"),
    ({"cat": 4}, "single class"),
    ({"cat": 4, "dog": 1}, "expected at least 2 per class"),
])
def test_bad_image_folders_name_the_problem(tmp_path: Path, counts: dict[str, int], message: str) -> None:
    root = _folder(tmp_path / "imgs", counts)
    root.mkdir(exist_ok=True)
    with pytest.raises(DatasetError, match=message):
        load_dataset(str(root), 16)


def test_npz_with_grayscale_float_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.random((20, 8, 8)), y_train=np.arange(20) % 2 + 5,
             x_test=rng.random((6, 8, 8)), y_test=np.arange(6) % 2 + 5)
    data = load_dataset(str(path), 16)
    assert data.x_train.shape == (20, 16, 16, 3) and data.classes == ("5", "6")
    assert set(data.y_train.tolist()) == {0, 1}


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x_train": np.zeros((4, 8, 8))}, "lacks y_train, x_test, y_test"),
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.arange(3), "x_test": np.zeros((2, 8, 8)),
      "y_test": np.arange(2)}, "4 train images but 3 labels"),
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 9, 8)),
      "y_test": np.arange(2)}, "train images of shape"),
    ({"x_train": np.zeros((4, 8, 8, 2)), "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 8, 8, 2)),
      "y_test": np.arange(2)}, r"expected \(N, H, W\)"),
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.zeros(4), "x_test": np.zeros((2, 8, 8)),
      "y_test": np.zeros(2)}, "single class"),
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 8, 8)),
      "y_test": np.array([0, 7])}, "absent from its train labels"),
])
def test_bad_npz_files_name_the_problem(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match=message):
        load_dataset(str(path), 16)


@pytest.mark.parametrize(("name", "message"), [
    ("imagenet", "unknown dataset 'imagenet'"),
    ("missing.npz", "not found"),
    ("keras:svhn", "unknown Keras dataset 'svhn'"),
])
def test_unknown_names_list_what_is_accepted(name: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset(name, 32)


def test_tfds_without_the_package_says_how_to_get_it() -> None:
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        with pytest.raises(DatasetError, match="needs the tensorflow-datasets package"):
            load_dataset("tfds:mnist", 28)
    else:
        pytest.skip("tensorflow-datasets is installed: the offline message is covered by keras:NAME")


@pytest.mark.tf
def test_keras_dataset_offline_says_what_to_use_instead(tmp_path: Path) -> None:
    """No network (a dead proxy) and an empty Keras cache: a one-line error, not a traceback."""
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "https_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
    script = textwrap.dedent("""
        from nas_service.trainer.datasets import DatasetError, load_dataset
        try:
            load_dataset("keras:mnist", 28)
        except DatasetError as exc:
            print(exc)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert "could not download dataset 'keras:mnist'" in run.stdout, run.stdout + run.stderr
    assert "offline, use 'digits', a folder or a .npz file" in run.stdout
