"""Image classification datasets at a candidate's resolution: uint8 RGB arrays with a fixed train/test split.

A dataset is named by a string, so that a job spec, the CLI and the API say the same thing:

- `digits`: scikit-learn's 8x8 handwritten digits (1,797 images, bundled, no download), upsampled.
- `fashion_mnist_small`: a 12,000 / 2,000 stratified subset of Fashion-MNIST shipped in the package, and
  `fashion_mnist`: the full set from Debian's `dataset-fashion-mnist` files (see `fashion_mnist.py`).
- a folder with one subfolder of images per class, split 80/20 per class.
- a `.npz` file holding `x_train`, `y_train`, `x_test` and `y_test` (integer labels 0..K-1), and optionally
  `classes`, the K class names.
- `keras:NAME` (mnist, fashion_mnist, cifar10, cifar100) or `tfds:NAME`, downloaded on first use.

Images are resized to the square resolution asked for and grayscale is repeated to three channels,
because every candidate takes (resolution, resolution, 3). Splits never depend on the training
seed: accuracies of different candidates and seeds are measured on the same test images. Loaded
datasets are cached per process, so a search pays for loading and resizing once.
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLIT_SEED = 0
TEST_FRACTION = 0.2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")
BUILTIN = ("digits", "fashion_mnist_small", "fashion_mnist")
"""Datasets named by a word: the first two ship with the package, the last needs the Debian package's files."""


class DatasetError(ValueError):
    """A dataset name, folder or file that cannot be loaded; the message names it and what was expected."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test images, uint8 of shape (N, resolution, resolution, 3), and int labels 0..K-1."""

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def resolution(self) -> int:
        return int(self.x_train.shape[1])

    def subset(self, train_images: int) -> Dataset:
        """The same test split with a stratified, seeded subset of `train_images` training images (a proxy task:
        every candidate of a job trains on the same images)."""
        if train_images >= len(self.x_train):
            return self
        if train_images < 2 * self.num_classes:
            raise DatasetError(f"train_images {train_images} is too few for dataset {self.name!r}: expected at "
                               f"least 2 per class ({2 * self.num_classes})")
        from sklearn.model_selection import train_test_split

        x, _, y, _ = train_test_split(self.x_train, self.y_train, train_size=train_images, random_state=SPLIT_SEED,
                                      stratify=self.y_train)
        return Dataset(self.name, self.classes, x, y, self.x_test, self.y_test)

    def resized(self, resolution: int) -> Dataset:
        """The same images at another resolution."""
        if resolution == self.resolution and self.x_train.shape[-1] == 3:
            return self
        return Dataset(self.name, self.classes, _resize(self.x_train, resolution), self.y_train,
                       _resize(self.x_test, resolution), self.y_test)


def load_dataset(name: str, resolution: int) -> Dataset:
    """The dataset `name` (see the module docstring) at `resolution` x `resolution` pixels, cached."""
    if not 8 <= resolution <= 1024:
        raise DatasetError(f"resolution {resolution} for dataset {name!r} is out of range: expected 8..1024")
    return _load_cached(name, resolution)


def read_dataset(path: Path, resolution: int) -> Dataset:
    """A folder or `.npz` loaded and checked as `load_dataset` does, without the per-process cache (an upload
    being checked once, then kept elsewhere)."""
    return _load_folder(path, resolution) if path.is_dir() else _load_npz(path).resized(resolution)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, resolution: int) -> Dataset:
    path = Path(name).expanduser()
    if path.is_dir():
        return _load_folder(path, resolution)
    return _load_arrays(name).resized(resolution)


@functools.lru_cache(maxsize=2)
def _load_arrays(name: str) -> Dataset:
    """Datasets that arrive as arrays, at their native size (resized per candidate from here)."""
    if name == "digits":
        return _load_digits()
    if name in ("fashion_mnist", "fashion_mnist_small"):
        return _load_fashion_mnist(name)
    if name.endswith(".npz"):
        return _load_npz(Path(name).expanduser())
    if name.startswith("keras:"):
        return _load_keras(name.removeprefix("keras:"))
    if name.startswith("tfds:"):
        return _load_tfds(name.removeprefix("tfds:"))
    raise DatasetError(f"unknown dataset {name!r}: expected {', '.join(BUILTIN)}, a folder with one subfolder of "
                       f"images per class, a .npz file, keras:NAME ({', '.join(KERAS_DATASETS)}) or tfds:NAME")


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int32)
    return _split("digits", tuple(str(c) for c in range(10)), images, labels)


def _load_fashion_mnist(name: str) -> Dataset:
    from nas_service.trainer import fashion_mnist

    try:
        arrays = fashion_mnist.load_small() if name == "fashion_mnist_small" else fashion_mnist.load_full()
    except (OSError, ValueError) as exc:
        raise DatasetError(f"dataset {name!r}: {exc}") from None
    return _from_arrays(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                        classes=fashion_mnist.CLASSES)


def _load_npz(path: Path) -> Dataset:
    name = str(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {name!r} not found: expected a .npz with x_train, y_train, x_test, y_test")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in data.files]
            names = tuple(str(c) for c in data["classes"].reshape(-1)) if "classes" in data.files else None
            if missing:
                raise DatasetError(f"dataset file {name!r} lacks {', '.join(missing)}: expected arrays x_train, "
                                   f"y_train, x_test and y_test (found {', '.join(data.files) or 'none'})")
            arrays = {k: data[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except DatasetError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        # numpy says "contains pickled (object) data" for object arrays and "Cannot load file" for junk.
        raise DatasetError(f"dataset file {name!r} cannot be read as a .npz of numeric arrays "
                           f"({str(exc).splitlines()[0][:120]}): expected np.savez output with x_train, y_train, "
                           "x_test and y_test, no object arrays") from None
    return _from_arrays(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], names)


def _load_keras(which: str) -> Dataset:
    if which not in KERAS_DATASETS:
        raise DatasetError(f"unknown Keras dataset {which!r} in 'keras:{which}': expected one of "
                           f"{', '.join(KERAS_DATASETS)}")
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, which).load_data()
    except Exception as exc:  # keras raises a bare Exception for a failed download
        raise DatasetError(f"could not download dataset 'keras:{which}' ({exc}): this needs network access on "
                           "first use, or the file already in ~/.keras/datasets; offline, use 'digits', a "
                           "folder or a .npz file") from None
    return _from_arrays(f"keras:{which}", x_train, y_train, x_test, y_test)


def _load_tfds(which: str) -> Dataset:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DatasetError(f"dataset 'tfds:{which}' needs the tensorflow-datasets package "
                           "(pip install tensorflow-datasets) and network access on first use; offline, use "
                           "'digits', a folder or a .npz file") from None
    try:
        (x_train, y_train), (x_test, y_test) = tfds.as_numpy(
            tfds.load(which, split=["train", "test"], as_supervised=True, batch_size=-1))
    except Exception as exc:
        raise DatasetError(f"could not load dataset 'tfds:{which}' ({exc}): expected a TFDS name with 'train' "
                           "and 'test' splits of equally sized images, and network access on first use") from None
    return _from_arrays(f"tfds:{which}", x_train, y_train, x_test, y_test)


def _load_folder(root: Path, resolution: int) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"image folder {str(root)!r} has no class subfolders: expected one subfolder of "
                           "images per class")
    images, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"class folder {str(class_dir)!r} holds no images: expected files ending in "
                               f"{', '.join(IMAGE_SUFFIXES)}")
        for file in files:
            try:
                with Image.open(file) as image:
                    rgb = image.convert("RGB").resize((resolution, resolution), Image.Resampling.BILINEAR)
            except (UnidentifiedImageError, OSError) as exc:
                raise DatasetError(f"image {str(file)!r} cannot be read ({exc}): expected a valid image "
                                   "file") from None
            images.append(np.asarray(rgb, dtype=np.uint8))
            labels.append(label)
    return _split(str(root), tuple(p.name for p in class_dirs), np.stack(images), np.asarray(labels, np.int32))


def _from_arrays(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, classes: tuple[str, ...] | None = None) -> Dataset:
    """Validate given splits and turn images into uint8 (N, H, W, C). Labels are taken as they are, never
    renumbered: integers 0..K-1, K being the number of class names when the data has them (`classes`),
    otherwise the number of distinct training labels."""
    x_train, x_test = _as_images(name, "x_train", x_train), _as_images(name, "x_test", x_test)
    y_train, y_test = np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y) or len(x) == 0:
            raise DatasetError(f"dataset {name!r} has {len(x)} {split} images but {len(y)} labels: expected "
                               "as many labels as images, and at least one")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(f"dataset {name!r} has train images of shape {x_train.shape[1:]} but test images of "
                           f"shape {x_test.shape[1:]}: expected the same shape")
    for key, y in (("y_train", y_train), ("y_test", y_test)):
        if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
            example = y.reshape(-1)[0].item() if y.size else None
            raise DatasetError(f"{key} of dataset {name!r} has dtype {y.dtype} (first label {example!r}): expected "
                               "integer class labels 0..K-1")
    count = len(classes) if classes is not None else len(np.unique(y_train))
    where = ("its number of class names" if classes is not None
             else "the number of distinct training labels; name the classes (`classes` in a .npz) to set it")
    for key, y in (("y_train", y_train), ("y_test", y_test)):
        bad = y[(y < 0) | (y >= count)]
        if bad.size:
            raise DatasetError(f"{key} of dataset {name!r} holds label {bad[0].item()}: expected integer labels "
                               f"0..{count - 1} ({count} classes: {where})")
    _check_classes(name, count, str(classes[0]) if classes else str(y_train[0]))
    unseen = np.setdiff1d(np.unique(y_test), np.unique(y_train))
    if unseen.size:
        raise DatasetError(f"dataset {name!r} has test labels {unseen[:5].tolist()} absent from its train labels: "
                           "expected every test class in the training split")
    names = classes if classes is not None else tuple(str(v) for v in range(count))
    return Dataset(name, names, x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32))


def _as_images(name: str, key: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DatasetError(f"{key} of dataset {name!r} has shape {x.shape}: expected (N, H, W), (N, H, W, 1) "
                           "or (N, H, W, 3)")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.number):
        raise DatasetError(f"{key} of dataset {name!r} has dtype {x.dtype}: expected numbers")
    finite = np.isfinite(x)
    if not finite.all():  # NaN would become pixel 0 and inf 255: a model of one class, silently
        image = int(np.argwhere(~finite)[0][0])
        raise DatasetError(f"{key} of dataset {name!r} has {int((~finite).sum())} pixel values that are NaN or "
                           f"infinite (the first in image {image}): expected finite numbers")
    scale = 255.0 if x.size and float(np.max(x)) <= 1.0 else 1.0  # floats in [0, 1] or pixel values
    return np.clip(np.round(x.astype(np.float32) * scale), 0, 255).astype(np.uint8)


def _split(name: str, classes: tuple[str, ...], images: np.ndarray, labels: np.ndarray) -> Dataset:
    """A deterministic stratified split: the same test images for every candidate and seed."""
    from sklearn.model_selection import train_test_split

    _check_classes(name, len(classes), classes[0])
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < 2:
        small = classes[int(counts.argmin())]
        raise DatasetError(f"class {small!r} of dataset {name!r} has {counts.min()} image: expected at least 2 "
                           "per class to split off a test set")
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=TEST_FRACTION,
                                                        random_state=SPLIT_SEED, stratify=labels)
    return Dataset(name, classes, x_train, y_train, x_test, y_test)


def _check_classes(name: str, count: int, example: str) -> None:
    if count < 2:
        raise DatasetError(f"dataset {name!r} has a single class ({example!r}): expected at least 2 classes")


def _resize(images: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 (N, H, W, C) -> (N, r, r, 3): bilinear, grayscale repeated to three channels."""
    from PIL import Image

    if images.shape[1:3] != (resolution, resolution):
        out = np.empty((len(images), resolution, resolution, images.shape[-1]), np.uint8)
        for i, image in enumerate(images):
            pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
            out[i] = np.asarray(pil.resize((resolution, resolution), Image.Resampling.BILINEAR)).reshape(out[i].shape)
        images = out
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
