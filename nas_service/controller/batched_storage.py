"""Optuna's RDB storage with a trial's suggested parameters written in one transaction, not one each.

Optuna commits every `suggest_*` on its own: the edgetpu space suggests 32 parameters, so a trial
paid 32 commits (about 2 ms each on SQLite, more on PostgreSQL) before the objective had done anything.
`BatchedStorage` keeps a running trial's parameters in memory and writes them in the transaction
of the trial's next write to the database (a user or system attribute, an intermediate value or its
state), or when the trial is read back. Our objective sets the `arch` user attribute right after
sampling, so the parameters are durable before any training starts; a worker killed while sampling
loses only parameters of a trial that is re-queued anyway. Everything else, including the durable
commit of `tell` (`set_trial_state_values`), is Optuna's own `_CachedStorage` unchanged.

It relies on private parts of Optuna 5's RDB storage (`_CachedStorage`, `_create_scoped_session`,
`_set_trial_param_without_commit`, `_set_trial_attr_without_commit`), pinned by `optuna>=5.0,<6`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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

PendingParam = tuple[str, float, BaseDistribution, BaseDistribution | None]


class BatchedStorage(_CachedStorage):
    """`_CachedStorage` whose `set_trial_param` waits for the trial's next write (see the module docstring)."""

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._pending: dict[int, list[PendingParam]] = {}

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
            self._pending.setdefault(trial_id, []).append((param_name, param_value_internal, distribution, known))

    def _write_pending(self, session: Any, trial_id: int) -> None:
        """Add the trial's pending parameters to `session` as one multi-row INSERT (the caller commits)."""
        with self._lock:
            pending = self._pending.pop(trial_id, [])
            study_id, _ = self._trial_id_to_study_id_and_number.get(trial_id, (None, 0))
        if not pending:
            return
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        self._backend.check_trial_is_updatable(trial_id, cast(TrialState, trial.state))
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

    def flush(self, trial_id: int) -> None:
        """Write the trial's pending parameters now, in one transaction."""
        if not self._pending.get(trial_id):
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

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attr(models.TrialSystemAttributeModel, trial_id, key, value)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.flush(trial_id)
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        self.flush(trial_id)
        return super().set_trial_state_values(trial_id, state, values)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        """One query of the attribute table (Optuna rebuilds the whole trial, five queries, for this)."""
        with _create_scoped_session(self._backend.scoped_session) as session:
            rows = session.execute(sa.select(models.TrialSystemAttributeModel.key,
                                             models.TrialSystemAttributeModel.value_json)
                                   .where(models.TrialSystemAttributeModel.trial_id == trial_id)).all()
        return {key: json.loads(value) for key, value in rows}

    def get_trial(self, trial_id: int) -> FrozenTrial:
        self.flush(trial_id)
        return super().get_trial(trial_id)


def batched(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """`storage` with batched parameter writes when it is an RDB storage; any other storage as it is."""
    return BatchedStorage(storage) if isinstance(storage, RDBStorage) else storage
