"""Frozen values handed out by the service functions; ORM rows never leave the service layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from nas_service.db.models import Candidate, Job, Trial, utc
from nas_service.spec import JobSpec

T = TypeVar("T")


@dataclass(frozen=True)
class JobView:
    id: int
    name: str | None
    owner: str | None
    status: str
    spec: JobSpec
    trials_budget: int | None
    trials_done: int
    front_size: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    trial_counts: dict[str, int]
    """Trials per state: complete, stopped (early), infeasible, failed, stale, running."""

    @property
    def estimated(self) -> bool:
        """Its accuracies come from the cheap estimator (`scorer: estimate`), not from training."""
        return self.spec.training.scorer == "estimate"

    @classmethod
    def of(cls, job: Job, front_size: int, trial_counts: dict[str, int] | None = None) -> JobView:
        return cls(job.id, job.name, job.owner, job.status, JobSpec.model_validate(job.spec), job.trials_budget,
                   job.trials_done, front_size, utc(job.created_at) or job.created_at, utc(job.started_at),
                   utc(job.finished_at), job.error, dict(trial_counts or {}))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["spec"] = self.spec.model_dump(mode="json")
        out["estimated"] = self.estimated
        for key in ("created_at", "started_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


@dataclass(frozen=True)
class TrialView:
    number: int
    state: str
    arch: str | None
    candidate_id: int | None
    accuracy: float | None
    latency_ms: float | None
    params: int | None
    model_bytes: int | None
    reward: float | None
    reused: bool
    on_front: bool
    worker: str | None
    error: str | None
    origin: str
    fidelity: str = "standalone"
    """How the trial's accuracy was measured: `standalone` (trained from scratch) or `oneshot` (the supernet)."""

    @classmethod
    def of(cls, trial: Trial, candidate: Candidate | None) -> TrialView:
        return cls(trial.number, trial.state, candidate.arch if candidate else None, trial.candidate_id,
                   trial.accuracy, trial.latency_ms, trial.params, trial.model_bytes, trial.reward, trial.reused,
                   bool(candidate and candidate.on_front), trial.worker, trial.error, trial.origin,
                   trial.fidelity or "standalone")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FrontPoint:
    """A member of a job's Pareto front."""

    candidate_id: int
    arch: str
    accuracy: float
    latency_ms: float
    params: int
    model_bytes: int
    int8_accuracy: float | None
    latency_profile: str
    tflite_artifact: str | None
    origin: str
    """`initial` (the job's warm start) or `sampler`: who first proposed this architecture."""
    cpu_fraction: float
    """Share of the latency spent on the host CPU (ops the accelerator cannot run); 0 when it all runs there."""
    fidelity: str = "standalone"
    """`standalone`: `accuracy` is from training from scratch (a one-shot job's confirmed front); `oneshot`: from
    the job's supernet (a one-shot job's front before its confirmation)."""
    oneshot_accuracy: float | None = None
    """A confirmed member's one-shot accuracy, beside its standalone `accuracy`."""

    @classmethod
    def of(cls, c: Candidate) -> FrontPoint:
        # Front members are always trained, so accuracy is set.
        return cls(c.id, c.arch, c.accuracy or 0.0, c.latency_ms, c.params, c.model_bytes or c.model_bytes_estimate,
                   c.int8_accuracy, c.latency_profile, c.tflite_artifact, c.origin, cpu_fraction(c),
                   c.fidelity or "standalone", c.oneshot_accuracy)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_fraction(c: Candidate) -> float:
    return round(float(c.cpu_ms or 0.0) / c.latency_ms, 4) if c.latency_ms else 0.0


@dataclass(frozen=True)
class CandidateView:
    id: int
    job_id: int
    arch: str
    status: str
    params: int
    macs: int
    model_bytes_estimate: int
    analysis: dict[str, Any]
    latency_ms: float
    latency_profile: str
    latency: dict[str, Any]
    violations: dict[str, Any]
    accuracy: float | None
    int8_accuracy: float | None
    epochs_trained: int | None
    stopped_early: bool
    curve: list[Any]
    train_seconds: float | None
    tflite_artifact: str | None
    model_bytes: int | None
    on_front: bool
    origin: str
    cpu_fraction: float
    estimated: bool
    """The accuracy comes from the cheap estimator (`scorer: estimate`), not from training."""

    @classmethod
    def of(cls, c: Candidate, *, estimated: bool = False) -> CandidateView:
        return cls(c.id, c.job_id, c.arch, c.status, c.params, c.macs, c.model_bytes_estimate, c.analysis,
                   c.latency_ms, c.latency_profile, c.latency, c.violations, c.accuracy, c.int8_accuracy,
                   c.epochs_trained, c.stopped_early, c.curve, c.train_seconds, c.tflite_artifact, c.model_bytes,
                   c.on_front, c.origin, cpu_fraction(c), estimated)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int
