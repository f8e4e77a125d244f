"""A trial's rows: its trial row, the job's candidate for its architecture, and the job's front flags.

The functions that end in a commit say so; the others write in the caller's session, so that a trial's
outcome, its candidate's training result and the front change in one transaction (`settle_trial` first:
bumping the job row takes its row lock on PostgreSQL, and the write lock on SQLite, before the front is
read, so front updates of concurrent workers never interleave).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nas_service.db.models import Candidate, Job, Trial, utcnow


def start_trial(session: Session, job_id: int, number: int, *, worker: str, enqueued: bool,
                retry_of: int | None) -> str:
    """Add the running trial row and commit; returns its origin: `initial` for the warm start's enqueued
    trials and their retries, `sampler` for the rest."""
    origin = "sampler"
    if enqueued:
        origin = "initial" if retry_of is None else session.scalar(
            sa.select(Trial.origin).where(Trial.job_id == job_id, Trial.number == retry_of)) or "sampler"
    session.add(Trial(job_id=job_id, number=number, state="running", worker=worker, retry_of=retry_of,
                      origin=origin))
    session.commit()
    return origin


def find_candidate(session: Session, job_id: int, arch_hash: str) -> Candidate | None:
    return session.scalars(sa.select(Candidate).where(Candidate.job_id == job_id,
                                                      Candidate.arch_hash == arch_hash)).first()


def add_candidate(session: Session, candidate: Candidate) -> Candidate:
    """Add and commit a new candidate; the one another worker added a moment earlier when it won."""
    session.add(candidate)
    try:
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
        found = find_candidate(session, candidate.job_id, candidate.arch_hash)
        if found is None:
            raise
        return found
    return candidate


def set_candidate_status(session: Session, candidate_id: int, status: str) -> None:
    """Set and commit a candidate's status (training, infeasible, failed)."""
    session.execute(sa.update(Candidate).where(Candidate.id == candidate_id).values(status=status))
    session.commit()


def front_members(session: Session, job_id: int) -> list[Candidate]:
    return list(session.scalars(sa.select(Candidate).where(Candidate.job_id == job_id,
                                                           Candidate.on_front.is_(True))))


def settle_trial(session: Session, job_id: int, number: int, fields: dict[str, Any]) -> bool:
    """Write a running trial's outcome and count it done on the job; False (nothing written) when it no
    longer runs: an earlier attempt whose answer was lost already recorded it, or it was released as stale."""
    result = session.execute(sa.update(Trial).where(Trial.job_id == job_id, Trial.number == number,
                                                    Trial.state == "running")
                             .values(finished_at=utcnow(), **fields))
    if getattr(result, "rowcount", 0) == 0:
        return False
    session.execute(sa.update(Job).where(Job.id == job_id).values(trials_done=Job.trials_done + 1,
                                                                  updated_at=utcnow()))
    return True


def save_training(session: Session, candidate_id: int, result: dict[str, Any]) -> None:
    session.execute(sa.update(Candidate).where(Candidate.id == candidate_id).values(**result))


def move_front(session: Session, joined: int, removed: Iterable[int]) -> None:
    """Put `joined` on the job's front and take the candidates it dominates off."""
    session.execute(sa.update(Candidate).where(Candidate.id == joined).values(on_front=True))
    if gone := list(removed):
        session.execute(sa.update(Candidate).where(Candidate.id.in_(gone)).values(on_front=False))


def trial_and_candidate(session: Session, job_id: int, number: int) -> tuple[Trial, Candidate | None]:
    trial = session.scalars(sa.select(Trial).where(Trial.job_id == job_id, Trial.number == number)).one()
    return trial, session.get(Candidate, trial.candidate_id) if trial.candidate_id else None


# --- confirming a one-shot front (see `controller.oneshot.confirm_front`) --------------------------------------


def claim_confirmation(session: Session, job_id: int, stale_s: float) -> tuple[int, str] | None:
    """Claim one member of the job's one-shot front for training from scratch, and commit: (id, arch), or None
    when every member is claimed. One conditional UPDATE decides, so each member is trained once however many
    workers ask. A member whose claimer has not reported an epoch (`touch_confirmation`) for `stale_s` seconds
    is taken over: its worker died."""
    while True:
        stale = sa.and_(Candidate.fidelity == "confirming",
                        Candidate.updated_at < utcnow() - timedelta(seconds=stale_s))
        claimable = sa.or_(sa.and_(Candidate.on_front.is_(True), Candidate.fidelity == "oneshot"), stale)
        found = session.execute(sa.select(Candidate.id, Candidate.arch).where(
            Candidate.job_id == job_id, claimable).order_by(Candidate.latency_ms).limit(1)).first()
        if found is None:
            session.commit()
            return None
        won = session.execute(sa.update(Candidate).where(Candidate.id == found.id, claimable)  # re-checked under
                              .values(fidelity="confirming", updated_at=utcnow()))           # the row's lock
        session.commit()
        if getattr(won, "rowcount", 0) == 1:
            return int(found.id), str(found.arch)


def touch_confirmation(session: Session, candidate_id: int) -> None:
    """The claimer of a member is alive (an epoch ended); commits."""
    session.execute(sa.update(Candidate).where(Candidate.id == candidate_id, Candidate.fidelity == "confirming")
                    .values(updated_at=utcnow()))
    session.commit()


def release_confirmation(session: Session, candidate_id: int) -> None:
    """Give a claimed member back (its training failed or was interrupted), and commit."""
    session.execute(sa.update(Candidate).where(Candidate.id == candidate_id, Candidate.fidelity == "confirming")
                    .values(fidelity="oneshot"))
    session.commit()


def record_confirmation(session: Session, candidate_id: int, result: dict[str, Any]) -> None:
    """A claimed member's standalone result, its one-shot accuracy kept beside; commits."""
    job_id = session.scalar(sa.select(Candidate.job_id).where(Candidate.id == candidate_id))
    session.execute(sa.update(Job).where(Job.id == job_id).values(updated_at=utcnow()))  # cached reads see it
    session.execute(sa.update(Candidate).where(Candidate.id == candidate_id, Candidate.fidelity == "confirming")
                    .values(oneshot_accuracy=Candidate.accuracy, fidelity="standalone", **result))
    session.commit()


def confirmation_pending(session: Session, job_id: int) -> bool:
    """Whether members of the job's one-shot front wait for, or are in, training from scratch."""
    return session.scalar(sa.select(sa.func.count()).where(
        Candidate.job_id == job_id, sa.or_(Candidate.fidelity == "confirming",
                                           sa.and_(Candidate.fidelity == "oneshot", Candidate.on_front.is_(True))))
    ) != 0


def finish_confirmation(session: Session, job_id: int, choose: Callable[[list[Candidate]], set[int]]) -> bool:
    """Once no member is pending: put `choose(confirmed candidates)` (the ids of their Pareto front) on the job's
    front, under the job's row lock, so two workers finishing together write the same front one after the other;
    commits. True when the front is the confirmed one."""
    session.execute(sa.update(Job).where(Job.id == job_id).values(updated_at=utcnow()))
    if confirmation_pending(session, job_id):
        session.commit()
        return False
    confirmed = list(session.scalars(sa.select(Candidate).where(
        Candidate.job_id == job_id, Candidate.fidelity == "standalone", Candidate.status == "trained")))
    keep = choose(confirmed)
    session.execute(sa.update(Candidate).where(Candidate.job_id == job_id, Candidate.on_front.is_(True))
                    .values(on_front=False))
    if keep:
        session.execute(sa.update(Candidate).where(Candidate.id.in_(keep)).values(on_front=True))
    session.commit()
    return True
