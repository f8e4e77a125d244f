"""ORM rows. They stay inside the service layer; callers get frozen dataclasses (see `services.views`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JOB_STATUSES = ("queued", "running", "completed", "failed", "cancelled")
CANDIDATE_STATUSES = ("pending", "training", "trained", "infeasible", "failed")
TRIAL_STATES = ("running", "complete", "stopped", "infeasible", "failed", "stale")
"""`stopped`: trained, then early-stopped because it could not reach the front; its accuracy is partial."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


class Job(Base):
    """A search job: its spec, its lifecycle and its trial budget bookkeeping shared by all workers."""

    __tablename__ = "nas_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    owner: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    spec: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(sa.String(16), index=True, default="queued")
    study_name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    trials_budget: Mapped[int | None]
    trials_reserved: Mapped[int] = mapped_column(default=0)
    trials_done: Mapped[int] = mapped_column(default=0)
    deadline: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(sa.String(200))
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    __table_args__ = (sa.CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status"),)


class Candidate(Base):
    """One architecture of one job, scored once and reused by every trial that samples it again."""

    __tablename__ = "nas_candidates"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("nas_jobs.id", ondelete="CASCADE"), index=True)
    arch: Mapped[str] = mapped_column(sa.Text)
    arch_hash: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    params: Mapped[int] = mapped_column(sa.BigInteger)
    macs: Mapped[int] = mapped_column(sa.BigInteger)
    model_bytes_estimate: Mapped[int] = mapped_column(sa.BigInteger)
    analysis: Mapped[dict[str, Any]]
    latency_ms: Mapped[float]
    cpu_ms: Mapped[float] = mapped_column(default=0.0, server_default="0")
    """Part of `latency_ms` on the host CPU: ops the accelerator cannot run (and every op after the first)."""
    latency_profile: Mapped[str] = mapped_column(sa.String(100))
    latency: Mapped[dict[str, Any]]
    violations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    accuracy: Mapped[float | None]
    int8_accuracy: Mapped[float | None]
    epochs_trained: Mapped[int | None]
    stopped_early: Mapped[bool] = mapped_column(default=False)
    curve: Mapped[list[Any]] = mapped_column(default=list)
    train_seconds: Mapped[float | None]
    model_path: Mapped[str | None] = mapped_column(sa.Text)
    tflite_artifact: Mapped[str | None] = mapped_column(sa.ForeignKey("nas_artifacts.id", ondelete="SET NULL"))
    """The int8 TFLite file's artifact (`Artifact.id`, the Optuna artifact id), once trained and exported."""
    model_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    on_front: Mapped[bool] = mapped_column(default=False)
    origin: Mapped[str] = mapped_column(sa.String(16), default="sampler", server_default="sampler")
    fidelity: Mapped[str] = mapped_column(sa.String(16), default="standalone", server_default="standalone")
    """`standalone` (trained from scratch) or `oneshot` (a subnet of the job's supernet, inherited weights)."""
    oneshot_accuracy: Mapped[float | None]
    """A confirmed candidate's one-shot accuracy, beside its standalone `accuracy`."""
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("job_id", "arch_hash"),
        sa.Index("ix_nas_candidates_job_front", "job_id", "on_front"),
        sa.CheckConstraint(f"status IN {CANDIDATE_STATUSES!r}", name="status"),
    )


class Trial(Base):
    """One Optuna trial of a job as the service sees it: which candidate, which objective values, which worker."""

    __tablename__ = "nas_trials"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("nas_jobs.id", ondelete="CASCADE"))
    number: Mapped[int]
    candidate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("nas_candidates.id", ondelete="SET NULL"),
                                                     index=True)
    state: Mapped[str] = mapped_column(sa.String(16), default="running")
    accuracy: Mapped[float | None]
    latency_ms: Mapped[float | None]
    params: Mapped[int | None] = mapped_column(sa.BigInteger)
    model_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    reward: Mapped[float | None]
    reused: Mapped[bool] = mapped_column(default=False)
    origin: Mapped[str] = mapped_column(sa.String(16), default="sampler", server_default="sampler")
    fidelity: Mapped[str] = mapped_column(sa.String(16), default="standalone", server_default="standalone")
    retry_of: Mapped[int | None]
    worker: Mapped[str | None] = mapped_column(sa.String(200))
    error: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (
        sa.UniqueConstraint("job_id", "number"),
        sa.Index("ix_nas_trials_job_state", "job_id", "state"),
        sa.CheckConstraint(f"state IN {TRIAL_STATES!r}", name="state"),
    )


ARTIFACT_KINDS = ("model", "dataset", "supernet")


class Artifact(Base):
    """A file in the artifact store (`services.artifacts`): the store holds the bytes under `id`, this row what a
    reader checks them against. A row exists only once the whole file is in the store."""

    __tablename__ = "nas_artifacts"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("nas_jobs.id", ondelete="SET NULL"), index=True)
    owner: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    filename: Mapped[str] = mapped_column(sa.String(300))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    __table_args__ = (sa.CheckConstraint(f"kind IN {ARTIFACT_KINDS!r}", name="kind"),)


class ArtifactChunk(Base):
    """One piece of an artifact in the database store (`db.artifact_store.DatabaseArtifactStore`)."""

    __tablename__ = "nas_artifact_chunks"

    artifact_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


class UploadedDataset(Base):
    """A dataset a user uploaded (`POST /datasets`), validated as `nas search` validates one; jobs name it
    `upload:<id>` and workers read it from the artifact store."""

    __tablename__ = "nas_datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(200), index=True)
    name: Mapped[str] = mapped_column(sa.String(300))
    format: Mapped[str] = mapped_column(sa.String(8))
    artifact_id: Mapped[str] = mapped_column(sa.ForeignKey("nas_artifacts.id"))
    classes: Mapped[list[Any]]
    train_shape: Mapped[list[Any]]
    test_shape: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    __table_args__ = (sa.CheckConstraint("format IN ('npz', 'zip')", name="format"),)
