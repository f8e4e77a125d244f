"""Optuna's RDB storage with a trial's suggested parameters written in one transaction, not one each.

Optuna commits every `suggest_*` on its own: the edgetpu space suggests 32 parameters, so a trial
paid 32 commits (about 2 ms each on SQLite, more on PostgreSQL) before the objective had done anything.
`BatchedStorage` keeps a running trial's parameters and system attributes (the sampler's
generation, constraint values) in memory and writes them in the transaction of the trial's next
user attribute, intermediate value or state, and a read of the trial sees them. Our objective
sets the `arch` user attribute right after sampling, so the parameters are durable before any
training starts, and `tell` commits the constraints together with the state and values: a finished
trial is complete in the database or not at all. A worker killed while sampling loses only the
pending writes of a trial that is re-queued anyway. Optuna re-reads the study's new trials four or
five times while asking for one trial; a re-read within a second of the last, with no trial created or
finished by this process in between, is skipped (another worker's news arrives at most a second late).
Everything else is Optuna's own `_CachedStorage`.

It relies on private parts of Optuna 5.1's RDB storage (`_CachedStorage` and its caches,
`_create_scoped_session`, `_set_trial_attr_without_commit`, `_set_trial_value_without_commit`, the ORM
models) and its `set_trial_state_values` is a near copy of `RDBStorage`'s: the dependency is pinned to
`optuna~=5.1.0`, tests/controller/test_batched_storage.py fails when any of those names or that method changes and
runs Optuna's own storage contract tests over it, and `NAS_BATCHED_STORAGE=0` falls back to plain storage.
Where it departs from that contract, on purpose: a held write reports a missing or finished trial, or a
distribution clashing with another running trial's held one, when it is written, not when it is made;
starting a finished trial returns False; a missing trial's system attributes read as empty; and
`get_all_trials` shows a running trial's parameters once they are written (right after sampling).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import optuna
import sqlalchemy as sa
from optuna.distributions import (
    BaseDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.dialects import postgresql as sa_postgresql
from sqlalchemy.dialects import sqlite as sa_sqlite

REREAD_S = 1.0
PendingParam = tuple[str, float, BaseDistribution, BaseDistribution | None]


@dataclass
class Pending:
    params: list[PendingParam] = field(default_factory=list)
    system_attrs: dict[str, Any] = field(default_factory=dict)


class BatchedStorage(_CachedStorage):
    """`_CachedStorage` whose `set_trial_param` waits for the trial's next write (see the module docstring)."""

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._pending: dict[int, Pending] = {}
        self._read_at: dict[int, float] = {}
        self._own: dict[int, FrozenTrial] = {}  # running trials this process created, as it wrote them

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        """Optuna refreshes its trial cache from the database four or five times while asking for one trial;
        once is enough. A refresh is skipped when the study was read less than `REREAD_S` ago and this
        process has neither created nor finished a trial since (either forgets the read time)."""
        with self._lock:
            read_at = self._read_at.get(study_id)
        if read_at is not None and time.monotonic() - read_at < REREAD_S:
            return
        super()._read_trials_from_remote_storage(study_id)
        with self._lock:
            self._read_at[study_id] = time.monotonic()

    def _forget_read(self, trial_id: int) -> None:
        with self._lock:
            study_id, _ = self._trial_id_to_study_id_and_number.get(trial_id, (None, 0))
            if study_id is not None:
                self._read_at.pop(study_id, None)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        with self._lock:
            self._read_at.pop(study_id, None)
            number = self._trial_id_to_study_id_and_number[trial_id][1]
            self._own[trial_id] = copy.deepcopy(self._studies[study_id].trials[number])
        return trial_id

    def forget_study(self, study_id: int) -> None:
        """Drop the study's cached trials once this process has no trial of it running: a long-lived worker
        would otherwise keep every job it ever ran in memory. A later read fetches them again."""
        with self._lock:
            info = self._studies.pop(study_id, None)
            for number in info.trials if info is not None else ():
                trial_id = self._study_id_and_number_to_trial_id.pop((study_id, number), None)
                self._trial_id_to_study_id_and_number.pop(trial_id, None)  # type: ignore[arg-type]
            self._read_at.pop(study_id, None)

    @property
    def cached_study_ids(self) -> list[int]:
        with self._lock:
            return list(self._studies)

    @property
    def backend(self) -> RDBStorage:
        return self._backend

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        with self._lock:
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            known = self._studies[study_id].param_distribution.get(param_name)
            if known is not None:
                check_distribution_compatibility(known, distribution)  # fail now, as Optuna would
            self._pending.setdefault(trial_id, Pending()).params.append(
                (param_name, param_value_internal, distribution, known))
            own = self._own.get(trial_id)
            if own is not None:
                own.params = {**own.params, param_name: distribution.to_external_repr(param_value_internal)}
                own.distributions = {**own.distributions, param_name: distribution}

    def _write_pending(self, session: Any, trial_id: int, trial: Any = None) -> None:
        """Add the trial's pending writes to `session`, parameters as one multi-row INSERT (the caller commits);
        `trial` is its row when the caller has read it already."""
        with self._lock:
            batch = self._pending.pop(trial_id, None)
            study_id, _ = self._trial_id_to_study_id_and_number.get(trial_id, (None, 0))
        if batch is None:
            return
        if trial is None:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
            self._backend.check_trial_is_updatable(trial_id, cast(TrialState, trial.state))
        if batch.system_attrs:
            self._upsert_system_attrs(session, trial_id, batch.system_attrs)
        pending = batch.params
        if not pending:
            return
        unknown = [name for name, _value, _dist, known in pending if known is None]
        if unknown:  # the study's first trial in this process: check against what others stored
            stored = dict(session.execute(
                sa.select(models.TrialParamModel.param_name, models.TrialParamModel.distribution_json)
                .join(models.TrialModel).where(models.TrialModel.study_id == trial.study_id,
                                               models.TrialParamModel.param_name.in_(unknown))).all())
            for name, _value, distribution, known in pending:
                if known is None and name in stored:
                    check_distribution_compatibility(json_to_distribution(stored[name]), distribution)
        session.execute(sa.insert(models.TrialParamModel), [
            {"trial_id": trial_id, "param_name": name, "param_value": value,
             "distribution_json": distribution_to_json(distribution)}
            for name, value, distribution, _known in pending])
        if study_id is not None:
            with self._lock:
                for name, _value, distribution, _known in pending:
                    self._studies[study_id].param_distribution.setdefault(name, distribution)

    def _upsert_system_attrs(self, session: Any, trial_id: int, attrs: dict[str, Any]) -> None:
        """One INSERT ... ON CONFLICT for all of them (Optuna reads the trial and the attribute for each)."""
        rows = [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]
        table = models.TrialSystemAttributeModel.__table__
        dialect = self._backend.engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            for key, value in attrs.items():
                self._backend._set_trial_attr_without_commit(session, models.TrialSystemAttributeModel, trial_id,
                                                             key, value)
            return
        insert = sa_postgresql.insert(table) if dialect == "postgresql" else sa_sqlite.insert(table)
        insert = insert.values(rows)
        session.execute(insert.on_conflict_do_update(index_elements=["trial_id", "key"],
                                                     set_={"value_json": insert.excluded.value_json}))

    def flush(self, trial_id: int) -> None:
        """Write the trial's pending parameters now, in one transaction."""
        if trial_id not in self._pending:
            return
        with _create_scoped_session(self._backend.scoped_session) as session:
            self._write_pending(session, trial_id)

    def _set_attr(self, model: type[models.TrialUserAttributeModel | models.TrialSystemAttributeModel],
                  trial_id: int, key: str, value: Any) -> None:
        with _create_scoped_session(self._backend.scoped_session, True) as session:
            self._write_pending(session, trial_id)
            self._backend._set_trial_attr_without_commit(session, model, trial_id, key, value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attr(models.TrialUserAttributeModel, trial_id, key, value)
        with self._lock:
            if trial_id in self._own:
                self._own[trial_id].user_attrs[key] = value

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            self._pending.setdefault(trial_id, Pending()).system_attrs[key] = value
            if trial_id in self._own:
                self._own[trial_id].system_attrs[key] = value

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        with self._lock:
            self._own.pop(trial_id, None)
        self.flush(trial_id)
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        """Optuna's own update (row lock, values, state, timestamps), with the pending writes in its transaction;
        starting a waiting trial is `_claim_waiting`."""
        backend = self._backend
        try:
            with _create_scoped_session(backend.scoped_session) as session:
                if state == TrialState.RUNNING:
                    return self._claim_waiting(session, trial_id)
                trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
                backend.check_trial_is_updatable(trial_id, TrialState(trial.state))
                self._write_pending(session, trial_id, trial)
                if values and trial.state == TrialState.RUNNING:  # a running trial has no values yet: insert
                    rows = []
                    for objective, value in enumerate(values):
                        stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                        rows.append({"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
                    session.execute(sa.insert(models.TrialValueModel), rows)
                else:
                    for objective, value in enumerate(values or ()):
                        backend._set_trial_value_without_commit(session, trial, objective, value)
                trial.state = state
                if state.is_finished():
                    trial.datetime_complete = datetime.now()
        except sa.exc.IntegrityError:
            return False
        finally:
            self._forget_read(trial_id)
            with self._lock:
                self._own.pop(trial_id, None)
        return True

    @staticmethod
    def _claim_waiting(session: Any, trial_id: int) -> bool:
        """Start a waiting (enqueued) trial if no one else has: one conditional UPDATE. Optuna reads the state
        and then writes it, relying on FOR UPDATE, which SQLite ignores: two slots or workers asking at once
        both started the same warm start there."""
        claimed = session.execute(sa.update(models.TrialModel)
                                  .where(models.TrialModel.trial_id == trial_id,
                                         models.TrialModel.state == TrialState.WAITING)
                                  .values(state=TrialState.RUNNING, datetime_start=datetime.now())
                                  .execution_options(synchronize_session=False))
        return bool(claimed.rowcount == 1)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        """A running trial of this process from memory, any other with one query of the attribute table
        (Optuna rebuilds the whole trial, five queries, for this)."""
        with self._lock:
            if trial_id in self._own:
                return dict(self._own[trial_id].system_attrs)
        with _create_scoped_session(self._backend.scoped_session) as session:
            rows = session.execute(sa.select(models.TrialSystemAttributeModel.key,
                                             models.TrialSystemAttributeModel.value_json)
                                   .where(models.TrialSystemAttributeModel.trial_id == trial_id)).all()
        with self._lock:
            pending = dict(self._pending[trial_id].system_attrs) if trial_id in self._pending else {}
        return {**{key: json.loads(value) for key, value in rows}, **pending}

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """The stored trial with its pending writes overlaid (`tell` reads the trial just before its state).

        A running trial this process created is read from memory once one query has checked that it is
        still running (another worker may have failed it as stale); only its state can change elsewhere."""
        with self._lock:
            own = self._own.get(trial_id)
        if own is not None:
            with _create_scoped_session(self._backend.scoped_session) as session:
                state = session.scalar(sa.select(models.TrialModel.state).where(models.TrialModel.trial_id == trial_id))
            if state == TrialState.RUNNING:
                return copy.deepcopy(own)
            with self._lock:
                self._own.pop(trial_id, None)
        trial = super().get_trial(trial_id)
        with self._lock:
            batch = self._pending.get(trial_id)
            params = list(batch.params) if batch else []
            attrs = dict(batch.system_attrs) if batch else {}
        if batch is None or trial.state.is_finished():
            return trial
        trial.params = {**trial.params, **{n: d.to_external_repr(v) for n, v, d, _known in params}}
        trial.distributions = {**trial.distributions, **{n: d for n, _v, d, _known in params}}
        trial.system_attrs = {**trial.system_attrs, **attrs}
        return trial

def batched(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """`storage` with batched parameter writes when it is an RDB storage; any other storage as it is."""
    return BatchedStorage(storage) if isinstance(storage, RDBStorage) else storage
