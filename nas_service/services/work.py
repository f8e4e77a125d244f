"""Running jobs: the slots of a job in this worker, each running `TrialObjective` trials on the job's study.

Several processes, each with `training.concurrency` slots, may work on one job at once; they share its
Optuna study and coordinate through the job row (`db.job_queue`): a trial starts only after
`reserve_trial` wins a unit of the budget with one conditional UPDATE, so the trial budget holds however
many workers and slots there are. A worker killed mid-trial leaves a running trial whose heartbeat goes
stale; whichever worker next runs `fail_stale_trials` marks it failed, gives its unit back and re-queues
its parameters (`stale_hook`). A trial cut short by a lost database connection is re-queued the same way
by its own worker, which waits the outage out.
"""

from __future__ import annotations

import itertools
import logging
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import optuna
from optuna.artifacts._protocol import ArtifactStore
from sqlalchemy.orm import Session, sessionmaker

from nas_service.controller.batched_storage import BatchedStorage
from nas_service.controller.objective import TrialObjective, num_classes_of
from nas_service.controller.scoring import Scorer
from nas_service.controller.study import RETRY, open_study
from nas_service.controller.training_process import close_scorer
from nas_service.db import job_queue, trial_records
from nas_service.db.engine import is_connection_lost
from nas_service.db.models import Job
from nas_service.services import uploads
from nas_service.services.catalog import check_names, initial_params
from nas_service.services.views import TrialView
from nas_service.spec import JobSpec

log = logging.getLogger(__name__)
TrialHook = Callable[[TrialView], None]
T = TypeVar("T")


def check_runnable(spec: JobSpec) -> None:
    """Raise what a worker would raise at the job's start (names, dataset, warm start), before the job exists;
    the cheap checks first."""
    check_names(spec)
    num_classes_of(spec.dataset, spec.resolution)


def stale_hook(sessions: sessionmaker[Session]) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """The heartbeat-stale callback: record the trial as stale, free its slot, re-queue its parameters."""
    def on_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with sessions() as session:
            job_id = job_queue.job_of_study(session, study.study_name)
            if job_id is not None and not job_queue.release_trial(session, job_id, trial.number,
                                                                  "worker lost (heartbeat stale)"):
                return
        RETRY(study, trial)

    return on_stale


def settle_job(session: Session, job_id: int, study: optuna.Study, grace_s: float) -> bool:
    """When no slot is free: fail stale trials, finish the job if it is done, and report whether it is."""
    optuna.storages.fail_stale_trials(study)
    return job_queue.finish_if_done(session, job_id, grace_s)


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
    interrupted: Callable[[], bool] = lambda: False
    """True once trials in flight are to be given back rather than finished (`Worker.interrupt`)."""
    store: ArtifactStore | None = None
    """Where trained models go (`db.artifacts.make_store`); required to run a job."""


def run_job(ctx: RunContext, job_id: int, *, stop: Callable[[], bool] = lambda: False) -> bool:
    """Run trials of one job in this process until none is left to start; True once the job is finished.

    The spec's `training.concurrency` slots run trials side by side: threads sharing the study, each training
    in a process of its own (`objective.slot_scorer`). A slot whose trial ends takes the sampler's next proposal at
    once, without waiting for the others (with `ctx.refill` off, slots start together and wait for the
    slowest, the benchmark's baseline). Each slot reserves its budget slot first, as separate workers do.
    """
    with ctx.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} not found")
        spec = JobSpec.model_validate(job.spec)
        study_name = job.study_name
        if ctx.store is not None:  # an uploaded dataset: a checked copy on this machine's disk
            local = uploads.local_copy(session, ctx.store, spec.dataset, ctx.artifacts_dir / "datasets")
            spec = spec.model_copy(update={"dataset": local})
    seed = spec.seed if ctx.worker == "local" else spec.seed + zlib.crc32(ctx.worker.encode()) % 100_003
    study = open_study(ctx.storage, study_name, spec, seed)
    if spec.initial and not study.get_trials(deepcopy=False):
        enqueue_initial(study, spec)
    if ctx.store is None:
        raise ValueError("RunContext.store is not set: a job needs an artifact store for its models")
    objectives = [TrialObjective(ctx.sessions, job_id, spec, worker=ctx.worker, artifacts_dir=ctx.artifacts_dir,
                                 store=ctx.store, scorer=ctx.scorer, interrupted=ctx.interrupted)
                  for _ in range(spec.training.concurrency)]
    failed = threading.Event()

    def reserve() -> bool:
        if stop() or failed.is_set():
            return False
        with ctx.sessions() as session:
            return job_queue.reserve_trial(session, job_id)

    def slot(objective: TrialObjective) -> None:
        try:
            while reserve():
                run_trial(study, objective, ctx)
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
                    for future in [pool.submit(run_trial, study, o, ctx) for o in wave]:
                        future.result()
    finally:
        for objective in objectives:
            close_scorer(objective.scorer)
        if isinstance(ctx.storage, BatchedStorage):  # no trial of it runs here now
            ctx.storage.forget_study(ctx.storage.get_study_id_from_name(study_name))
    if stop():
        return False
    if spec.training.mode == "oneshot" and search_over(ctx, job_id):
        from nas_service.controller.oneshot import confirm_front

        confirm_front(ctx.sessions, job_id, spec, ctx.artifacts_dir, ctx.store)
    if stop():
        return False
    with ctx.sessions() as session:
        return settle_job(session, job_id, study, ctx.grace_s)


def search_over(ctx: RunContext, job_id: int) -> bool:
    """Whether the job's trials are all done (its budget or time spent, none running): a one-shot front is
    final and can be confirmed."""
    with ctx.sessions() as session:
        return job_queue.search_over(session, job_id)


def run_trial(study: optuna.Study, objective: TrialObjective, ctx: RunContext) -> None:
    """One trial of `objective` (its budget unit already reserved), then `ctx.on_trial` with what it recorded;
    a result Optuna could not record because the database went away is told again once it is back, and one
    it refused because another worker took the trial back meanwhile (heartbeat stale) is dropped."""
    try:
        study.optimize(objective, n_trials=1, catch=(Exception,))
        objective.trial_id = -1  # told
    except Exception as exc:
        if objective.taken_back(study):
            return
        if not (is_connection_lost(exc) and objective.tell_again(study)):
            raise
    outcome = objective.outcome
    if ctx.on_trial is not None and outcome is not None and outcome.recorded:
        with ctx.sessions() as session:
            ctx.on_trial(TrialView.of(*trial_records.trial_and_candidate(session, objective.job_id,
                                                                          outcome.number)))


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
