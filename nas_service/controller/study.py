"""Optuna plumbing: the RDB storage in the service's database (heartbeats on), samplers by name, studies by job."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy as sa

from nas_service.db.engine import is_sqlite, sqlite_connect_args
from nas_service.spec import JobSpec

StaleHook = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
MAX_RETRIES = 3

# Re-queues a lost trial's parameters as a waiting Optuna trial that remembers the first one's number
# (experimental since Optuna 2.8, and what workers have relied on since).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO and flags heartbeat retries as experimental; the CLI shows its own progress."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def make_storage(url: str, *, heartbeat_interval_s: int, grace_s: int, on_stale: StaleHook | None = None,
                 busy_timeout_s: float = 30.0) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on the service's database, with heartbeats so that a killed worker's trial is
    failed after `grace_s` and handed to `on_stale` (which re-queues it)."""
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if is_sqlite(url):
        engine_kwargs = {"connect_args": sqlite_connect_args(busy_timeout_s)}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval_s,
                                         grace_period=grace_s, heartbeat_stale_trial_callback=on_stale)
    if is_sqlite(url):
        # Optuna commits once per suggested parameter; in WAL mode synchronous=NORMAL makes those commits
        # cheap (no fsync each) while staying durable across process crashes, as for our own engine.
        sa.event.listen(storage.engine, "connect", _sqlite_normal_sync)
        storage.engine.dispose()
    return storage


def _sqlite_normal_sync(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def population_size(spec: JobSpec) -> int:
    """NSGA-II's generation size: a fifth of the trial budget, between 4 and 50 (Optuna's default is 50,
    which would make any search under 50 trials purely random)."""
    trials = spec.budget.trials or 100
    return max(4, min(50, trials // 5))


def make_sampler(spec: JobSpec, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler the spec names. Constraints reach it through `trial.set_constraint`."""
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "tpe":
        startup = max(4, min(10, (spec.budget.trials or 50) // 5))
        # constant_liar: workers sharing a study see each other's running trials as bad, so they spread out.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size(spec))


def metric_names(spec: JobSpec) -> list[str]:
    """What the study's values are called (`accuracy`, `latency_ms`, extra objectives; `reward` in target mode),
    so Optuna's own tools (optuna-dashboard on our storage) name them rather than showing "0" and "1"."""
    return ["reward"] if spec.mode == "target" else list(spec.objectives)


def open_study(storage: optuna.storages.BaseStorage, study_name: str, spec: JobSpec, seed: int) -> optuna.Study:
    """The job's study, created by whichever worker gets there first, its objectives named."""
    study = optuna.create_study(storage=storage, study_name=study_name, directions=spec.directions,
                                sampler=make_sampler(spec, seed), load_if_exists=True)
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use since
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metric_names(spec))
    return study
