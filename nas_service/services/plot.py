"""A job's trials as columns (one array per field): the compact payload the dashboard plots.

10,000 trials as objects with architecture strings are megabytes; as five numeric columns they are
a few hundred kilobytes (less gzipped), and architectures are fetched lazily per candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nas_service.db.models import Candidate, Job, Trial
from nas_service.services.jobs import NotFoundError, get_job


@dataclass(frozen=True)
class TrialPoints:
    """Finished trials (complete, early-stopped, infeasible, or failed once their candidate existed), in trial
    order. `accuracy` is None for infeasible and failed ones: they have no measurement (their trial row holds 0,
    the value Optuna was given). `stopped` marks trials whose training was stopped early (their accuracy is
    that of a partial training)."""

    job_id: int
    status: str
    trials_done: int
    trial: list[int]
    candidate: list[int | None]
    accuracy: list[float | None]
    latency_ms: list[float]
    feasible: list[bool]
    stopped: list[bool]
    failed: list[bool]
    """Training (or export) raised: no accuracy; shown at the candidate's latency in the strip under the plot."""
    cpu: list[bool]
    """The candidate runs partly on the host CPU (an op the accelerator cannot run)."""
    front: list[bool]
    oneshot: list[bool]
    """Scored by the job's supernet (drawn faint); the confirmed accuracy of a front member is in `confirmed`."""
    confirmed: list[float | None]
    """The standalone accuracy of a one-shot trial's candidate once its front confirmed it, else None."""


def trial_points(session: Session, job_id: int, *, owner: str | None = None) -> TrialPoints:
    """Every scored trial of the job as parallel columns, with the front flag of its candidate."""
    job = get_job(session, job_id, owner=owner)
    rows = session.execute(
        sa.select(Trial.number, Trial.candidate_id, Trial.accuracy, Trial.latency_ms, Trial.state,
                  Candidate.on_front, Candidate.cpu_ms, Trial.fidelity, Candidate.fidelity, Candidate.accuracy)
        .outerjoin(Candidate, Candidate.id == Trial.candidate_id)
        .where(Trial.job_id == job_id, Trial.state.in_(("complete", "stopped", "infeasible", "failed")),
               Trial.latency_ms.is_not(None))
        .order_by(Trial.number)).all()
    return TrialPoints(
        job_id=job.id, status=job.status, trials_done=job.trials_done,
        trial=[r[0] for r in rows],
        candidate=[r[1] for r in rows],
        accuracy=[None if r[2] is None or r[4] in ("infeasible", "failed") else round(r[2], 5) for r in rows],
        latency_ms=[round(r[3] or 0.0, 4) for r in rows],  # NULLs filtered above
        feasible=[r[4] != "infeasible" for r in rows],
        stopped=[r[4] == "stopped" for r in rows],
        failed=[r[4] == "failed" for r in rows],
        cpu=[bool(r[6]) for r in rows],
        front=[bool(r[5]) for r in rows],
        oneshot=[r[7] == "oneshot" for r in rows],
        confirmed=[round(r[9], 5) if r[7] == "oneshot" and r[8] == "standalone" and r[9] is not None else None
                   for r in rows],
    )


@dataclass(frozen=True)
class ResultsVersion:
    """Changes whenever a job's trials, front or status change: every trial's outcome bumps `trials_done`
    and `updated_at` in the same transaction as its front update, so cached reads keyed by it stay exact."""

    owner: str | None
    status: str
    trials_done: int
    updated_at: str


def results_version(session: Session, job_id: int, *, owner: str | None = None) -> ResultsVersion:
    """The job's version (one primary-key lookup); `NotFoundError` for a missing job or another user's."""
    row = session.execute(sa.select(Job.owner, Job.status, Job.trials_done, Job.updated_at)
                          .where(Job.id == job_id)).first()
    if row is None or (owner is not None and row.owner != owner):
        raise NotFoundError.job(job_id)
    return ResultsVersion(row.owner, row.status, row.trials_done, str(row.updated_at))
