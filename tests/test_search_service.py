"""Search jobs end to end on SQLite and PostgreSQL with the cheap accuracy estimator (no TensorFlow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nas_service.config import Settings
from nas_service.controller.batched_storage import BatchedStorage
from nas_service.controller.pareto import Point, dominates
from nas_service.controller.scoring import EstimateScorer, Score, arch_hash
from nas_service.controller.study import make_storage, open_study
from nas_service.db import Candidate, Job, Trial, make_engine, upgrade_head
from nas_service.db.migrate import VERSION_TABLE, check
from nas_service.services import jobs
from nas_service.spec import JobSpec, parse_spec
from nas_service.worker import Worker
from search_spaces import ArchSpec, load_space


def latency_limit(quantile: float = 0.5) -> float:
    """A latency limit that this share of the default space's random members meet, whatever the device
    profile's scale."""
    from latency_models import predict_total_ms

    spec = JobSpec()
    archs = load_space(spec.space).random_members(200, resolution=spec.resolution or 32)
    return float(np.quantile(predict_total_ms(archs, spec.device), quantile))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nas.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture()
def worker(db_url: str, tmp_path: Path) -> Iterator[Worker]:
    w = Worker(Settings(database_url=db_url, artifacts_dir=tmp_path / "artifacts"), name="local")
    yield w
    w.close()


def test_migrations_share_the_database_with_optuna_and_do_not_drift(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade_head(engine)
    optuna.create_study(storage=make_storage(db_url, heartbeat_interval_s=5, grace_s=10), study_name="s")
    upgrade_head(engine)  # idempotent, and Optuna's tables do not bother it
    check(engine)  # `alembic check`: models and migrations agree; Optuna's tables are ignored
    tables = set(sa.inspect(engine).get_table_names())
    assert {"nas_jobs", "nas_candidates", "nas_trials", VERSION_TABLE, "studies", "trials", "alembic_version"} <= tables
    engine.dispose()


def _estimate_spec(trials: int, slots: int = 1, training: dict[str, object] | None = None,
                   **extra: object) -> dict[str, object]:
    """A job of the cheap estimator; `slots` candidates in flight per worker (`training.concurrency`)."""
    return {"training": {"scorer": "estimate", "concurrency": slots, **(training or {})}, "budget": {"trials": trials},
            "seed": 3, **extra}


SLOTS = pytest.mark.parametrize("slots", [1, 3], ids=["one-slot", "three-slots"])
"""The search machinery's tests run with one candidate in flight per worker and with several."""


@SLOTS
def test_search_records_every_trial_and_keeps_the_front(worker: Worker, slots: int) -> None:
    limit = latency_limit()
    spec = parse_spec(_estimate_spec(24, slots, constraints={"max_latency_ms": limit}))
    with worker.sessions() as session:
        job = jobs.create_job(session, spec)
    worker.run(job_id=job.id, exit_when_idle=True)

    with worker.sessions() as session:
        view = jobs.get_job(session, job.id)
        assert view.status == "completed" and view.trials_done == 24
        trials = session.scalars(sa.select(Trial).where(Trial.job_id == job.id)).all()
        assert sorted(t.number for t in trials) == list(range(24))
        assert {t.state for t in trials} <= {"complete", "infeasible"}
        candidates = session.scalars(sa.select(Candidate).where(Candidate.job_id == job.id)).all()
        infeasible = [c for c in candidates if c.violations]
        assert infeasible, "the latency limit should rule some candidates out"
        assert all(c.status == "infeasible" and c.accuracy is None for c in infeasible)  # never trained
        trained = [Point(c.id, (c.accuracy, c.latency_ms)) for c in candidates if c.status == "trained"]
        expected = {p.key for p in trained if not any(dominates(q.values, p.values) for q in trained)}
        front = jobs.get_front(session, job.id)
        assert {p.candidate_id for p in front} == expected
        assert all(p.latency_ms <= limit for p in front)
        knee = jobs.knee(session, job.id)
        assert knee is not None and knee.candidate_id in expected
        best = jobs.best_under(session, job.id, front[-1].latency_ms)
        assert best is not None and best.accuracy == max(p.accuracy for p in front)

    study = optuna.load_study(study_name=_study_name(worker, job.id), storage=worker.ctx.storage)
    finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(finished) == 24
    feasible = [t for t in finished if all(v <= 0 for v in t.constraints.values())]
    assert 0 < len(feasible) < 24 and all("latency_ms" in t.constraints for t in finished)


def _study_name(worker: Worker, job_id: int) -> str:
    with worker.sessions() as session:
        return str(session.get(Job, job_id).study_name)  # type: ignore[union-attr]


def test_a_repeated_architecture_is_not_scored_again(worker: Worker) -> None:
    spec = parse_spec(_estimate_spec(3))
    with worker.sessions() as session:
        job = jobs.create_job(session, spec)
    space = load_space(spec.space)
    params = space.params_for(space.default_small(10).with_resolution(spec.resolution or 32),
                              resolution=spec.resolution)
    study = open_study(worker.ctx.storage, _study_name(worker, job.id), spec, seed=0)
    study.enqueue_trial(params)
    study.enqueue_trial(params)
    worker.run(job_id=job.id, exit_when_idle=True)
    with worker.sessions() as session:
        page = jobs.list_trials(session, job.id)
        first, second = page.items[0], page.items[1]
        assert first.candidate_id == second.candidate_id and not first.reused and second.reused
        assert (first.accuracy, first.latency_ms) == (second.accuracy, second.latency_ms)
        assert session.scalar(sa.select(sa.func.count()).select_from(Candidate).where(Candidate.job_id == job.id)) == 2


def test_trials_page_sort_owner_and_cancel(worker: Worker) -> None:
    with worker.sessions() as session:
        mine = jobs.create_job(session, parse_spec(_estimate_spec(8, mode="target",
                                                                  target={"latency_ms": 0.5, "reward": "tunas"})),
                               owner="ada")
        other = jobs.create_job(session, parse_spec(_estimate_spec(8)), owner="bob")
    worker.run(job_id=mine.id, exit_when_idle=True)
    session: Session
    with worker.sessions() as session:
        page = jobs.list_trials(session, mine.id, owner="ada", offset=2, limit=3, sort="accuracy", descending=True)
        assert page.total == 8 and len(page.items) == 3 and page.offset == 2
        accuracies = [t.accuracy for t in jobs.list_trials(session, mine.id, sort="accuracy", descending=True).items]
        assert accuracies == sorted(accuracies, reverse=True)
        assert all(t.reward is not None for t in page.items)  # target mode records the TuNAS reward
        with pytest.raises(jobs.NotFoundError):
            jobs.get_job(session, mine.id, owner="bob")  # another user's job is not found
        assert [j.id for j in jobs.list_jobs(session, owner="bob").items] == [other.id]
        assert jobs.cancel_job(session, other.id, owner="bob").status == "cancelled"
        with pytest.raises(jobs.JobStateError):
            jobs.cancel_job(session, other.id)


@SLOTS
def test_early_stopped_trials_are_recorded_apart_and_warm_starts_are_labelled(worker: Worker, slots: int) -> None:
    """Simulated 4-epoch training: stopped trials get their own state, never join the front, and every trial and
    front member says whether the warm start or the sampler proposed it."""
    spec = parse_spec(_estimate_spec(30, slots, initial=["small"], sampler="random",
                                     training={"epochs": 4, "simulate_seconds": 0.004}))
    with worker.sessions() as session:
        job = jobs.create_job(session, spec)
    worker.run(job_id=job.id, exit_when_idle=True)
    with worker.sessions() as session:
        trials = jobs.list_trials(session, job.id, limit=100).items
        counts = jobs.get_job(session, job.id).trial_counts
        front = jobs.get_front(session, job.id)
        stopped = session.scalars(sa.select(Candidate).where(Candidate.job_id == job.id,
                                                             Candidate.stopped_early.is_(True))).all()
    assert counts.get("stopped", 0) >= 1 and sum(counts.values()) == 30
    assert {t.candidate_id for t in trials if t.state == "stopped"} == {c.id for c in stopped}
    assert all(c.epochs_trained in (2, 3) for c in stopped)  # never after epoch 1 (grace), never the last epoch
    assert not any(c.on_front for c in stopped)
    assert [t.origin for t in trials] == ["initial"] + ["sampler"] * 29
    assert {p.origin for p in front} <= {"initial", "sampler"} and front


def test_jobs_that_cannot_run_fail_with_their_reason_and_the_worker_goes_on(worker: Worker, tmp_path: Path) -> None:
    """Jobs stored with datasets that do not load (as an older client could queue them) fail one by one with a
    one-line reason; the same worker then completes a good job."""
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((4, 8, 8)))
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    bad = {str(tmp_path / "missing.npz"): "not found", str(tmp_path / "partial.npz"): "lacks y_train",
           str(tmp_path / "corrupt.npz"): "cannot be read as a .npz"}
    with worker.sessions() as session:
        ids = {jobs.create_job(session, parse_spec(_estimate_spec(2, dataset=name))).id: why
               for name, why in bad.items()}
        good = jobs.create_job(session, parse_spec(_estimate_spec(3))).id
    worker.run(exit_when_idle=True)
    with worker.sessions() as session:
        for job_id, why in ids.items():
            view = jobs.get_job(session, job_id)
            assert view.status == "failed" and view.error is not None and why in view.error
            assert view.error.startswith("DatasetError: ") and "\n" not in view.error
        assert jobs.get_job(session, good).status == "completed"


def test_cpu_fallback_and_estimated_accuracy_are_marked(worker: Worker) -> None:
    """mobilenet_v3 candidates with hard-swish leave ops to the host CPU on the Edge TPU: the share is stored and
    shown on the front, the plot columns and the candidate; an estimator job says its accuracies are estimates."""
    from nas_service.services.plot import trial_points

    spec = parse_spec(_estimate_spec(12, space="mobilenet_v3", resolution=32))
    with worker.sessions() as session:
        job = jobs.create_job(session, spec)
    worker.run(job_id=job.id, exit_when_idle=True)
    with worker.sessions() as session:
        assert jobs.get_job(session, job.id).estimated
        points = trial_points(session, job.id)
        candidates = session.scalars(sa.select(Candidate).where(Candidate.job_id == job.id)).all()
        by_id = {c.id: c for c in candidates}
        assert any(points.cpu) and len(points.cpu) == len(points.trial)
        assert all(flag == (by_id[cid].cpu_ms > 0) for cid, flag in zip(points.candidate, points.cpu, strict=True)
                   if cid is not None)
        for p in jobs.get_front(session, job.id):
            c = by_id[p.candidate_id]
            assert p.cpu_fraction == round(c.cpu_ms / c.latency_ms, 4) and 0 <= p.cpu_fraction <= 1
        cid = next(c.id for c in candidates if c.cpu_ms > 0)
        view = jobs.get_candidate(session, job.id, cid)
        assert view.estimated and view.cpu_fraction > 0
        layers = by_id[cid].latency["layers"]
        assert by_id[cid].cpu_ms == pytest.approx(sum(lay["ms"] for lay in layers if lay["bound"] == "cpu"), abs=1e-4)


class FlakyScorer(EstimateScorer):
    """The estimator, except that training raises for every other architecture (by hash)."""

    def score(self, arch: ArchSpec, **kwargs: Any) -> Score:
        if int(arch_hash(arch)[:2], 16) % 2:
            raise RuntimeError("out of memory while training (simulated)")
        return super().score(arch, **kwargs)


def test_failed_trials_keep_their_candidate_and_are_plotted_apart(db_url: str, tmp_path: Path) -> None:
    from nas_service.services.plot import trial_points

    worker = Worker(Settings(database_url=db_url, artifacts_dir=tmp_path / "a"), name="local", scorer=FlakyScorer())
    with worker.sessions() as session:
        job = jobs.create_job(session, parse_spec(_estimate_spec(10)))
    worker.run(job_id=job.id, exit_when_idle=True)
    with worker.sessions() as session:
        points = trial_points(session, job.id)
        failed = jobs.list_trials(session, job.id, state="failed").items
        assert jobs.get_job(session, job.id).status == "completed"
    worker.close()
    assert failed and all(t.candidate_id is not None and t.latency_ms and "out of memory" in (t.error or "")
                          for t in failed)
    plotted = {n for n, f in zip(points.trial, points.failed, strict=True) if f}
    assert plotted == {t.number for t in failed}
    assert all(points.accuracy[i] is None for i, f in enumerate(points.failed) if f)


def test_a_long_lived_worker_keeps_no_finished_job_in_memory(worker: Worker) -> None:
    """Found by the reliability soak: Optuna's storage cache held every trial of every job a worker had run
    (`nas serve --workers 4` grew by 290 MB in 10 minutes of 25-trial jobs)."""
    with worker.sessions() as session:
        ids = [jobs.create_job(session, parse_spec(_estimate_spec(6))).id for _ in range(3)]
    worker.run(exit_when_idle=True)
    with worker.sessions() as session:
        assert all(jobs.get_job(session, i).status == "completed" for i in ids)
    assert isinstance(worker.ctx.storage, BatchedStorage)
    assert worker.ctx.storage.cached_study_ids == []


def test_optuna_studies_name_their_objectives_and_carry_arch_and_origin(db_url: str, worker: Worker) -> None:
    """What Optuna's own tools (optuna-dashboard opens our storage as it is) read: objective names, and per trial
    the architecture string and where it came from."""
    engine = make_engine(db_url)
    upgrade_head(engine)
    with Session(engine) as session:
        pareto_job = jobs.create_job(session, parse_spec({"training": {"scorer": "estimate"}, "budget": {"trials": 4},
                                                          "objectives": ["accuracy", "latency_ms", "params"]}))
        target_job = jobs.create_job(session, parse_spec({"training": {"scorer": "estimate"}, "budget": {"trials": 2},
                                                          "mode": "target", "target": {"latency_ms": 1.5}}))
    for job in (pareto_job, target_job):
        worker.run(job_id=job.id, exit_when_idle=True)
    with Session(engine) as session:
        names = {job.id: jobs.study_name(session, job.id) for job in (pareto_job, target_job)}
        archs = {t.number: c.arch for t, c in session.execute(
            sa.select(Trial, Candidate).join(Candidate, Candidate.id == Trial.candidate_id)
            .where(Trial.job_id == pareto_job.id))}
    engine.dispose()
    study = optuna.load_study(study_name=names[pareto_job.id], storage=db_url)
    assert study.metric_names == ["accuracy", "latency_ms", "params"]
    assert optuna.load_study(study_name=names[target_job.id], storage=db_url).metric_names == ["reward"]
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 4
    assert {t.number: t.user_attrs["arch"] for t in trials} == archs
    assert [t.user_attrs["origin"] for t in sorted(trials, key=lambda t: t.number)] == [
        "initial", "sampler", "sampler", "sampler"]  # the default warm start first
