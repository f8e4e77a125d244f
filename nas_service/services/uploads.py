"""Datasets uploaded over REST: checked exactly as `nas search` checks a dataset, kept in the artifact store with
their hash, size, shapes and classes, owned by the uploader, named `upload:<id>` by jobs, and copied from the
store to a worker's disk (checked again) when one of its jobs starts."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from optuna.artifacts._protocol import ArtifactStore
from sqlalchemy.orm import Session

from nas_service.config import Settings
from nas_service.db import artifacts
from nas_service.db.models import Artifact, Job, UploadedDataset, utc
from nas_service.services.jobs import JobStateError, NotFoundError

UPLOAD = re.compile(r"upload:([0-9]{1,18})")
VALIDATE_RESOLUTION = 32
"""The resolution `nas search` checks a dataset at when the job does not fix one."""


class DatasetTooLargeError(ValueError):
    """An upload over the per-upload limit or the uploader's quota (413)."""


class UploadRefusedError(ValueError):
    """An upload that is not a dataset `nas search` would accept (422, on the body); the message names the
    problem."""

    loc: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetView:
    id: int
    name: str
    format: str
    owner: str
    size: int
    sha256: str
    classes: list[str]
    num_classes: int
    train_shape: list[int]
    test_shape: list[int]
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _view(row: UploadedDataset, meta: Artifact) -> DatasetView:
    return DatasetView(row.id, row.name, row.format, row.owner, meta.size, meta.sha256, list(row.classes),
                       len(row.classes), list(row.train_shape), list(row.test_shape),
                       utc(row.created_at) or row.created_at)


def used_bytes(session: Session, owner: str) -> int:
    return int(session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Artifact.size), 0)).where(
        Artifact.kind == "dataset", Artifact.owner == owner)) or 0)


def room(session: Session, settings: Settings, owner: str, name: str) -> tuple[int, DatasetTooLargeError]:
    """How many bytes `owner` may upload now, and the error to raise past them."""
    used = used_bytes(session, owner)
    left = settings.dataset_quota_bytes - used
    if left < settings.dataset_max_bytes:
        return max(left, 0), DatasetTooLargeError(
            f"dataset upload {name!r} would take {owner}'s datasets past the quota of {settings.dataset_quota_bytes} "
            f"bytes ({used} used, NAS_DATASET_QUOTA_BYTES): delete some first (`nas datasets rm ID`)")
    return settings.dataset_max_bytes, DatasetTooLargeError(
        f"dataset upload {name!r} is over the limit of {settings.dataset_max_bytes} bytes per upload "
        "(NAS_DATASET_MAX_BYTES)")


def format_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in (".npz", ".zip"):
        raise UploadRefusedError(f"dataset upload {name!r}: expected a .npz file (x_train, y_train, x_test, y_test) "
                                 "or a .zip of one folder of images per class, named with its suffix")
    return suffix[1:]


def add(session: Session, store: ArtifactStore, settings: Settings, *, owner: str, name: str,
        path: Path) -> DatasetView:
    """Check the uploaded file at `path` as `nas search` would, then keep it in the store as `owner`'s."""
    from nas_service.trainer.datasets import DatasetError, read_dataset

    fmt = format_of(name)
    limit, too_large = room(session, settings, owner, name)
    if path.stat().st_size > limit:
        raise too_large
    with tempfile.TemporaryDirectory() as scratch:
        try:
            source = path if fmt == "npz" else _unzip(path, Path(scratch), name, 4 * settings.dataset_max_bytes)
            data = read_dataset(source, VALIDATE_RESOLUTION)
        except DatasetError as exc:  # name the upload, not the server's temporary paths
            message = str(exc).replace(str(source), name).replace(scratch, name).replace(str(path), name)
            raise UploadRefusedError(message) from None
    with open(path, "rb") as body:
        saved = artifacts.save_stream(session, store, body, kind="dataset", filename=name, owner=owner)
    row = UploadedDataset(owner=owner, name=name, format=fmt, artifact_id=saved.id, classes=list(data.classes),
                          train_shape=list(data.x_train.shape), test_shape=list(data.x_test.shape))
    session.add(row)
    session.commit()
    meta = session.get(Artifact, saved.id)
    assert meta is not None
    return _view(row, meta)


def _unzip(path: Path, scratch: Path, name: str, max_bytes: int) -> Path:
    """Extract a zip of class folders (or of one folder holding them) safely: no absolute or `..` member names,
    at most `max_bytes` uncompressed."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UploadRefusedError(f"dataset upload {name!r} is not a zip file: expected a .zip of one folder of "
                                 "images per class") from None
    root = scratch / "extracted"
    with archive:
        members = archive.infolist()
        if sum(m.file_size for m in members) > max_bytes:
            raise UploadRefusedError(f"dataset upload {name!r} unpacks to more than {max_bytes} bytes")
        for member in members:
            parts = Path(member.filename).parts
            if member.filename.startswith("/") or ".." in parts:
                raise UploadRefusedError(f"dataset upload {name!r} holds the unsafe path {member.filename!r}")
            archive.extract(member, root)
    entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))] if root.is_dir() else []
    if len(entries) == 1 and entries[0].is_dir() and any(p.is_dir() for p in entries[0].iterdir()):
        return entries[0]
    return root


def _row(session: Session, dataset_id: int, owner: str | None) -> UploadedDataset:
    row = session.get(UploadedDataset, dataset_id)
    if row is None or (owner is not None and row.owner != owner):
        raise NotFoundError(f"dataset {dataset_id} not found")
    return row


def get(session: Session, dataset_id: int, *, owner: str | None = None) -> DatasetView:
    row = _row(session, dataset_id, owner)
    meta = session.get(Artifact, row.artifact_id)
    assert meta is not None
    return _view(row, meta)


def list_owned(session: Session, owner: str | None) -> list[DatasetView]:
    query = sa.select(UploadedDataset, Artifact).join(Artifact, Artifact.id == UploadedDataset.artifact_id)
    if owner is not None:
        query = query.where(UploadedDataset.owner == owner)
    return [_view(row, meta) for row, meta in session.execute(query.order_by(UploadedDataset.id))]


def delete(session: Session, store: ArtifactStore, dataset_id: int, *, owner: str | None = None) -> DatasetView:
    """Remove an uploaded dataset; refused while a queued or running job uses it."""
    view = get(session, dataset_id, owner=owner)
    busy = [j.id for j in session.scalars(sa.select(Job).where(Job.status.in_(("queued", "running"))))
            if j.spec.get("dataset") == f"upload:{dataset_id}"]
    if busy:
        raise JobStateError(f"dataset {dataset_id} is used by job(s) {busy}, queued or running: cancel them first")
    row = _row(session, dataset_id, owner)
    artifact_id = row.artifact_id
    session.delete(row)
    session.commit()
    artifacts.remove(session, store, [artifact_id])
    return view


def check_owned(session: Session, dataset: str, owner: str | None) -> None:
    """A job's `upload:<id>` dataset must exist and be the submitter's; `UploadRefusedError` (422) otherwise."""
    match = UPLOAD.fullmatch(dataset)
    if match is None:
        return
    try:
        _row(session, int(match.group(1)), owner)
    except NotFoundError:
        raise UploadRefusedError(f"dataset {dataset!r} not found (or not yours): upload it with POST /datasets "
                                 "and name it by the id it answers") from None


def for_local_search(session: Session, store: ArtifactStore, dataset: str, owner: str, cache: Path,
                     where: str) -> str:
    """`nas search --dataset upload:<id>` on the server's database and store: the upload must be there and be the
    job's owner's (`--user`), as the API requires of a submitter; the path of its checked local copy (see
    `local_copy`). Anything else is a one-line `DatasetError`; a dataset that is not an upload comes back as it is."""
    from nas_service.trainer.datasets import DatasetError

    match = UPLOAD.fullmatch(dataset)
    if match is None:
        return dataset
    row = session.get(UploadedDataset, int(match.group(1)))
    if row is None:
        raise DatasetError(f"dataset {dataset!r} not found in database {where}: `nas datasets list` against the "
                           "server lists your uploads and their ids (the search must use the server's --db)")
    if row.owner != owner:
        raise DatasetError(f"dataset {dataset!r} is {row.owner}'s, not {owner}'s: a job may use only its owner's "
                           f"uploads; add --user {row.owner} (the job is then {row.owner}'s)")
    return local_copy(session, store, dataset, cache)


def local_copy(session: Session, store: ArtifactStore, dataset: str, cache: Path) -> str:
    """The path a worker loads `upload:<id>` from: a checked copy from the store under `cache`, made once per
    machine (a `.npz` file, or the unpacked folders of a zip); any other dataset name as it is."""
    match = UPLOAD.fullmatch(dataset)
    if match is None:
        return dataset
    row = _row(session, int(match.group(1)), None)
    meta = artifacts.info(session, row.artifact_id, what=f"dataset {dataset}")
    target = cache / (f"{meta.id}.npz" if row.format == "npz" else meta.id)
    if target.exists():
        return str(target)
    cache.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=cache, prefix=".partial-")
    try:
        with os.fdopen(handle, "wb") as out:
            for block in artifacts.chunks(store, meta, what=f"dataset {dataset}"):
                out.write(block)
        if row.format == "npz":
            os.replace(partial, target)
        else:
            unpacked = Path(tempfile.mkdtemp(dir=cache, prefix=".partial-"))
            source = _unzip(Path(partial), unpacked, row.name, 1 << 62)
            os.replace(source, target)
            shutil.rmtree(unpacked, ignore_errors=True)
    finally:
        Path(partial).unlink(missing_ok=True)
    return str(target)
