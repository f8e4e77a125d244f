"""A trial whose heartbeat went stale (its worker cut off from the database for longer than the grace period)
is failed and re-queued by another worker while its own worker is still finishing it. The late result must be
dropped, not told (Optuna refuses to tell a failed trial, which failed the whole job), and our trial table must
agree with Optuna's whether the other worker struck before the result was recorded or between recording and
telling."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from nas_service.config import Settings
from nas_service.controller.batched_storage import BatchedStorage
from nas_service.db import Job, Trial, make_engine, session_factory, upgrade_head
from nas_service.services import jobs
from nas_service.spec import parse_spec
from nas_service.worker import Worker

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")
GRACE_S = 2


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nas.db'}"
    return str(request.getfixturevalue("postgres_url"))


class RivalStrikesFirst(BatchedStorage):
    """The worker's real storage, except that the first time its first trial reaches `moment` (`record`: trained,
    not yet recorded; `tell`: recorded, not yet told), it waits out the grace period and has the rival worker
    fail the stale trial, as that worker's next trial start does."""

    def __init__(self, storage: BatchedStorage, rival: Worker, study_name: str, moment: str) -> None:
        super().__init__(storage._backend)
        self.rival, self.study_name, self.moment = rival, study_name, moment
        self.struck: int | None = None

    def _strike(self, trial_id: int) -> None:
        if self.struck is not None:
            return
        self.struck = trial_id
        time.sleep(GRACE_S + 1.0)  # one heartbeat at the start (interval 60 s): stale after GRACE_S
        study = optuna.load_study(study_name=self.study_name, storage=self.rival.ctx.storage)
        optuna.storages.fail_stale_trials(study)
        assert study._storage.get_trial(trial_id).state == TrialState.FAIL

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if self.moment == "record" and key == "stopped_early":  # set after training, before `_settle`
            self._strike(trial_id)
        super().set_trial_user_attr(trial_id, key, value)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        if self.moment == "tell" and state.is_finished():
            self._strike(trial_id)
        return super().set_trial_state_values(trial_id, state, values)


@pytest.mark.parametrize("moment", ["record", "tell"])
def test_a_trial_taken_back_while_its_worker_finishes_it_is_dropped_and_rerun(
        db_url: str, tmp_path: Path, moment: str, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(db_url)
    upgrade_head(engine)
    sessions = session_factory(engine)
    budget = 3
    with sessions() as session:  # the default spec (TPE, the `small` warm start) but a cheap scorer
        job = jobs.create_job(session, parse_spec({
            "training": {"scorer": "estimate", "epochs": 1, "early_stopping": False},
            "budget": {"trials": budget}, "constraints": {"max_params": None}}))
        study_name = session.get(Job, job.id).study_name  # type: ignore[union-attr]
    settings = Settings(database_url=db_url, artifacts_dir=tmp_path / "artifacts", heartbeat_interval_s=60,
                        heartbeat_grace_s=GRACE_S, poll_interval_s=0.2)
    worker, rival = Worker(settings, name="w0"), Worker(settings, name="w1")
    assert isinstance(worker.ctx.storage, BatchedStorage)
    storage = worker.ctx.storage = RivalStrikesFirst(worker.ctx.storage, rival, study_name, moment)
    try:
        with caplog.at_level(logging.WARNING):
            worker.run(exit_when_idle=True)
    finally:
        worker.close()
        rival.close()

    with sessions() as session:
        view = jobs.get_job(session, job.id)
        rows = {r.number: r for r in session.scalars(sa.select(Trial).where(Trial.job_id == job.id))}
    engine.dispose()
    assert view.status == "completed", view.error
    assert storage.struck is not None
    optuna_trials = {t.number: t for t in optuna.load_study(study_name=study_name, storage=db_url).get_trials()}
    struck = next(t for t in optuna_trials.values() if t._trial_id == storage.struck)
    assert optuna_trials[struck.number].state == TrialState.FAIL and rows[struck.number].state == "stale"
    assert "late result dropped" in (rows[struck.number].error or "") or moment == "record"
    rerun = [t for t in optuna_trials.values() if t.system_attrs.get("failed_trial") == struck.number]
    assert len(rerun) == 1 and rows[rerun[0].number].state == "complete"  # re-run once, nothing else lost
    assert [r.state for r in rows.values()].count("complete") == budget == view.trials_done
    for number, row in rows.items():  # our table and Optuna's agree
        assert (optuna_trials[number].state == TrialState.COMPLETE) == (row.state == "complete"), number
    assert f"trial {struck.number} was taken back" in caplog.text
