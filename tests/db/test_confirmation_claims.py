"""Claiming one-shot front members for confirmation: each once, a dead claimer's member taken over."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nas_service.db import Candidate, Job, make_engine, upgrade_head
from nas_service.db import trial_records as records
from nas_service.db.models import utcnow


def _job(session: Session) -> tuple[int, list[int]]:
    job = Job(spec={}, study_name="s", status="running")
    session.add(job)
    session.flush()
    ids = []
    for i, on_front in enumerate((True, True, False)):
        c = Candidate(job_id=job.id, arch=f"a{i}", arch_hash=f"h{i}", status="trained", params=1, macs=1,
                      model_bytes_estimate=1, analysis={}, latency_ms=1.0 + i, latency_profile="p", latency={},
                      accuracy=0.5 + i / 10, on_front=on_front, fidelity="oneshot")
        session.add(c)
        session.flush()
        ids.append(c.id)
    session.commit()
    return job.id, ids


def test_each_member_is_claimed_once_and_a_stale_claim_is_taken_over(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nas.db'}")
    upgrade_head(engine)
    with Session(engine) as session:
        job_id, (fast, slow, off) = _job(session)
        first = records.claim_confirmation(session, job_id, stale_s=900)
        second = records.claim_confirmation(session, job_id, stale_s=900)
        assert first == (fast, "a0") and second == (slow, "a1")  # fastest first; off the front: never
        assert records.claim_confirmation(session, job_id, stale_s=900) is None
        assert records.confirmation_pending(session, job_id)
        records.record_confirmation(session, fast, {"accuracy": 0.9})
        records.touch_confirmation(session, slow)
        assert records.claim_confirmation(session, job_id, stale_s=900) is None  # its claimer is alive
        session.execute(sa.update(Candidate).where(Candidate.id == slow)
                        .values(updated_at=utcnow() - timedelta(seconds=1000)))
        session.commit()
        assert records.claim_confirmation(session, job_id, stale_s=900) == (slow, "a1")  # its claimer died
        records.record_confirmation(session, slow, {"accuracy": 0.4})
        assert not records.confirmation_pending(session, job_id)
        confirmed = {c.id: (c.fidelity, c.accuracy, c.oneshot_accuracy) for c in session.scalars(sa.select(Candidate))}
    assert confirmed[fast] == ("standalone", 0.9, 0.5) and confirmed[slow] == ("standalone", 0.4, 0.6)
    assert confirmed[off] == ("oneshot", 0.7, None)
    engine.dispose()
