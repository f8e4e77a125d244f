"""Datasets: the built-in digits, image folders and .npz files load at any resolution; bad input fails clearly."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas_service.trainer import fashion_mnist
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
    np.savez(path, x_train=rng.random((20, 8, 8)), y_train=np.arange(20) % 2,
             x_test=rng.random((6, 8, 8)), y_test=np.arange(6) % 2, classes=np.array(["cat", "dog"]))
    data = load_dataset(str(path), 16)
    assert data.x_train.shape == (20, 16, 16, 3) and data.classes == ("cat", "dog")
    assert data.y_train.tolist() == (np.arange(20) % 2).tolist()


def bad_labels(y_train: list[object], y_test: list[object], **extra: np.ndarray) -> dict[str, np.ndarray]:
    return {"x_train": np.zeros((len(y_train), 8, 8)), "y_train": np.array(y_train),
            "x_test": np.zeros((len(y_test), 8, 8)), "y_test": np.array(y_test), **extra}


TEN = np.array([str(i) for i in range(10)])


@pytest.mark.parametrize(("arrays", "message"), [
    (bad_labels([*range(10), 10], [0, 1], classes=TEN), r"y_train .* holds label 10: expected integer labels "
                                                         r"0\.\.9 \(10 classes: its number of class names\)"),
    (bad_labels([0, 1, 2], [0, 10], classes=TEN[:3]), r"y_test .* holds label 10: expected integer labels 0\.\.2"),
    (bad_labels([-1, 0, 1], [0, 1]), r"holds label -1: expected integer labels 0\.\.2 \(3 classes: the number of "
                                     "distinct training labels"),
    (bad_labels([0, 999, 0, 999], [0, 999]), r"holds label 999: expected integer labels 0\.\.1 \(2 classes"),
    (bad_labels([0.5, 1.5, 0.5], [0.5, 1.5]), r"y_train .* has dtype float64 \(first label .*0\.5\): expected "
                                             "integer class labels"),
    (bad_labels([0.0, 1.0], [0.0, 1.0]), "has dtype float64"),
])
def test_labels_must_be_integers_0_to_k_minus_1(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    """They were renumbered: a label 10 with 10 classes made 11 classes, {0, 999} two, and float labels failed
    with 'test labels absent from train labels'."""
    path = tmp_path / "labels.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(str(path), 16)
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused(tmp_path: Path, bad: float) -> None:
    x = np.random.default_rng(0).random((6, 8, 8))
    x[4, 2, 3] = bad
    path = tmp_path / "nan.npz"
    np.savez(path, x_train=x, y_train=np.arange(6) % 2, x_test=np.zeros((2, 8, 8)), y_test=np.arange(2))
    with pytest.raises(DatasetError, match=r"x_train of dataset .* has 1 pixel values that are NaN or infinite "
                                           r"\(the first in image 4\): expected finite numbers"):
        load_dataset(str(path), 16)


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x_train": np.zeros((4, 8, 8))}, "lacks y_train, x_test, y_test"),
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.arange(3), "x_test": np.zeros((2, 8, 8)),
      "y_test": np.arange(2)}, "4 train images but 3 labels"),
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 9, 8)),
      "y_test": np.arange(2)}, "train images of shape"),
    ({"x_train": np.zeros((4, 8, 8, 2)), "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 8, 8, 2)),
      "y_test": np.arange(2)}, r"expected \(N, H, W\)"),
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 8, 8)),
      "y_test": np.zeros(2, int)}, "single class"),
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 8, 8)),
      "y_test": np.array([0, 2]), "classes": np.array(["a", "b", "c"])}, "absent from its train labels"),
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


def _write_idx(path: Path, array: np.ndarray, *, magic: bytes = b"\0\0\x08") -> None:
    header = magic + bytes([array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_fashion(folder: Path, per_class: dict[str, int]) -> dict[str, np.ndarray]:
    """IDX files laid out as Debian's dataset-fashion-mnist package has them, with images that encode their label."""
    folder.mkdir(parents=True)
    arrays: dict[str, np.ndarray] = {}
    for split, n in per_class.items():
        labels = np.arange(10 * n) % 10
        arrays[f"y_{split}"] = labels.astype(np.uint8)
        arrays[f"x_{split}"] = (labels[:, None, None] * 20 + np.zeros((1, 28, 28), int)).astype(np.uint8)
    for key, name in fashion_mnist.FILES.items():
        _write_idx(folder / name, arrays[key])
    return arrays


def test_full_fashion_mnist_reads_the_idx_files_and_the_subset_is_stratified(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = _fake_fashion(tmp_path / "fm", {"train": 1300, "test": 210})
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    full = fashion_mnist.load_full()
    assert all(np.array_equal(full[k], arrays[k]) for k in arrays)
    small = fashion_mnist.make_small(full)
    assert small["x_train"].shape == (12_000, 28, 28) and small["x_test"].shape == (2_000, 28, 28)
    assert np.bincount(small["y_train"]).tolist() == [1200] * 10 and np.bincount(small["y_test"]).tolist() == [200] * 10
    assert np.array_equal(small["x_train"][:, 0, 0], small["y_train"] * 20)  # images stay with their labels
    again = fashion_mnist.make_small(full)
    assert all(np.array_equal(small[k], again[k]) for k in small)  # seeded: the same subset every time


def test_bundled_fashion_mnist_subset_loads_without_the_debian_package() -> None:
    data = load_dataset("fashion_mnist_small", 28)
    assert data.x_train.shape == (12_000, 28, 28, 3) and data.x_test.shape == (2_000, 28, 28, 3)
    assert data.classes[:2] == ("t-shirt", "trouser") and data.num_classes == 10
    assert np.bincount(data.y_test).tolist() == [200] * 10
    assert len({x.tobytes() for x in data.x_test[:200]}) == 200  # real images, not copies


def test_missing_or_broken_fashion_mnist_files_say_where_and_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(fashion_mnist, "search_dirs", lambda: [tmp_path / "none"])
    with pytest.raises(DatasetError, match="not found in .*none: install Debian's dataset-fashion-mnist"):
        load_dataset("fashion_mnist", 28)
    bad = tmp_path / "bad.gz"
    _write_idx(bad, np.zeros((2, 3), np.uint8), magic=b"\0\0\x0d")
    with pytest.raises(ValueError, match="not an IDX file of unsigned bytes"):
        fashion_mnist.read_idx(bad)
    (tmp_path / "trunc.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x09abc"))
    with pytest.raises(ValueError, match="holds 3 values but its header says"):
        fashion_mnist.read_idx(tmp_path / "trunc.gz")


def test_train_subset_is_stratified_seeded_and_keeps_the_test_split() -> None:
    data = load_dataset("digits", 16)
    small = data.subset(500)
    assert len(small.x_train) == 500 and small.x_test is data.x_test
    assert np.bincount(small.y_train, minlength=10).min() >= 45  # every class, in proportion
    assert np.array_equal(small.x_train, data.subset(500).x_train)  # the same images for every candidate
    assert data.subset(10_000) is data
    with pytest.raises(DatasetError, match="too few"):
        data.subset(12)
