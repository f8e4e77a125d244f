"""The one artifact store behind every model and uploaded dataset, through Optuna's artifact API.

The store (`ArtifactStore` protocol) holds bytes under an artifact id; the `nas_artifacts` row holds what
a reader checks them against (SHA-256, size) and is written only after the whole file is in the store,
so a writer killed half-way leaves nothing anyone reads. Every read is checked: a mismatch is an
`ArtifactCorruptError`, never a corrupt file handed on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, BinaryIO

import optuna
import sqlalchemy as sa
from optuna.artifacts import ArtifactMeta, FileSystemArtifactStore
from optuna.artifacts._protocol import ArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound
from sqlalchemy.orm import Session

from nas_service.config import Settings
from nas_service.db.models import Artifact, Candidate, Job, Trial

READ_BYTES = 1 << 20
SPOOL_BYTES = 4 << 20
"""A checked read is kept in memory up to this size, then in a temporary file."""


class ArtifactMissingError(LookupError):
    """An artifact whose row or bytes are gone; the message names what it belonged to."""


class ArtifactCorruptError(ValueError):
    """Stored bytes that do not match their recorded SHA-256 or size."""


class AtomicFileSystemArtifactStore(FileSystemArtifactStore):
    """Optuna's filesystem store, keyed by artifact id under `base`, writing through a temporary file renamed into
    place: a writer killed half-way leaves no file under the id."""

    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        super().__init__(base)
        self.base = base

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        target = self._get_filepath(artifact_id)
        handle, tmp = tempfile.mkstemp(dir=self.base, prefix=".partial-")
        try:
            with os.fdopen(handle, "wb") as out:
                shutil.copyfileobj(content_body, out, READ_BYTES)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class PrefixedArtifactStore:
    """Another store with every id under `prefix/` (an S3 bucket shared with other data)."""

    def __init__(self, inner: ArtifactStore, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix.strip("/")

    def _key(self, artifact_id: str) -> str:
        return f"{self.prefix}/{artifact_id}" if self.prefix else artifact_id

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.inner.open_reader(self._key(artifact_id))

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.inner.write(self._key(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        self.inner.remove(self._key(artifact_id))


def store_kind(settings: Settings) -> str:
    """`file`, `db` or `s3://...`: the setting, or the default of the database's dialect."""
    if settings.artifact_store:
        return settings.artifact_store
    return "db" if settings.database_url.startswith("postgresql") else "file"


def make_store(settings: Settings, engine: sa.Engine | sa.Connection) -> ArtifactStore:
    """The artifact store the settings name (see `Settings.artifact_store`)."""
    kind = store_kind(settings)
    if kind == "file":
        return AtomicFileSystemArtifactStore(settings.artifacts_dir / "store")
    if kind == "db":
        from nas_service.db.artifact_store import DatabaseArtifactStore

        return DatabaseArtifactStore(engine)
    if kind.startswith("s3://") and len(kind) > 5:
        from optuna.artifacts import Boto3ArtifactStore

        bucket, _, prefix = kind[5:].partition("/")
        return PrefixedArtifactStore(Boto3ArtifactStore(bucket), prefix)
    raise ValueError(f"NAS_ARTIFACT_STORE={kind!r} is not a store: expected `file`, `db` or `s3://bucket/prefix`")


@dataclass(frozen=True)
class ArtifactInfo:
    id: str
    kind: str
    job_id: int | None
    owner: str | None
    filename: str
    sha256: str
    size: int

    @classmethod
    def of(cls, a: Artifact) -> ArtifactInfo:
        return cls(a.id, a.kind, a.job_id, a.owner, a.filename, a.sha256, a.size)


class _Hashing:
    """A reader that hashes and counts what passes through it, and refuses to pass more than `limit` bytes."""

    def __init__(self, body: BinaryIO, limit: int | None = None, on_limit: Exception | None = None) -> None:
        self.body, self.limit, self.on_limit = body, limit, on_limit
        self.sha, self.size = hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.body.read(n)
        self.sha.update(data)
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise self.on_limit or ValueError(f"more than {self.limit} bytes")
        return data


def save_model(session: Session, store: ArtifactStore, path: Path, *, trial: optuna.Trial, job_id: int) -> str:
    """Upload a trained model with `optuna.artifacts.upload_artifact` (so it is attached to its Optuna trial, where
    optuna-dashboard lists it) and record its hash and size; returns the artifact id."""
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(READ_BYTES):
            sha.update(block)
            size += len(block)
    artifact_id = optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial,
                                                   mimetype="application/octet-stream")
    session.add(Artifact(id=artifact_id, kind="model", job_id=job_id, filename=path.name, sha256=sha.hexdigest(),
                         size=size))
    session.commit()
    return artifact_id


def attach_to_trial(session: Session, artifact_id: str, filename: str, *, job_id: int, candidate_id: int) -> bool:
    """Attach a model written after its trial ended (a one-shot front member trained from scratch once the search
    is over) to the Optuna trial that scored its candidate, as `upload_artifact` attaches one: the
    `artifacts:<id>` system attribute that `optuna.artifacts.get_all_artifact_meta` and optuna-dashboard read.
    Optuna's storage refuses to update a finished trial, so the row goes straight into its table (Optuna's RDB
    schema, in the same database); the trial is the first of the job that holds the candidate without reusing it.
    False when the job's study has no such trial."""
    from optuna.storages._rdb import models as optuna_models

    trials, studies = optuna_models.TrialModel, optuna_models.StudyModel
    trial_id = session.scalar(
        sa.select(trials.trial_id)
        .join(studies, studies.study_id == trials.study_id)
        .join(Job, Job.study_name == studies.study_name)
        .join(Trial, sa.and_(Trial.job_id == Job.id, Trial.number == trials.number))
        .where(Job.id == job_id, Trial.candidate_id == candidate_id)
        .order_by(Trial.reused, Trial.number).limit(1))
    if trial_id is None:
        return False
    meta = ArtifactMeta(artifact_id=artifact_id, filename=filename, mimetype="application/octet-stream", encoding=None)
    # upload_artifact stores the JSON text of the meta as the attribute's value, which Optuna encodes as JSON again
    session.execute(sa.insert(optuna_models.TrialSystemAttributeModel).values(
        trial_id=trial_id, key=f"artifacts:{artifact_id}", value_json=json.dumps(json.dumps(asdict(meta)))))
    session.commit()
    return True


def save_stream(session: Session, store: ArtifactStore, body: BinaryIO, *, kind: str, filename: str,
                owner: str | None = None, job_id: int | None = None, limit: int | None = None,
                on_limit: Exception | None = None) -> ArtifactInfo:
    """Stream `body` into the store and record it; `on_limit` is raised (nothing kept) past `limit` bytes."""
    artifact_id = str(uuid.uuid4())
    reader = _Hashing(body, limit, on_limit)
    try:
        store.write(artifact_id, reader)  # type: ignore[arg-type]
    except BaseException:
        _forget(store, artifact_id)
        raise
    row = Artifact(id=artifact_id, kind=kind, job_id=job_id, owner=owner, filename=filename,
                   sha256=reader.sha.hexdigest(), size=reader.size)
    session.add(row)
    session.commit()
    return ArtifactInfo.of(row)


def _forget(store: ArtifactStore, artifact_id: str) -> None:
    with contextlib.suppress(ArtifactNotFound, OSError):
        store.remove(artifact_id)


def info(session: Session, artifact_id: str | None, *, what: str) -> ArtifactInfo:
    """The row of an artifact; `ArtifactMissingError` naming `what` (e.g. "candidate 3 of job 1") if it has none."""
    row = session.get(Artifact, artifact_id) if artifact_id else None
    if row is None:
        raise ArtifactMissingError(f"{what} has no int8 TFLite file (not trained, infeasible, or exported without "
                                   "int8)" if not artifact_id else f"{what}: its artifact {artifact_id} is gone")
    return ArtifactInfo.of(row)


def chunks(store: ArtifactStore, meta: ArtifactInfo, *, what: str) -> Iterator[bytes]:
    """The artifact's bytes in pieces, checked: `ArtifactCorruptError` after the last piece if they do not match
    (a caller that must not hand on a single unchecked byte uses `open_checked`)."""
    try:
        reader = store.open_reader(meta.id)
    except ArtifactNotFound:
        raise ArtifactMissingError(f"{what}: artifact {meta.id} is missing from the artifact store") from None
    sha, size = hashlib.sha256(), 0
    with reader:
        while block := reader.read(READ_BYTES):
            sha.update(block)
            size += len(block)
            if size > meta.size:
                break
            yield block
    if size != meta.size or sha.hexdigest() != meta.sha256:
        raise ArtifactCorruptError(f"{what}: artifact {meta.id} failed its integrity check ({size} bytes, sha256 "
                                   f"{sha.hexdigest()[:12]}...; recorded {meta.size} bytes, {meta.sha256[:12]}...): "
                                   "the stored copy is damaged; train or upload it again")


def open_checked(store: ArtifactStore, meta: ArtifactInfo, *, what: str) -> IO[bytes]:
    """A verified copy of the artifact, rewound: in memory up to `SPOOL_BYTES`, then in a temporary file."""
    copy = tempfile.SpooledTemporaryFile(SPOOL_BYTES)  # noqa: SIM115 (handed to the caller, who closes it)
    try:
        for block in chunks(store, meta, what=what):
            copy.write(block)
    except BaseException:
        copy.close()
        raise
    copy.seek(0)
    return copy  # type: ignore[return-value]


def job_artifacts(session: Session, job_id: int) -> list[str]:
    """Ids of every artifact a job's candidates hold or the job produced (its models, its supernet checkpoints)."""
    ids = set(session.scalars(sa.select(Artifact.id).where(Artifact.job_id == job_id)))
    ids |= {a for a in session.scalars(sa.select(Candidate.tflite_artifact).where(Candidate.job_id == job_id)) if a}
    return sorted(ids)


def remove(session: Session, store: ArtifactStore, ids: list[str]) -> int:
    """Delete artifacts from the store and their rows; how many the store still held."""
    held = 0
    for artifact_id in ids:
        try:
            store.remove(artifact_id)
            held += 1
        except ArtifactNotFound:
            pass
    if ids:
        session.execute(sa.update(Candidate).where(Candidate.tflite_artifact.in_(ids)).values(tflite_artifact=None))
        session.execute(sa.delete(Artifact).where(Artifact.id.in_(ids)))
        session.commit()
    return held
