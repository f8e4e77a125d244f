"""`nas worker` processes on PostgreSQL: sharing one job, and losing nothing when one is killed with SIGKILL.

The jobs use the cheap accuracy estimator; the SIGKILL test makes each candidate pretend to train for a
few seconds (`training.simulate_seconds`) so that the kill lands mid-trial.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from nas_service.db import Job, Trial, make_engine, session_factory, upgrade_head
from nas_service.services import jobs
from nas_service.spec import parse_spec
from tests.test_search_service import latency_limit

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
SLOTS = pytest.mark.parametrize("slots", [1, 3], ids=["one-slot", "three-slots"])
"""Each worker with one candidate in flight (`training.concurrency`), and with several."""


@pytest.fixture()
def pg(postgres_url: str) -> Iterator[tuple[str, sa.Engine]]:
    engine = make_engine(postgres_url)
    upgrade_head(engine)
    yield postgres_url, engine
    engine.dispose()


def spawn(url: str, name: str, tmp_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NAS_DATABASE_URL": url, "NAS_HEARTBEAT_INTERVAL_S": "1", "NAS_HEARTBEAT_GRACE_S": "3",
           "NAS_POLL_INTERVAL_S": "0.2", "NAS_ARTIFACTS_DIR": str(tmp_path / "artifacts")}
    command = [sys.executable, "-c", "from nas_service.cli import main; main()", "worker", "--name", name, *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(proc: subprocess.Popen[bytes]) -> None:
    """Block until the worker says it is up (`worker <name> on <url>`, printed once it polls for jobs)."""
    assert proc.stderr is not None
    seen = []
    while line := proc.stderr.readline():
        if line.startswith(b"worker "):
            return
        seen.append(line.decode())
    raise AssertionError(f"the worker left before it was up: {''.join(seen)}")


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        time.sleep(0.1)


@SLOTS
def test_concurrent_workers_share_a_job_without_duplicates_or_losses(pg: tuple[str, sa.Engine],
                                                                      tmp_path: Path, slots: int) -> None:
    url, engine = pg
    sessions = session_factory(engine)
    # All three are polling before the job exists, and each trial pretends to train for a moment, so sharing does
    # not hang on which worker happens to start first on a loaded machine.
    workers = [spawn(url, f"w{i}", tmp_path) for i in range(3)]
    try:
        for proc in workers:
            wait_ready(proc)
        with sessions() as session:
            job = jobs.create_job(session, parse_spec({
                "training": {"scorer": "estimate", "simulate_seconds": 0.3, "epochs": 1, "concurrency": slots},
                "budget": {"trials": 30}, "constraints": {"max_latency_ms": latency_limit()}}))

        def finished() -> bool:
            with sessions() as session:
                return jobs.get_job(session, job.id).status not in ("queued", "running")

        wait_until(finished, timeout_s=180)
        for proc in workers:
            proc.send_signal(signal.SIGTERM)  # finish the trial in flight (none is left), then leave
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()
    finally:
        for proc in workers:
            proc.kill()

    with sessions() as session:
        assert jobs.get_job(session, job.id).status == "completed"
        rows = session.scalars(sa.select(Trial).where(Trial.job_id == job.id)).all()
        study_name = session.get(Job, job.id).study_name  # type: ignore[union-attr]
    assert sorted(r.number for r in rows) == list(range(30))  # every number once
    assert {r.state for r in rows} <= {"complete", "infeasible"}, [
        (r.number, r.state, r.error) for r in rows if r.state not in ("complete", "infeasible")]
    assert len({r.worker for r in rows}) >= 2, "the workers should have shared the job"
    study = optuna.load_study(study_name=study_name, storage=url)
    optuna_trials = study.get_trials(deepcopy=False)
    assert len(optuna_trials) == 30 and all(t.state == optuna.trial.TrialState.COMPLETE for t in optuna_trials)
    by_number = {r.number: r for r in rows}
    for t in optuna_trials:  # no result lost between Optuna and the service's tables
        assert by_number[t.number].accuracy == pytest.approx(t.values[0])
        assert by_number[t.number].latency_ms == pytest.approx(t.values[1])


@SLOTS
def test_a_worker_killed_mid_trial_loses_nothing_finished(pg: tuple[str, sa.Engine], tmp_path: Path,
                                                          slots: int) -> None:
    url, engine = pg
    sessions = session_factory(engine)
    budget = 4 * slots
    with sessions() as session:
        job = jobs.create_job(session, parse_spec({
            "training": {"scorer": "estimate", "simulate_seconds": 1.5, "epochs": 3, "early_stopping": False,
                         "concurrency": slots},
            "budget": {"trials": budget}, "constraints": {"max_params": None}}))

    def trials(state: str) -> list[tuple[int, float | None, float | None]]:
        with sessions() as session:
            return [(t.number, t.accuracy, t.latency_ms) for t in session.scalars(
                sa.select(Trial).where(Trial.job_id == job.id, Trial.state == state).order_by(Trial.number))]

    first = spawn(url, "doomed", tmp_path)
    try:
        wait_until(lambda: len(trials("complete")) >= 1 and len(trials("running")) == slots, timeout_s=60)
        finished_before = trials("complete")
        killed = [number for number, _, _ in trials("running")]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()

    second = spawn(url, "survivor", tmp_path, "--exit-when-idle")  # a restarted worker resumes the job
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err.decode()

    with sessions() as session:
        view = jobs.get_job(session, job.id)
        rows = {t.number: t for t in session.scalars(sa.select(Trial).where(Trial.job_id == job.id))}
    assert view.status == "completed" and view.trials_done == budget
    for killed_number in killed:  # every trial in flight when the worker died
        assert rows[killed_number].state == "stale"
        retries = [t for t in rows.values() if t.retry_of == killed_number]
        assert len(retries) == 1 and retries[0].state == "complete"  # re-queued with the same parameters
    assert len(trials("complete")) == budget  # the budget is met
    assert set(finished_before) <= set(trials("complete"))  # nothing finished was lost
    study = optuna.load_study(study_name=session_factory(engine)().get(Job, job.id).study_name,  # type: ignore[union-attr]
                              storage=url)
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    for killed_number in killed:
        assert states[killed_number] == optuna.trial.TrialState.FAIL
    for retry in (t for t in rows.values() if t.retry_of is not None):
        assert states[retry.number] == optuna.trial.TrialState.COMPLETE


def cut_connections(url: str) -> int:
    """Terminate every other session on this test's database (never another database)."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        cut = conn.scalars(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all()
    admin.dispose()
    return len(cut)


@SLOTS
def test_cut_database_connections_mid_job_lose_and_fail_nothing(pg: tuple[str, sa.Engine], tmp_path: Path,
                                                                slots: int) -> None:
    """Connections killed under running trials (as a database restart or failover does): the workers wait the
    outage out, a trial caught mid-write is re-queued rather than failed, and the budget is met exactly."""
    url, engine = pg
    sessions = session_factory(engine)
    budget = 24
    with sessions() as session:
        job = jobs.create_job(session, parse_spec({
            "training": {"scorer": "estimate", "simulate_seconds": 0.4, "epochs": 2, "early_stopping": False,
                         "concurrency": slots},
            "budget": {"trials": budget}, "constraints": {"max_params": None}}))

    def done() -> int:
        with sessions() as session:
            return jobs.get_job(session, job.id).trials_done

    workers = [spawn(url, f"w{i}", tmp_path, "--exit-when-idle") for i in range(2)]
    try:
        wait_until(lambda: done() >= 4, timeout_s=120)
        cuts = 0
        for _ in range(16):  # 4 s of cuts: some land inside a statement, not only on idle pooled connections
            cuts += cut_connections(url)
            time.sleep(0.25)
        assert cuts > 0
        for proc in workers:
            _, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err.decode()
    finally:
        for proc in workers:
            proc.kill()

    with sessions() as session:
        view = jobs.get_job(session, job.id)
        rows = session.scalars(sa.select(Trial).where(Trial.job_id == job.id)).all()
        study_name = session.get(Job, job.id).study_name  # type: ignore[union-attr]
    assert view.status == "completed", view.error
    states = [r.state for r in rows]
    assert states.count("complete") == budget and view.trials_done == budget
    assert set(states) <= {"complete", "stale"}, states  # nothing failed, nothing left running
    assert len({r.number for r in rows}) == len(rows)
    optuna_trials = {t.number: t.state for t in optuna.load_study(study_name=study_name, storage=url).get_trials()}
    for r in rows:  # our finished trials and Optuna's agree
        assert (optuna_trials[r.number] == optuna.trial.TrialState.COMPLETE) == (r.state == "complete")


@pytest.mark.tf
@pytest.mark.long
def test_a_worker_killed_while_its_slots_train_leaves_no_training_process(pg: tuple[str, sa.Engine],
                                                                        tmp_path: Path) -> None:
    """Real training in two slots, each in a process of its own: SIGKILL the worker mid-training and its
    training processes die with it; a restarted worker re-queues both trials and meets the budget."""
    from tests.controller.test_training_slots import training_job, training_processes

    url, engine = pg
    sessions = session_factory(engine)
    with sessions() as session:
        job = jobs.create_job(session, training_job(2, epochs=3, early_stopping=False))

    def running() -> int:
        with sessions() as session:
            return len(session.scalars(sa.select(Trial).where(Trial.job_id == job.id, Trial.state == "running")).all())

    first = spawn(url, "doomed", tmp_path)
    try:
        wait_until(lambda: running() == 2 and len(training_processes(first.pid)) == 2, timeout_s=240)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    wait_until(lambda: training_processes() == [], timeout_s=15)
    second = spawn(url, "survivor", tmp_path, "--exit-when-idle")
    _, err = second.communicate(timeout=600)
    assert second.returncode == 0, err.decode()
    with sessions() as session:
        view = jobs.get_job(session, job.id)
        states = [t.state for t in session.scalars(sa.select(Trial).where(Trial.job_id == job.id))]
    assert view.status == "completed" and states.count("complete") == 4 and states.count("stale") == 2
    assert training_processes() == []
