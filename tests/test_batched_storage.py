"""BatchedStorage: a trial's parameters reach the database in one transaction, and nothing is lost."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas_service.controller.batched_storage import BatchedStorage
from nas_service.controller.study import make_storage, quiet_optuna

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nas.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _storage(url: str) -> BatchedStorage:
    return BatchedStorage(make_storage(url, heartbeat_interval_s=5, grace_s=10))


def test_parameters_are_written_with_the_next_attribute_and_read_back_elsewhere(db_url: str) -> None:
    quiet_optuna()
    study = optuna.create_study(storage=_storage(db_url), study_name="s", directions=["maximize", "minimize"])
    trial = study.ask()
    values = {f"p{i}": trial.suggest_categorical(f"p{i}", [1, 2, 3]) for i in range(5)}
    other = optuna.load_study(study_name="s", storage=make_storage(db_url, heartbeat_interval_s=5, grace_s=10))
    assert other.trials[0].params == {}  # still pending: nothing written yet
    trial.set_user_attr("arch", "x")
    assert other.trials[0].params == values and other.trials[0].user_attrs == {"arch": "x"}
    trial.set_constraint("latency_ms", -0.5)
    pending = study._storage.get_trial_system_attrs(trial._trial_id)
    assert pending["constraints:latency_ms"] == -0.5 and not other.trials[0].system_attrs.get("constraints:latency_ms")
    study.tell(trial, (0.5, 1.0))  # the constraint is committed with the state: one transaction
    told = other.trials[0]
    assert told.state == optuna.trial.TrialState.COMPLETE and told.values == [0.5, 1.0]
    assert told.system_attrs == pending


def test_parameters_of_a_trial_told_without_attributes_and_incompatible_distributions(db_url: str) -> None:
    quiet_optuna()
    study = optuna.create_study(storage=_storage(db_url), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("n", 1, 3), n_trials=3)
    fresh = optuna.load_study(study_name="s", storage=make_storage(db_url, heartbeat_interval_s=5, grace_s=10))
    assert [set(t.params) for t in fresh.trials] == [{"x", "n"}] * 3
    again = optuna.load_study(study_name="s", storage=_storage(db_url))  # a second process: distributions unknown
    trial = again.ask()
    trial.suggest_categorical("x", ["a", "b"])  # stored as a float: incompatible
    with pytest.raises(ValueError):
        trial.set_user_attr("k", 1)


def test_an_enqueued_trial_is_started_once_however_many_ask_at_once(db_url: str) -> None:
    """Search slots ask for trials side by side: a warm start waiting in the queue goes to exactly one of them
    (on SQLite two used to start it, and the second's trial row collided with the first's)."""
    import threading

    quiet_optuna()
    storage = _storage(db_url)
    study = optuna.create_study(storage=storage, study_name="s")
    for round_ in range(5):
        study.enqueue_trial({"x": round_ / 10})
        start = threading.Barrier(6)
        drawn: list[float] = []

        def ask(start: threading.Barrier, drawn: list[float]) -> None:
            start.wait()
            trial = study.ask()
            drawn.append(trial.suggest_float("x", 0, 1))
            study.tell(trial, 0.0)

        threads = [threading.Thread(target=ask, args=(start, drawn)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(drawn) == 6 and drawn.count(round_ / 10) == 1, drawn
