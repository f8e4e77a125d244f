"""The job row as a queue and a trial budget shared by every worker and slot on the job.

A worker claims a job, then each of its slots takes one unit of the budget (`reserve_trial`, one
conditional UPDATE) before it starts a trial, so the budget holds however many run at once; a lost
trial gives its unit back (`release_trial`), and `finish_if_done` closes the job once nothing runs.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nas_service.db import trial_records
from nas_service.db.models import Job, Trial, utc, utcnow
from nas_service.devices import DeviceClass
from nas_service.spec import JobSpec

UNFINISHED = ("queued", "running")


def claim_job(session: Session, worker: str, *, only: int | None = None,
              device_class: DeviceClass | None = None) -> int | None:
    """Pick the oldest queued or running job with trials left to start (then any unfinished one) and mark it
    running. On PostgreSQL the row is taken `FOR UPDATE SKIP LOCKED`, so concurrent claims never wait on
    each other; several workers may then share one running job.

    A worker of `device_class` takes only jobs whose `training.device_class` is `any` or its own, those naming
    its own first (among jobs with trials left); with None, only `any` jobs (a worker that has not yet looked
    which class it is). A job stored before the field existed asks for `any`."""
    free = sa.or_(Job.trials_budget.is_(None), Job.trials_reserved < Job.trials_budget)
    asked = asked_device_class()
    takes = asked == "any" if device_class is None else asked.in_(("any", device_class))
    query = (sa.select(Job).where(Job.status.in_(UNFINISHED), takes)
             .order_by(sa.case((free, 0), else_=1), sa.case((asked == "any", 1), else_=0), Job.id)
             .limit(1).with_for_update(skip_locked=True))
    if only is not None:
        query = query.where(Job.id == only)
    job = session.scalars(query).first()
    if job is None:
        session.rollback()
        return None
    if job.status == "queued":
        spec = JobSpec.model_validate(job.spec)
        start = utcnow()
        deadline = start + timedelta(seconds=spec.budget.wall_seconds) if spec.budget.wall_seconds else None
        session.execute(sa.update(Job).where(Job.id == job.id, Job.status == "queued")
                        .values(status="running", started_at=start, deadline=deadline, worker=worker))
    session.commit()
    return job.id


def asked_device_class() -> sa.ColumnElement[str]:
    """A job's `training.device_class` read in SQL (a JSON path on SQLite and PostgreSQL alike), `any` if absent."""
    return sa.func.coalesce(Job.spec[("training", "device_class")].as_string(), "any")


def device_classes_asked(session: Session) -> bool:
    """Whether some unfinished job asks for a device class by name (so a worker must know its own to claim it)."""
    found = session.scalar(sa.select(Job.id).where(Job.status.in_(UNFINISHED), asked_device_class() != "any")
                           .limit(1))
    session.commit()
    return found is not None


def fail_job(session: Session, job_id: int, exc: BaseException) -> str:
    """Mark an unfinished job failed with a one-line reason (stored, shown by `nas jobs`, the API and the
    dashboard) and return the reason; a worker calls this when a job cannot run at all (a dataset that does
    not load, a warm-start string that does not parse) and then goes on with other jobs."""
    first = (str(exc).strip().splitlines() or [""])[0]
    reason = f"{type(exc).__name__}: {first}"[:1000]
    session.rollback()
    session.execute(sa.update(Job).where(Job.id == job_id, Job.status.in_(("queued", "running")))
                    .values(status="failed", error=reason, finished_at=utcnow(), updated_at=utcnow()))
    session.commit()
    return reason


def reserve_trial(session: Session, job_id: int) -> bool:
    """Take one unit of the job's trial budget; False when none is left, time is up or the job stopped."""
    result = session.execute(
        sa.update(Job).where(Job.id == job_id, Job.status == "running",
                             sa.or_(Job.trials_budget.is_(None), Job.trials_reserved < Job.trials_budget),
                             sa.or_(Job.deadline.is_(None), Job.deadline > utcnow()))
        .values(trials_reserved=Job.trials_reserved + 1, updated_at=utcnow()))
    session.commit()
    return bool(getattr(result, "rowcount", 0) == 1)


def release_trial(session: Session, job_id: int, number: int, reason: str) -> bool:
    """Mark a lost trial stale and give its budget unit back, so that its parameters are re-queued; False when
    there is nothing to re-queue (it already failed or was released). Optuna has already failed the trial, so
    a result its worker recorded here just before (and can no longer tell) is taken back with it, uncounted:
    our table and Optuna's then agree. Trial row first, then the job row, as `trial_records.settle_trial` does."""
    marked = session.execute(sa.update(Trial).where(Trial.job_id == job_id, Trial.number == number,
                                                    Trial.state == "running")
                             .values(state="stale", finished_at=utcnow(), error=reason))
    done = 0
    if getattr(marked, "rowcount", 0) == 0:
        late = session.execute(sa.update(Trial).where(Trial.job_id == job_id, Trial.number == number,
                                                      Trial.state.in_(("complete", "stopped", "infeasible")))
                               .values(state="stale", finished_at=utcnow(), error=f"{reason}; late result dropped"))
        done = getattr(late, "rowcount", 0)
        if done == 0 and session.scalar(
                sa.select(Trial.id).where(Trial.job_id == job_id, Trial.number == number)) is not None:
            session.rollback()
            return False
    session.execute(sa.update(Job).where(Job.id == job_id, Job.trials_reserved > 0)
                    .values(trials_reserved=Job.trials_reserved - 1, trials_done=Job.trials_done - done,
                            updated_at=utcnow()))
    session.commit()
    return True


def job_of_study(session: Session, study_name: str) -> int | None:
    return session.scalar(sa.select(Job.id).where(Job.study_name == study_name))


def search_over(session: Session, job_id: int) -> bool:
    """The running job's budget or time is spent and no trial runs: its trials' results are final."""
    session.expire_all()
    job = session.get(Job, job_id)
    if job is None or job.status != "running":
        return False
    over = _spent(job) and _running(session, job_id) == 0
    session.commit()
    return over


def _running(session: Session, job_id: int) -> int:
    return session.scalar(sa.select(sa.func.count()).where(Trial.job_id == job_id, Trial.state == "running")) or 0


def _spent(job: Job) -> bool:
    """The job's trial budget or its time is used up."""
    deadline = utc(job.deadline)
    out_of_trials = job.trials_budget is not None and job.trials_done >= job.trials_budget
    return out_of_trials or (deadline is not None and utcnow() >= deadline)


def finish_if_done(session: Session, job_id: int, grace_s: float) -> bool:
    """Close the job once its budget or time is spent and no trial runs; True when it is finished.

    A unit reserved by a worker that died before starting its trial is given back after `grace_s` of quiet."""
    session.expire_all()
    job = session.get(Job, job_id)
    if job is None or job.status != "running":
        return True
    running = _running(session, job_id)
    if _spent(job) and running == 0:
        if trial_records.confirmation_pending(session, job_id):  # a one-shot front still being trained from scratch
            session.commit()
            return False
        ok = session.scalar(sa.select(sa.func.count()).where(
            Trial.job_id == job_id, Trial.state.in_(("complete", "stopped", "infeasible")))) or 0
        session.execute(sa.update(Job).where(Job.id == job_id, Job.status == "running").values(
            status="completed" if ok else "failed", finished_at=utcnow(),
            error=None if ok else "every trial failed; see the trials' errors"))
        session.commit()
        return True
    idle_since = utc(job.updated_at) or utcnow()
    if running == 0 and job.trials_reserved > job.trials_done and utcnow() - idle_since > timedelta(seconds=grace_s):
        session.execute(sa.update(Job).where(Job.id == job_id, Job.trials_reserved == job.trials_reserved)
                        .values(trials_reserved=job.trials_done, updated_at=utcnow()))
    session.commit()
    return False
