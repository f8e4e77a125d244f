"""Fashion-MNIST (Zalando, MIT licence): 28x28 grayscale clothing images in 10 classes.

Two datasets come from it:

- `fashion_mnist`: the full 60,000 / 10,000 split, read from the four IDX ``.gz`` files where Debian's
  `dataset-fashion-mnist` package puts them (``/usr/share/datasets/fashion-mnist/``), in Keras's cache
  (``~/.keras/datasets/fashion-mnist/``) or in the folder ``NAS_FASHION_MNIST_DIR`` names.
- `fashion_mnist_small`: a stratified subset shipped inside the package (``data/fashion_mnist_small.npz``,
  12,000 train / 2,000 test images, 1,200 / 200 per class), so the default search runs on a fresh machine.
  `python -m nas_service.trainer.fashion_mnist` rebuilds it from the full set, deterministically.

Unlike digits, architectures differ on it: small networks stay well below the accuracy of larger ones.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
         "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
SMALL_PATH = Path(__file__).parent / "data" / "fashion_mnist_small.npz"
SMALL_PER_CLASS = {"train": 1200, "test": 200}
SUBSET_SEED = 0


def search_dirs() -> list[Path]:
    """Where the full dataset's IDX files are looked for, first match wins."""
    dirs = [Path(os.environ["NAS_FASHION_MNIST_DIR"])] if os.environ.get("NAS_FASHION_MNIST_DIR") else []
    return [*dirs, Path("/usr/share/datasets/fashion-mnist"), Path.home() / ".keras" / "datasets" / "fashion-mnist"]


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally gzipped) as a uint8 array; raises ValueError naming the file if it is not one."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} cannot be read ({exc})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {data.size} values but its header says {shape}")
    return data.reshape(shape)


def load_full() -> dict[str, np.ndarray]:
    """The full split from the first folder of `search_dirs` holding all four files."""
    for folder in search_dirs():
        if all((folder / name).is_file() for name in FILES.values()):
            return {key: read_idx(folder / name) for key, name in FILES.items()}
    looked = ", ".join(str(d) for d in search_dirs())
    raise FileNotFoundError(f"Fashion-MNIST's IDX files ({', '.join(FILES.values())}) not found in {looked}: "
                            "install Debian's dataset-fashion-mnist package, set NAS_FASHION_MNIST_DIR, or use "
                            "the bundled subset 'fashion_mnist_small'")


def make_small(full: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The stratified subset: `SMALL_PER_CLASS` images of every class from each split, seeded, in class-mixed order."""
    rng = np.random.default_rng(SUBSET_SEED)
    out: dict[str, np.ndarray] = {}
    for split, per_class in SMALL_PER_CLASS.items():
        x, y = full[f"x_{split}"], full[f"y_{split}"]
        picked = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                                 for c in range(len(CLASSES))])
        picked = picked[rng.permutation(len(picked))]
        out[f"x_{split}"], out[f"y_{split}"] = x[picked], y[picked]
    return out


def load_small() -> dict[str, np.ndarray]:
    with np.load(SMALL_PATH, allow_pickle=False) as data:
        return {key: data[key] for key in FILES}


def main() -> None:
    """Rebuild the bundled subset from the full dataset."""
    small = make_small(load_full())
    SMALL_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(SMALL_PATH, x_train=small["x_train"], y_train=small["y_train"], x_test=small["x_test"],
                        y_test=small["y_test"])
    print(f"wrote {SMALL_PATH} ({SMALL_PATH.stat().st_size / 1e6:.1f} MB): "
          + ", ".join(f"{k} {v.shape}" for k, v in small.items()))


if __name__ == "__main__":
    main()
