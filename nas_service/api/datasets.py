"""Which datasets a job submitted over the API may name: built-in and named ones, and files in the data directory.

The CLI runs as the user who owns the machine and may read any local path; an API user must not make a
worker read files outside the directory the operator set aside for datasets (`NAS_DATA_DIR`).
"""

from __future__ import annotations

import re
from pathlib import Path

from nas_service.services.uploads import UPLOAD
from nas_service.spec import JobSpec, SpecError
from nas_service.trainer.datasets import BUILTIN

NAMED_DATASET = re.compile(r"(keras|tfds):[A-Za-z0-9_][A-Za-z0-9_.:/+*-]{0,199}")
"""`keras:NAME` and `tfds:NAME[/CONFIG][:VERSION]`: names looked up in a registry, never read as a path."""


class DatasetNotAllowedError(SpecError):
    """A job's dataset that the API does not let its users name; 422 on the `dataset` field."""

    loc = ("dataset",)


def _allowed(data_dir: Path | None) -> str:
    paths = ("a folder or .npz file inside the server's data directory (a path relative to it)" if data_dir
             else "no server paths (the server sets no data directory, NAS_DATA_DIR)")
    return f"expected {', '.join(BUILTIN)}, keras:NAME, tfds:NAME, upload:ID (POST /datasets) or {paths}"


def api_dataset(name: str, data_dir: Path | None) -> str:
    """`name` as a worker should load it: a named dataset unchanged, a path resolved inside `data_dir`.

    A path is resolved (symlinks followed, `..` collapsed) before it is compared with the data directory,
    so neither traversal nor a symlink pointing out of it escapes; the resolved path is what the worker reads.
    """
    if name in BUILTIN or UPLOAD.fullmatch(name) or (NAMED_DATASET.fullmatch(name) and ".." not in name):
        return name
    if data_dir is None:
        raise DatasetNotAllowedError(f"dataset {name!r} is not allowed over the API: {_allowed(data_dir)}")
    root = data_dir.expanduser().resolve()
    try:
        path = (root / name).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise DatasetNotAllowedError(f"dataset {name!r} not found in the data directory: "
                                     f"{_allowed(data_dir)}") from None
    if not path.is_relative_to(root):
        raise DatasetNotAllowedError(f"dataset {name!r} is outside the data directory: {_allowed(data_dir)}")
    if not (path.is_dir() or (path.is_file() and path.suffix == ".npz")):
        raise DatasetNotAllowedError(f"dataset {name!r} is neither a folder nor a .npz file: {_allowed(data_dir)}")
    return str(path)


def api_job_spec(spec: JobSpec, data_dir: Path | None) -> JobSpec:
    """`spec` with its dataset checked for an API user (see `api_dataset`); raises `DatasetNotAllowedError`."""
    dataset = api_dataset(spec.dataset, data_dir)
    return spec if dataset == spec.dataset else spec.model_copy(update={"dataset": dataset})
