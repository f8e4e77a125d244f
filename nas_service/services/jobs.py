"""Jobs, their trials and their Pareto fronts: the functions behind `nas jobs`/`nas pareto` and `/api/v1/jobs`.

`owner` is the caller's user name when the caller is a user (the API); a job owned by someone
else is reported as not found. `None` (the CLI, an administrator) sees every job.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session, load_only

from nas_service.controller import pareto
from nas_service.db import artifacts, locks
from nas_service.db.models import Candidate, Job, Trial
from nas_service.services.catalog import check_names
from nas_service.services.views import CandidateView, FrontPoint, JobView, Page, TrialView
from nas_service.spec import JobSpec

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

TRIAL_SORT_KEYS = ("number", "accuracy", "latency_ms", "params", "model_bytes", "reward", "state")
TrialSort = Literal["number", "accuracy", "latency_ms", "params", "model_bytes", "reward", "state"]


class NotFoundError(LookupError):
    """A job or candidate that does not exist (or belongs to another user). Its message speaks to the API's
    callers as much as the CLI's: the CLI adds where to look (`nas jobs`)."""

    @classmethod
    def job(cls, job_id: int) -> NotFoundError:
        return cls(f"job {job_id} not found")


class EmptyFrontError(NotFoundError):
    """A job whose Pareto front has no member yet; the message says why (nothing finished, or every trial
    infeasible or failed)."""


class JobStateError(ValueError):
    """An action that the job's current status does not allow."""


def create_job(session: Session, spec: JobSpec, *, owner: str | None = None) -> JobView:
    """Queue a search job; a worker (or `nas search` in-process) runs it."""
    check_names(spec)
    job = Job(name=spec.name, owner=owner, spec=spec.model_dump(mode="json"), status="queued",
              study_name=f"nas-job-{uuid.uuid4().hex}", trials_budget=spec.budget.trials)
    session.add(job)
    session.commit()
    return JobView.of(job, 0)


def _job(session: Session, job_id: int, owner: str | None) -> Job:
    job = session.get(Job, job_id)
    if job is None or (owner is not None and job.owner != owner):
        raise NotFoundError.job(job_id)
    return job


def _front_sizes(session: Session, job_ids: list[int]) -> dict[int, int]:
    rows = session.execute(sa.select(Candidate.job_id, sa.func.count()).where(
        Candidate.job_id.in_(job_ids), Candidate.on_front.is_(True)).group_by(Candidate.job_id))
    return {job_id: count for job_id, count in rows}


def _counts(session: Session, job_ids: list[int]) -> dict[int, dict[str, int]]:
    """Trials per state of each job, in one grouped query."""
    out: dict[int, dict[str, int]] = {}
    if job_ids:
        rows = session.execute(sa.select(Trial.job_id, Trial.state, sa.func.count()).where(Trial.job_id.in_(job_ids))
                               .group_by(Trial.job_id, Trial.state))
        for job_id, state, n in rows:
            out.setdefault(job_id, {})[state] = int(n)
    return out


def get_job(session: Session, job_id: int, *, owner: str | None = None) -> JobView:
    job = _job(session, job_id, owner)
    return JobView.of(job, _front_sizes(session, [job.id]).get(job.id, 0), _counts(session, [job.id]).get(job.id, {}))


def list_jobs(session: Session, *, owner: str | None = None, status: str | None = None, offset: int = 0,
              limit: int = 100) -> Page[JobView]:
    """Jobs, newest first."""
    query = sa.select(Job)
    if owner is not None:
        query = query.where(Job.owner == owner)
    if status is not None:
        query = query.where(Job.status == status)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    jobs = list(session.scalars(query.order_by(Job.id.desc()).offset(offset).limit(limit)))
    sizes, counts = _front_sizes(session, [j.id for j in jobs]), _counts(session, [j.id for j in jobs])
    return Page([JobView.of(j, sizes.get(j.id, 0), counts.get(j.id, {})) for j in jobs], total, offset, limit)


def cancel_job(session: Session, job_id: int, *, owner: str | None = None) -> JobView:
    """Stop a queued or running job: no new trials start; running ones finish and are kept."""
    job = _job(session, job_id, owner)
    if job.status not in ("queued", "running"):
        raise JobStateError(f"job {job_id} is {job.status}: only queued or running jobs can be cancelled")
    session.execute(sa.update(Job).where(Job.id == job_id, Job.status.in_(("queued", "running")))
                    .values(status="cancelled", finished_at=datetime.now(UTC)))
    session.commit()
    session.refresh(job)
    return get_job(session, job_id, owner=owner)


def interrupt_job(session: Session, job_id: int, reason: str) -> JobView:
    """Cancel a job whose search was interrupted, saying so in its error, and release the trials still marked
    running (their budget units come back), so that `resume_job` can queue it again."""
    now = datetime.now(UTC)
    session.execute(sa.update(Trial).where(Trial.job_id == job_id, Trial.state == "running")
                    .values(state="stale", finished_at=now, error=reason))
    session.execute(sa.update(Job).where(Job.id == job_id, Job.status.in_(("queued", "running")))
                    .values(status="cancelled", error=reason, finished_at=now, trials_reserved=Job.trials_done))
    session.commit()
    return get_job(session, job_id)


def resume_job(session: Session, job_id: int, *, owner: str | None = None) -> JobView:
    """Queue a cancelled or failed job again: its finished trials are kept, the rest of its budget runs."""
    job = _job(session, job_id, owner)
    if job.status not in ("cancelled", "failed"):
        raise JobStateError(f"job {job_id} is {job.status}: only cancelled or failed jobs can be resumed")
    if job.trials_budget is not None and job.trials_done >= job.trials_budget:
        raise JobStateError(f"job {job_id} has run all {job.trials_budget} trials of its budget: nothing to resume")
    session.execute(sa.update(Job).where(Job.id == job_id).values(
        status="queued", error=None, finished_at=None, started_at=None, deadline=None,
        trials_reserved=Job.trials_done))
    session.commit()
    return get_job(session, job_id, owner=owner)


def study_name(session: Session, job_id: int, *, owner: str | None = None) -> str:
    """The name of the job's Optuna study."""
    return _job(session, job_id, owner).study_name


def remove_job(session: Session, job_id: int, *, store: ArtifactStore, database_url: str, artifacts_dir: Path,
               owner: str | None = None) -> tuple[JobView, str]:
    """`nas rm` and `DELETE /jobs/{id}`: delete a job that is not queued or running with its rows, its models and
    supernet checkpoints in the artifact store, its Optuna study, its lock files beside an SQLite database and this
    machine's scratch folder; returns what the job was and what was removed besides its rows."""
    name = study_name(session, job_id, owner=owner)
    ids = artifacts.job_artifacts(session, job_id)
    view = delete_job(session, job_id, owner=owner)
    held = artifacts.remove(session, store, ids)
    bind = session.get_bind()
    if isinstance(bind, sa.Engine):
        locks.remove_job_locks(bind, job_id)
    removed = remove_job_files(database_url, name, artifacts_dir / f"job-{job_id}")
    return view, removed + (f", {held} model file(s)" if held else "")


def remove_job_files(database_url: str, study_name: str, artifacts: Path) -> str:
    """Delete a deleted job's Optuna study and its artifact folder; says what was removed, for the CLI."""
    import optuna

    try:
        optuna.delete_study(study_name=study_name, storage=database_url)
        removed = ", its Optuna study"
    except KeyError:  # never started: no study
        removed = ""
    if artifacts.is_dir():
        shutil.rmtree(artifacts)
        removed += f" and {artifacts}"
    return removed


def delete_job(session: Session, job_id: int, *, owner: str | None = None) -> JobView:
    """Delete a job that is not running, with its trials and candidates; returns what it was (`remove_job`
    also removes its Optuna study and artifact files)."""
    job = _job(session, job_id, owner)
    if job.status in ("queued", "running"):
        raise JobStateError(f"job {job_id} is {job.status}: cancel it first")
    view = get_job(session, job_id, owner=owner)
    session.execute(sa.delete(Trial).where(Trial.job_id == job_id))
    session.execute(sa.delete(Candidate).where(Candidate.job_id == job_id))
    session.execute(sa.delete(Job).where(Job.id == job_id))
    session.commit()
    return view


def list_trials(session: Session, job_id: int, *, owner: str | None = None, offset: int = 0, limit: int = 100,
                sort: TrialSort = "number", descending: bool = False, state: str | None = None) -> Page[TrialView]:
    """One page of a job's trials (only those in `state` if given), sorted by `sort` (missing values last)."""
    _job(session, job_id, owner)
    if sort not in TRIAL_SORT_KEYS:
        raise ValueError(f"unknown trial sort key {sort!r}: expected one of {', '.join(TRIAL_SORT_KEYS)}")
    column = getattr(Trial, sort)
    order = column.desc() if descending else column.asc()
    base = sa.select(Trial).where(Trial.job_id == job_id)
    if state is not None:
        base = base.where(Trial.state == state)
    total = session.scalar(sa.select(sa.func.count()).select_from(base.subquery())) or 0
    rows = session.execute(
        base.add_columns(Candidate).outerjoin(Candidate, Candidate.id == Trial.candidate_id)
        .options(load_only(Candidate.id, Candidate.arch, Candidate.on_front))  # never sort big JSON columns
        .order_by(column.is_(None), order, Trial.number).offset(offset).limit(limit))
    return Page([TrialView.of(t, c) for t, c in rows], total, offset, limit)


FRONT_COLUMNS = (Candidate.id, Candidate.arch, Candidate.accuracy, Candidate.latency_ms, Candidate.params,
                 Candidate.model_bytes, Candidate.model_bytes_estimate, Candidate.int8_accuracy,
                 Candidate.latency_profile, Candidate.tflite_artifact, Candidate.origin, Candidate.cpu_ms)
"""What a `FrontPoint` reads: the analysis and latency JSON stay unloaded."""


def get_front(session: Session, job_id: int, *, owner: str | None = None) -> list[FrontPoint]:
    """The job's Pareto front, fastest first."""
    _job(session, job_id, owner)
    rows = session.scalars(sa.select(Candidate).options(load_only(*FRONT_COLUMNS))
                           .where(Candidate.job_id == job_id, Candidate.on_front.is_(True))
                           .order_by(Candidate.latency_ms, Candidate.id))
    return [FrontPoint.of(c) for c in rows]


INFEASIBLE_WARNING_AFTER = 3
"""Infeasible trials, with none feasible, after which a search says what its constraints ask for."""


def _fixed_ms(latency: dict[str, Any]) -> float | None:
    """The invoke+io part of a stored latency breakdown: what no architecture avoids on the device."""
    layers: list[Any] = latency.get("layers") or [] if isinstance(latency, dict) else []
    fixed = [float(la["ms"]) for la in layers if isinstance(la, dict) and la.get("name") == "invoke+io"]
    return fixed[0] if fixed else None


def infeasibility_note(session: Session, job_id: int, *, owner: str | None = None) -> str | None:
    """What an unmeetable constraint asks for, once `INFEASIBLE_WARNING_AFTER` trials broke one and none met
    them all: per broken constraint the closest candidate sampled (for a latency limit, its fixed invoke+io
    part too). None otherwise."""
    job = _job(session, job_id, owner)
    counts = _counts(session, [job_id]).get(job_id, {})
    if counts.get("infeasible", 0) < INFEASIBLE_WARNING_AFTER or counts.get("complete") or counts.get("stopped"):
        return None
    candidates = list(session.scalars(sa.select(Candidate).where(Candidate.job_id == job_id,
                                                                 Candidate.status == "infeasible")))
    limits = JobSpec.model_validate(job.spec).constraints
    parts = []
    if limits.max_latency_ms is not None and any("latency_ms" in c.violations for c in candidates):
        fastest = min(candidates, key=lambda c: c.latency_ms)
        fixed = _fixed_ms(fastest.latency)
        parts.append(f"the fastest candidate sampled is {fastest.latency_ms:.3g} ms (max_latency_ms "
                     f"{limits.max_latency_ms:g})" + (f"; {fixed:.3g} ms of it is fixed invoke+io, which no "
                                                      "architecture avoids" if fixed is not None else ""))
    if limits.max_params is not None and any("params" in c.violations for c in candidates):
        parts.append(f"the smallest candidate sampled has {min(c.params for c in candidates):,} parameters "
                     f"(max_params {limits.max_params:,})")
    if limits.max_model_bytes is not None and any("model_bytes" in c.violations for c in candidates):
        smallest = min(c.model_bytes_estimate for c in candidates)
        parts.append(f"the smallest candidate sampled takes about {smallest:,} bytes as int8 (max_model_bytes "
                     f"{limits.max_model_bytes:,})")
    return (f"all {counts['infeasible']} trials so far broke a constraint: {'; '.join(parts)}; loosen the "
            "constraint or the search trains nothing")


SPLIT_PARTS = ("invoke+io", "compute", "streaming", "cpu")
"""Where a predicted latency goes, as the dashboard's candidate page colours it: the device's fixed invoke+io
overhead, compute on the accelerator, parameter streaming over the host link, and ops on the host CPU."""


def latency_split(latency: dict[str, Any]) -> dict[str, float]:
    """A stored latency breakdown summed into `SPLIT_PARTS` (ms each; together the predicted total)."""
    split = dict.fromkeys(SPLIT_PARTS, 0.0)
    layers: list[Any] = latency.get("layers") or [] if isinstance(latency, dict) else []
    for layer in layers:
        part = ("invoke+io" if layer.get("op") == "overhead" else "cpu" if layer.get("bound") == "cpu"
                else "streaming" if layer.get("bound") == "memory" else "compute")
        split[part] += float(layer.get("ms", 0.0))
    return split


def front_latency_splits(session: Session, job_id: int, *, owner: str | None = None) -> dict[int, dict[str, float]]:
    """`latency_split` of every front member, by candidate id."""
    _job(session, job_id, owner)
    rows = session.execute(sa.select(Candidate.id, Candidate.latency).where(Candidate.job_id == job_id,
                                                                            Candidate.on_front.is_(True)))
    return {cid: latency_split(latency) for cid, latency in rows}


def empty_front_reason(session: Session, job_id: int, *, owner: str | None = None) -> str:
    """Why job `job_id`'s front is empty, in one sentence: what its trials have done so far."""
    view = get_job(session, job_id, owner=owner)
    counts = view.trial_counts
    finished = sum(n for state, n in counts.items() if state != "running")
    if not finished:
        return f"job {job_id}'s Pareto front is empty: no trial has finished yet (the job is {view.status})"
    parts = [f"{counts[s]} {label}" for s, label in (("infeasible", "infeasible (broke a constraint)"),
                                                    ("stopped", "stopped early"), ("failed", "failed"))
             if counts.get(s)]
    note = infeasibility_note(session, job_id, owner=owner)
    return (f"job {job_id}'s Pareto front is empty: none of its {finished} finished trials joined it "
            f"({', '.join(parts) or 'none trained'})" + (f"; {note}" if note else ""))


def require_front(session: Session, job_id: int, *, owner: str | None = None) -> list[FrontPoint]:
    """The job's front, fastest first; `EmptyFrontError` (a 404) with the reason while it has no member."""
    front = get_front(session, job_id, owner=owner)
    if not front:
        raise EmptyFrontError(empty_front_reason(session, job_id, owner=owner))
    return front


def _points(front: list[FrontPoint]) -> dict[int, FrontPoint]:
    return {p.candidate_id: p for p in front}


def best_under(session: Session, job_id: int, max_latency_ms: float, *, owner: str | None = None) -> FrontPoint | None:
    """The most accurate front member no slower than `max_latency_ms`, or None if every member is slower."""
    members = _points(get_front(session, job_id, owner=owner))
    best = pareto.best_under([pareto.Point(k, (p.accuracy, p.latency_ms)) for k, p in members.items()],
                             max_latency_ms)
    return members[int(str(best.key))] if best else None


def knee(session: Session, job_id: int, *, owner: str | None = None) -> FrontPoint | None:
    """The knee of the accuracy/latency front (see `pareto.knee`), or None while the front is empty."""
    members = _points(get_front(session, job_id, owner=owner))
    point = pareto.knee([pareto.Point(k, (p.accuracy, p.latency_ms)) for k, p in members.items()])
    return members[int(str(point.key))] if point else None


def get_candidate(session: Session, job_id: int, candidate_id: int, *, owner: str | None = None) -> CandidateView:
    job = _job(session, job_id, owner)
    candidate = session.get(Candidate, candidate_id)
    if candidate is None or candidate.job_id != job_id:
        raise NotFoundError(f"candidate {candidate_id} not found in job {job_id}")
    return CandidateView.of(candidate, estimated=job.spec["training"]["scorer"] == "estimate")
