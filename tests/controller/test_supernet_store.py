"""A one-shot job's supernet lives in the artifact store: stored after each epoch (the last two kept), loaded by a
worker of another machine (another, empty artifacts folder) with the same weights, trained by one worker while
the others wait and load it, never silently retrained from a damaged copy, and removed with its job."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from optuna.artifacts._protocol import ArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound
from sqlalchemy.orm import Session, sessionmaker

from nas_service.config import Settings
from nas_service.controller.supernet_store import StoredCheckpoints, stored
from nas_service.db import Job, make_engine, session_factory, upgrade_head
from nas_service.db.artifacts import ArtifactCorruptError, AtomicFileSystemArtifactStore, job_artifacts, make_store
from nas_service.db.models import Artifact, ArtifactChunk
from nas_service.services import jobs
from nas_service.spec import parse_spec

pytestmark = [pytest.mark.tf, pytest.mark.slow]

SPEC: dict[str, Any] = {  # the sizes of tests/controller/test_oneshot.py's
    "space": "edgetpu_small", "dataset": "digits", "resolution": 28, "sampler": "random", "seed": 1,
    "budget": {"trials": 4}, "training": {"mode": "oneshot", "batch_size": 32, "train_images": 64,
                                          "supernet_epochs": 1, "sandwich_random": 0}}


@dataclass
class Machine:
    """A worker's view: the shared database and store, and an artifacts folder of its own."""

    sessions: sessionmaker[Session]
    store: ArtifactStore
    artifacts_dir: Path

    def checkpoints(self, job_id: int) -> StoredCheckpoints:
        return StoredCheckpoints(self.sessions, self.store, job_id, self.artifacts_dir / f"job-{job_id}" / "supernet")


@pytest.fixture(params=["sqlite", "postgres"])
def machines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, list[Machine], sa.Engine]]:
    """One job and three machines on one database: PostgreSQL with its database store, or SQLite with a filesystem
    store that the machines share by path (machine A's `<artifacts_dir>/store`)."""
    postgres = request.param == "postgres"
    url = request.getfixturevalue("postgres_url") if postgres else f"sqlite:///{tmp_path / 'nas.db'}"
    settings = Settings(database_url=url, artifacts_dir=tmp_path / "a")
    engine = make_engine(url)
    upgrade_head(engine, settings=settings)
    sessions = session_factory(engine)
    with sessions() as session:
        job_id = jobs.create_job(session, parse_spec(SPEC)).id
    shared = make_store(settings, engine)
    found = []
    for name in "abc":
        store = make_store(Settings(database_url=url, artifacts_dir=tmp_path / name), engine) if postgres else shared
        found.append(Machine(sessions, store, tmp_path / name))
    assert postgres or isinstance(shared, AtomicFileSystemArtifactStore)
    yield job_id, found, engine
    engine.dispose()


def _supernet(seed: int) -> Any:
    from nas_service.trainer.supernet import Supernet
    from search_spaces import load_space

    net = Supernet(load_space("edgetpu_small"), num_classes=10, resolution=28, seed=seed)
    net.configure(sandwich_random=0)
    return net


def _state(net: Any) -> dict[str, np.ndarray]:
    """Every weight and the optimizer's moments, by name."""
    state = {k: v.numpy() for k, v in net.weights.items()}
    optimizer = net._optimizer
    state.update({f"m{i}": m.numpy() for i, m in enumerate(optimizer.m)})
    state["t"] = optimizer.t.numpy()
    return state


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _damage(machine: Machine, engine: sa.Engine, artifact_id: str) -> None:
    if isinstance(machine.store, AtomicFileSystemArtifactStore):
        path = machine.store.base / artifact_id
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        return
    with engine.begin() as conn:
        conn.execute(sa.update(ArtifactChunk).where(ArtifactChunk.artifact_id == artifact_id, ArtifactChunk.seq == 3)
                     .values(data=b"\0" * 100))


def test_a_stored_supernet_is_loaded_on_another_machine_and_a_damaged_one_is_an_error(
        machines: tuple[int, list[Machine], sa.Engine]) -> None:
    """Epochs saved on machine A (weights given by A's seed, the epoch counter moved on as training would) are
    loaded on machine B, whose artifacts folder is empty, with A's weights and optimizer state; the last two are
    kept; a finished supernet is loaded, not trained again; a damaged copy fails its check on machine C."""
    from nas_service.controller.oneshot import job_data, train_supernet

    job_id, (a, b, c), engine = machines
    trained = _supernet(seed=1)
    leftover = b.artifacts_dir / f"job-{job_id}" / "supernet"  # of a job 1 of another database, say
    trained.save(leftover, {"runs": [{"from_epoch": 0}]})
    assert b.checkpoints(job_id).load(_supernet(seed=2)) is None  # the store has none: not resumed
    assert not (leftover / "latest.json").exists() and not list(leftover.glob("epoch-*"))
    for epoch in (1, 2, 3):
        trained.epoch.assign(epoch)
        a.checkpoints(job_id).save(trained, {"runs": [{"from_epoch": 0}], "losses": [1.0] * epoch})
    with a.sessions() as session:
        kept = stored(session, job_id)
        assert [k.filename for k in kept] == [f"job-{job_id}-supernet-epoch-{e}.tar" for e in (3, 2)]
        assert session.scalar(sa.select(sa.func.count()).select_from(Artifact)) == 2  # epoch 1's removed
    assert not list(leftover.glob("*"))
    loaded = _supernet(seed=2)
    assert not _same(_state(loaded), _state(trained))
    meta = b.checkpoints(job_id).load(loaded)
    assert meta is not None and meta["epoch"] == 3 and meta["losses"] == [1.0] * 3
    assert _same(_state(loaded), _state(trained))
    assert int(loaded.epoch.numpy()) == 3

    training = parse_spec({**SPEC, "training": {**SPEC["training"], "supernet_epochs": 3}}).training
    data = job_data("digits", training, 28)
    again = train_supernet(b.checkpoints(job_id), "edgetpu_small", data, training, seed=5)
    assert _same(_state(again), _state(trained)) and again.tracing_counts() == {}  # loaded, nothing trained

    _damage(c, engine, kept[0].id)
    with pytest.raises(ArtifactCorruptError, match=rf"supernet checkpoint of job {job_id} \(epoch 3\): artifact "
                       f"{kept[0].id} failed its integrity check"):
        train_supernet(c.checkpoints(job_id), "edgetpu_small", data, training, seed=5)
    with a.sessions() as session:  # not silently replaced by a new supernet
        assert [k.id for k in stored(session, job_id)] == [k.id for k in kept]
    assert not (c.artifacts_dir / f"job-{job_id}" / "supernet" / "latest.json").exists()

    with a.sessions() as session:  # nas rm: the job's supernet checkpoints go with it
        assert set(job_artifacts(session, job_id)) == {k.id for k in kept}
        session.execute(sa.update(Job).where(Job.id == job_id).values(status="completed"))
        session.commit()
        jobs.remove_job(session, job_id, store=a.store, database_url=str(engine.url.render_as_string(False)),
                        artifacts_dir=a.artifacts_dir)
        assert session.scalar(sa.select(sa.func.count()).select_from(Artifact)) == 0
    for k in kept:
        with pytest.raises(ArtifactNotFound):
            a.store.open_reader(k.id)
    assert not (a.artifacts_dir / f"job-{job_id}").exists()


@pytest.mark.long
def test_two_machines_train_one_supernet_the_other_waits_and_loads_it(
        machines: tuple[int, list[Machine], sa.Engine]) -> None:
    """Machines A and B start the job's supernet together: one trains it (real training, one tiny epoch) while the
    other waits for the job's supernet lock, then loads what the first stored, weight for weight."""
    from nas_service.controller.oneshot import job_data, train_supernet

    job_id, (a, b, _), _ = machines
    training = parse_spec(SPEC).training
    data = job_data("digits", training, 28)
    nets: dict[str, Any] = {}
    errors: list[BaseException] = []

    def start(name: str, machine: Machine, seed: int) -> None:
        try:
            nets[name] = train_supernet(machine.checkpoints(job_id), "edgetpu_small", data, training, seed=seed)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=("a", a, 1)), threading.Thread(target=start, args=("b", b, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _same(_state(nets["a"]), _state(nets["b"]))
    assert sorted(bool(n.tracing_counts()) for n in nets.values()) == [False, True]  # one trained, one loaded
    with a.sessions() as session:
        kept = stored(session, job_id)
    assert [k.filename for k in kept] == [f"job-{job_id}-supernet-epoch-1.tar"]
    meta = a.checkpoints(job_id).load(_supernet(seed=3))
    assert meta is not None and [run["from_epoch"] for run in meta["runs"]] == [0]  # one run trained it
