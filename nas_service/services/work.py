"""Running jobs: claiming them, budgeting their trials across workers, and the objective each trial runs.

Several processes, each with `training.concurrency` slots, may work on one job at once; they share its
Optuna study and coordinate through the job row: a trial starts only after `reserve_trial` wins a slot
with one conditional UPDATE, so the trial budget holds however many workers and slots there are. A
worker killed mid-trial leaves a running trial whose heartbeat goes stale; whichever worker next runs
`fail_stale_trials` marks it failed, gives its slot back and re-queues its parameters (Optuna's
`RetryHeartbeatStaleTrialCallback`). A trial cut short by a lost database connection is re-queued the
same way by its own worker, which waits the outage out.
"""

from __future__ import annotations

import itertools
import logging
import threading
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import optuna
import sqlalchemy as sa
from optuna.storages import RetryHeartbeatStaleTrialCallback
from sqlalchemy.orm import Session, sessionmaker

from nas_service.controller import early_stop, pareto
from nas_service.controller.batched_storage import BatchedStorage
from nas_service.controller.latency import predict_latency
from nas_service.controller.rewards import reward
from nas_service.controller.scoring import Scorer, arch_hash, make_scorer
from nas_service.controller.study import open_study
from nas_service.controller.training_process import ProcessTrainScorer, close_scorer
from nas_service.db.engine import is_connection_lost, retry_on_connection_loss
from nas_service.db.models import Candidate, Job, Trial
from nas_service.services.catalog import initial_params
from nas_service.services.views import TrialView, utc
from nas_service.spec import JobSpec
from search_spaces import Analysis, ArchSpec, analyze, encode, load_space

log = logging.getLogger(__name__)
MAX_RETRIES = 3
TrialHook = Callable[[TrialView], None]
T = TypeVar("T")


def now() -> datetime:
    return datetime.now(UTC)


def model_bytes_estimate(analysis: Analysis) -> int:
    """Size of the int8 TFLite file before export: one byte per weight, an int32 bias per output channel
    (batch-norm folds into it), and a flatbuffer overhead of about 300 bytes per layer plus 2 KB."""
    weights = sum(layer.weights for layer in analysis.layers)
    biases = sum(layer.out_channels for layer in analysis.layers if layer.bias or layer.batch_norm)
    return weights + 4 * biases + 300 * len(analysis.layers) + 2048


def num_classes_of(dataset: str, resolution: int | None) -> int:
    from nas_service.trainer.datasets import load_dataset

    return load_dataset(dataset, resolution or 32).num_classes


def claim_job(session: Session, worker: str, *, only: int | None = None) -> int | None:
    """Pick the oldest queued or running job with trials left to start (then any unfinished one) and mark it
    running. On PostgreSQL the row is taken `FOR UPDATE SKIP LOCKED`, so concurrent claims never wait on
    each other; several workers may then share one running job."""
    free = sa.or_(Job.trials_budget.is_(None), Job.trials_reserved < Job.trials_budget)
    query = (sa.select(Job).where(Job.status.in_(("queued", "running")))
             .order_by(sa.case((free, 0), else_=1), Job.id).limit(1).with_for_update(skip_locked=True))
    if only is not None:
        query = query.where(Job.id == only)
    job = session.scalars(query).first()
    if job is None:
        session.rollback()
        return None
    if job.status == "queued":
        spec = JobSpec.model_validate(job.spec)
        start = now()
        deadline = start + timedelta(seconds=spec.budget.wall_seconds) if spec.budget.wall_seconds else None
        session.execute(sa.update(Job).where(Job.id == job.id, Job.status == "queued")
                        .values(status="running", started_at=start, deadline=deadline, worker=worker))
    session.commit()
    return job.id


def fail_job(session: Session, job_id: int, exc: BaseException) -> str:
    """Mark an unfinished job failed with a one-line reason (stored, shown by `nas jobs`, the API and the
    dashboard) and return the reason; a worker calls this when a job cannot run at all (a dataset that does
    not load, a warm-start string that does not parse) and then goes on with other jobs."""
    first = (str(exc).strip().splitlines() or [""])[0]
    reason = f"{type(exc).__name__}: {first}"[:1000]
    session.rollback()
    session.execute(sa.update(Job).where(Job.id == job_id, Job.status.in_(("queued", "running")))
                    .values(status="failed", error=reason, finished_at=now(), updated_at=now()))
    session.commit()
    return reason


def remove_job_files(database_url: str, study_name: str, artifacts: Path) -> str:
    """Delete a deleted job's Optuna study and its artifact folder; says what was removed, for the CLI."""
    import shutil

    try:
        optuna.delete_study(study_name=study_name, storage=database_url)
        removed = ", its Optuna study"
    except KeyError:  # never started: no study
        removed = ""
    if artifacts.is_dir():
        shutil.rmtree(artifacts)
        removed += f" and {artifacts}"
    return removed


def check_runnable(spec: JobSpec) -> None:
    """Raise what a worker would raise at the job's start (dataset, warm start), before the job exists."""
    num_classes_of(spec.dataset, spec.resolution)
    initial_params(spec)


def reserve_trial(session: Session, job_id: int) -> bool:
    """Take one slot of the job's trial budget; False when none is left, time is up or the job stopped."""
    result = session.execute(
        sa.update(Job).where(Job.id == job_id, Job.status == "running",
                             sa.or_(Job.trials_budget.is_(None), Job.trials_reserved < Job.trials_budget),
                             sa.or_(Job.deadline.is_(None), Job.deadline > now()))
        .values(trials_reserved=Job.trials_reserved + 1, updated_at=now()))
    session.commit()
    return bool(getattr(result, "rowcount", 0) == 1)


# Re-queues a lost trial's parameters as a waiting Optuna trial that remembers the first one's number
# (experimental since Optuna 2.8, and what workers have relied on since).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    RETRY = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)


def release_trial(session: Session, job_id: int, number: int, reason: str) -> bool:
    """Mark a lost trial stale and give its budget slot back; False when its result was recorded after all
    (then it keeps its slot and must not be re-queued). Trial row first, then the job row, as `_finish` does."""
    marked = session.execute(sa.update(Trial).where(Trial.job_id == job_id, Trial.number == number,
                                                    Trial.state == "running")
                             .values(state="stale", finished_at=now(), error=reason))
    if getattr(marked, "rowcount", 0) == 0 and session.scalar(
            sa.select(Trial.id).where(Trial.job_id == job_id, Trial.number == number)) is not None:
        session.rollback()
        return False
    session.execute(sa.update(Job).where(Job.id == job_id, Job.trials_reserved > 0)
                    .values(trials_reserved=Job.trials_reserved - 1, updated_at=now()))
    session.commit()
    return True


def stale_hook(sessions: sessionmaker[Session]) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """The heartbeat-stale callback: record the trial as stale, free its slot, re-queue its parameters."""
    def on_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with sessions() as session:
            job_id = session.scalar(sa.select(Job.id).where(Job.study_name == study.study_name))
            if job_id is not None and not release_trial(session, job_id, trial.number,
                                                        "worker lost (heartbeat stale)"):
                return
        RETRY(study, trial)

    return on_stale


def settle_job(session: Session, job_id: int, study: optuna.Study, grace_s: float) -> bool:
    """When no slot is free: fail stale trials, finish the job if it is done, and report whether it is."""
    optuna.storages.fail_stale_trials(study)
    session.expire_all()
    job = session.get(Job, job_id)
    if job is None or job.status != "running":
        return True
    running = session.scalar(sa.select(sa.func.count()).where(Trial.job_id == job_id, Trial.state == "running")) or 0
    deadline = utc(job.deadline)
    out_of_trials = job.trials_budget is not None and job.trials_done >= job.trials_budget
    out_of_time = deadline is not None and now() >= deadline
    if (out_of_trials or out_of_time) and running == 0:
        ok = session.scalar(sa.select(sa.func.count()).where(
            Trial.job_id == job_id, Trial.state.in_(("complete", "stopped", "infeasible")))) or 0
        session.execute(sa.update(Job).where(Job.id == job_id, Job.status == "running").values(
            status="completed" if ok else "failed", finished_at=now(),
            error=None if ok else "every trial failed; see the trials' errors"))
        session.commit()
        return True
    idle_since = utc(job.updated_at) or now()
    if running == 0 and job.trials_reserved > job.trials_done and now() - idle_since > timedelta(seconds=grace_s):
        # A worker died between taking a slot and starting its trial: give the slot back.
        session.execute(sa.update(Job).where(Job.id == job_id, Job.trials_reserved == job.trials_reserved)
                        .values(trials_reserved=job.trials_done, updated_at=now()))
    session.commit()
    return False


def enqueue_initial(study: optuna.Study, spec: JobSpec) -> None:
    """Queue the spec's warm-start architectures as the study's first trials."""
    for params in initial_params(spec):
        study.enqueue_trial(params, skip_if_exists=True)


@dataclass
class RunContext:
    sessions: sessionmaker[Session]
    storage: optuna.storages.BaseStorage
    artifacts_dir: Path
    worker: str
    grace_s: float
    scorer: Scorer | None = None
    on_trial: TrialHook | None = None
    refill: bool = True
    """Refill a slot as soon as its trial ends (False: start slots in waves; only benchmarks want that)."""


def run_job(ctx: RunContext, job_id: int, *, stop: Callable[[], bool] = lambda: False) -> bool:
    """Run trials of one job in this process until none is left to start; True once the job is finished.

    The spec's `training.concurrency` slots run trials side by side: threads sharing the study, each training
    in a process of its own (`slot_scorer`). A slot whose trial ends takes the sampler's next proposal at
    once, without waiting for the others (with `ctx.refill` off, slots start together and wait for the
    slowest, the benchmark's baseline). Each slot reserves its budget slot first, as separate workers do.
    """
    with ctx.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} not found")
        spec = JobSpec.model_validate(job.spec)
        study_name = job.study_name
    seed = spec.seed if ctx.worker == "local" else spec.seed + zlib.crc32(ctx.worker.encode()) % 100_003
    study = open_study(ctx.storage, study_name, spec, seed)
    if spec.initial and not study.get_trials(deepcopy=False):
        enqueue_initial(study, spec)
    objectives = [TrialObjective(ctx, job_id, spec) for _ in range(spec.training.concurrency)]
    failed = threading.Event()

    def reserve() -> bool:
        if stop() or failed.is_set():
            return False
        with ctx.sessions() as session:
            return reserve_trial(session, job_id)

    def slot(objective: TrialObjective) -> None:
        try:
            while reserve():
                run_trial(study, objective)
        except BaseException:
            failed.set()  # the other slots finish their trial in flight, then stop
            raise

    try:
        if len(objectives) == 1:
            slot(objectives[0])
        elif ctx.refill:
            side_by_side(slot, objectives, ctx.worker)
        else:
            with slot_threads(len(objectives), ctx.worker) as pool:
                while wave := list(itertools.takewhile(lambda _: reserve(), objectives)):
                    for future in [pool.submit(run_trial, study, o) for o in wave]:
                        future.result()
    finally:
        for objective in objectives:
            close_scorer(objective.scorer)
        if isinstance(ctx.storage, BatchedStorage):  # no trial of it runs here now
            ctx.storage.forget_study(ctx.storage.get_study_id_from_name(study_name))
    if stop():
        return False
    with ctx.sessions() as session:
        return settle_job(session, job_id, study, ctx.grace_s)


def run_trial(study: optuna.Study, objective: TrialObjective) -> None:
    """One trial of `objective` (its budget slot already reserved); a result Optuna could not record because
    the database went away is told again once it is back."""
    try:
        study.optimize(objective, n_trials=1, catch=(Exception,))
    except Exception as exc:
        if not (is_connection_lost(exc) and objective.tell_again(study)):
            raise


def slot_threads(count: int, worker: str) -> ThreadPoolExecutor:
    """The threads of a job's slots. They live as long as the job runs here: a slot's training process dies
    with the thread that started it."""
    return ThreadPoolExecutor(count, thread_name_prefix=f"{worker}-slot")


def side_by_side(work: Callable[[T], None], items: list[T], worker: str) -> None:
    """`work(item)` for every item, each in its own thread; the first error is raised once all have ended."""
    with slot_threads(len(items), worker) as pool:
        futures = [pool.submit(work, item) for item in items]
    for future in futures:
        future.result()


def slot_scorer(spec: JobSpec) -> Scorer:
    """The scorer of one slot: with several slots, real training runs in a process of the slot's own."""
    if spec.training.scorer == "train" and spec.training.concurrency > 1:
        return ProcessTrainScorer()
    return make_scorer(spec.training.scorer)


class TrialObjective:
    """One trial: sample, measure latency and size, check constraints, reuse or train, update the front."""

    def __init__(self, ctx: RunContext, job_id: int, spec: JobSpec) -> None:
        self.ctx, self.job_id, self.spec = ctx, job_id, spec
        self.space = load_space(spec.space)
        self.num_classes = num_classes_of(spec.dataset, spec.resolution)
        self.scorer = ctx.scorer or slot_scorer(spec)
        self.current: Candidate | None = None
        """The candidate of the trial in flight, once it exists."""
        self.outcome: tuple[int, tuple[float, ...]] | None = None
        """The number and objective values of the last trial that returned them."""

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        self.current, self.outcome = None, None
        try:
            attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
            retry_of = attrs.get("failed_trial")  # set by RetryHeartbeatStaleTrialCallback on a lost trial's copy
            with self.ctx.sessions() as session:
                origin = self._origin(session, "fixed_params" in attrs, retry_of)
                session.add(Trial(job_id=self.job_id, number=trial.number, state="running", worker=self.ctx.worker,
                                  retry_of=retry_of, origin=origin))
                session.commit()
            values = self._evaluate(trial, origin)
        except BaseException as exc:
            if is_connection_lost(exc):  # not the candidate's fault: re-queue it, as if its worker had died
                retry_on_connection_loss(lambda: self._requeue(trial), what=f"re-queueing trial {trial.number}")
                raise
            # With its candidate when one was made, so the failure is shown at the candidate's latency.
            self._finish(trial.number, self.current, "failed", reused=False, error=f"{type(exc).__name__}: {exc}")
            raise
        self.outcome = (trial.number, values)
        return values

    def tell_again(self, study: optuna.Study) -> bool:
        """After Optuna lost the connection while telling the last trial's result: tell it once more (retried
        while the database is away), so the sampler learns what our tables already hold. False when there was
        no result to tell (the trial itself was cut short, and re-queued)."""
        if self.outcome is None:
            return False
        number, values = self.outcome
        retry_on_connection_loss(lambda: study.tell(number, values, skip_if_finished=True),
                                 what=f"telling Optuna the result of trial {number}")
        return True

    def _requeue(self, trial: optuna.Trial) -> None:
        with self.ctx.sessions() as session:
            released = release_trial(session, self.job_id, trial.number, "database connection lost mid-trial")
        if released:
            RETRY(trial.study, trial.study._storage.get_trial(trial._trial_id))

    def _origin(self, session: Session, enqueued: bool, retry_of: int | None) -> str:
        """`initial` for the warm start's enqueued trials (and their retries), `sampler` for the rest."""
        if not enqueued:
            return "sampler"
        if retry_of is None:
            return "initial"
        first = session.scalar(sa.select(Trial.origin).where(Trial.job_id == self.job_id, Trial.number == retry_of))
        return first or "sampler"

    def _evaluate(self, trial: optuna.Trial, origin: str) -> tuple[float, ...]:
        arch = self.space.sample(trial, num_classes=self.num_classes, resolution=self.spec.resolution)
        trial.set_user_attr("arch", encode(arch))
        candidate = self.current = self._candidate(arch, origin)
        for name, value in self._constraint_values(candidate).items():
            trial.set_constraint(name, value)
        if candidate.status in ("trained", "infeasible"):
            state = ("infeasible" if candidate.status == "infeasible" else
                     "stopped" if candidate.stopped_early else "complete")
            return self._finish(trial.number, candidate, state, reused=True)
        if candidate.violations:
            with self.ctx.sessions() as session:
                session.execute(sa.update(Candidate).where(Candidate.id == candidate.id).values(status="infeasible"))
                session.commit()
            candidate.status = "infeasible"
            return self._finish(trial.number, candidate, "infeasible", reused=False)
        return self._train(trial, candidate, arch)

    def _candidate(self, arch: ArchSpec, origin: str) -> Candidate:
        """The job's candidate row for `arch`, created with its analysis and latency if it is new."""
        text = encode(arch)
        key = arch_hash(text)
        with self.ctx.sessions() as session:
            found = session.scalars(sa.select(Candidate).where(Candidate.job_id == self.job_id,
                                                               Candidate.arch_hash == key)).first()
            if found is not None:
                return found
            analysis = analyze(arch)
            latency = predict_latency(arch, self.spec.device)
            size = model_bytes_estimate(analysis)
            candidate = Candidate(job_id=self.job_id, arch=text, arch_hash=key, status="pending", origin=origin,
                                  params=analysis.params, macs=analysis.macs, model_bytes_estimate=size,
                                  analysis=analysis.to_dict(), latency_ms=latency.total_ms, cpu_ms=latency.cpu_ms,
                                  latency_profile=latency.profile_version, latency=latency.detail)
            candidate.violations = self._violations(candidate)
            session.add(candidate)
            try:
                session.commit()
            except sa.exc.IntegrityError:  # another worker created it a moment ago
                session.rollback()
                return session.scalars(sa.select(Candidate).where(Candidate.job_id == self.job_id,
                                                                  Candidate.arch_hash == key)).one()
            return candidate

    def _constraint_values(self, c: Candidate) -> dict[str, float]:
        """Optuna constraint values (feasible when <= 0), relative to each limit the spec sets."""
        limits = self.spec.constraints
        values: dict[str, float] = {}
        if limits.max_latency_ms is not None:
            values["latency_ms"] = c.latency_ms / limits.max_latency_ms - 1.0
        if limits.max_params is not None:
            values["params"] = c.params / limits.max_params - 1.0
        if limits.max_model_bytes is not None:
            values["model_bytes"] = c.model_bytes_estimate / limits.max_model_bytes - 1.0
        return values

    def _violations(self, c: Candidate) -> dict[str, object]:
        limits = self.spec.constraints
        checks = [("latency_ms", c.latency_ms, limits.max_latency_ms), ("params", c.params, limits.max_params),
                  ("model_bytes", c.model_bytes_estimate, limits.max_model_bytes)]
        return {name: {"value": value, "limit": limit} for name, value, limit in checks
                if limit is not None and value > limit}

    def _train(self, trial: optuna.Trial, candidate: Candidate, arch: ArchSpec) -> tuple[float, ...]:
        with self.ctx.sessions() as session:
            session.execute(sa.update(Candidate).where(Candidate.id == candidate.id).values(status="training"))
            session.commit()
        curve: list[float] = []
        use_rule = self.spec.training.early_stopping and self.spec.mode == "pareto"

        def keep_going(epoch: int, accuracy: float) -> bool:
            curve.append(accuracy)
            if not use_rule:
                return True
            return not early_stop.should_stop(curve, self.spec.training.epochs, candidate.latency_ms,
                                              self._front_2d(), self.num_classes,
                                              grace=self.spec.training.early_stopping_grace)

        try:
            score = self.scorer.score(arch, dataset=self.spec.dataset, training=self.spec.training,
                                      seed=self.spec.seed, keep_going=keep_going,
                                      artifacts_dir=self.ctx.artifacts_dir / f"job-{self.job_id}")
        except BaseException:
            with self.ctx.sessions() as session:
                session.execute(sa.update(Candidate).where(Candidate.id == candidate.id).values(status="failed"))
                session.commit()
            raise
        values = {"status": "trained", "accuracy": score.accuracy, "int8_accuracy": score.int8_accuracy,
                  "epochs_trained": score.epochs, "stopped_early": score.stopped_early, "curve": score.curve,
                  "train_seconds": score.seconds, "tflite_path": score.tflite_path, "model_bytes": score.model_bytes}
        for key, value in values.items():
            setattr(candidate, key, value)
        trial.set_user_attr("stopped_early", score.stopped_early)
        state = "stopped" if score.stopped_early else "complete"
        return self._finish(trial.number, candidate, state, reused=False, trained=values)

    def _front_2d(self) -> list[tuple[float, float]]:
        with self.ctx.sessions() as session:
            rows = session.execute(sa.select(Candidate.accuracy, Candidate.latency_ms).where(
                Candidate.job_id == self.job_id, Candidate.on_front.is_(True)))
            return [(float(a or 0.0), float(lat)) for a, lat in rows]

    def _objectives(self, c: Candidate) -> tuple[float, ...]:
        acc = float(c.accuracy or 0.0) if c.status == "trained" else 0.0
        by_name = {"accuracy": acc, "latency_ms": c.latency_ms, "params": float(c.params),
                   "model_bytes": float(c.model_bytes_estimate)}
        return tuple(by_name[o] for o in self.spec.objectives)

    def _finish(self, number: int, c: Candidate | None, state: str, *, reused: bool,
                trained: dict[str, object] | None = None, error: str | None = None) -> tuple[float, ...]:
        """Record the trial's outcome (`state`: complete, stopped, infeasible or failed), the candidate's result
        and the front in one transaction, retried while the database is away. Only complete trials can join
        the front: a stopped one's accuracy is that of a partial training."""
        values = self._objectives(c) if c is not None else ()
        recorded = retry_on_connection_loss(lambda: self._record(number, c, state, values, reused, trained, error),
                                            what=f"recording trial {number}")
        if recorded and self.ctx.on_trial is not None:
            with self.ctx.sessions() as session:
                row = session.scalars(sa.select(Trial).where(Trial.job_id == self.job_id,
                                                             Trial.number == number)).one()
                cand = session.get(Candidate, row.candidate_id) if row.candidate_id else None
                self.ctx.on_trial(TrialView.of(row, cand))
        if c is None:
            return ()
        if self.spec.mode == "target" and self.spec.target is not None:
            return (reward(values[0], c.latency_ms, self.spec.target),)
        return values

    def _record(self, number: int, c: Candidate | None, state: str, values: tuple[float, ...], reused: bool,
                trained: dict[str, object] | None, error: str | None) -> bool:
        """The transaction of `_finish`; False (and nothing written) when the trial is no longer running: an
        earlier attempt whose answer was lost already recorded it, or it was released as stale.

        Bumping the job row takes its row lock on PostgreSQL and the write lock on SQLite before the front is
        read, so front updates of concurrent workers never interleave."""
        fields: dict[str, object] = {"state": state, "finished_at": now(), "reused": reused, "error": error}
        if c is not None:
            named = dict(zip(self.spec.objectives, values, strict=True))
            fields.update(candidate_id=c.id, accuracy=named["accuracy"], latency_ms=c.latency_ms, params=c.params,
                          model_bytes=c.model_bytes or c.model_bytes_estimate)
            if self.spec.target is not None:
                fields["reward"] = reward(named["accuracy"], c.latency_ms, self.spec.target)
        with self.ctx.sessions() as session:
            result = session.execute(sa.update(Trial).where(Trial.job_id == self.job_id, Trial.number == number,
                                                            Trial.state == "running").values(**fields))
            if getattr(result, "rowcount", 0) == 0:
                session.rollback()
                return False
            session.execute(sa.update(Job).where(Job.id == self.job_id)
                            .values(trials_done=Job.trials_done + 1, updated_at=now()))
            if trained is not None and c is not None:
                session.execute(sa.update(Candidate).where(Candidate.id == c.id).values(**trained))
                if state == "complete" and not c.violations:
                    self._update_front(session, c, values)
            session.commit()
        return True

    def _update_front(self, session: Session, c: Candidate, values: tuple[float, ...]) -> None:
        members = session.scalars(sa.select(Candidate).where(Candidate.job_id == self.job_id,
                                                             Candidate.on_front.is_(True)))
        front = pareto.Front(pareto.Point(m.id, self._objectives(m)) for m in members)
        joined, removed = front.add(pareto.Point(c.id, values))
        if joined:
            session.execute(sa.update(Candidate).where(Candidate.id == c.id).values(on_front=True))
            if removed:
                session.execute(sa.update(Candidate).where(Candidate.id.in_([int(str(p.key)) for p in removed]))
                                .values(on_front=False))
