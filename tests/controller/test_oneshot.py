"""One-shot jobs end to end: candidates scored by the job's supernet (fidelity oneshot), the front confirmed
by training from scratch (fidelity standalone, once per member even under two workers), the supernet resumed
after its worker is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from nas_service.config import Settings
from nas_service.db import Candidate, Job, Trial
from nas_service.services import jobs
from nas_service.spec import SpecError, parse_spec
from nas_service.worker import Worker

pytestmark = [pytest.mark.tf, pytest.mark.slow]

TINY: dict[str, Any] = {
    "space": "edgetpu_small", "dataset": "digits", "resolution": 28, "sampler": "random", "seed": 1,
    "budget": {"trials": 10}, "constraints": {"max_params": 400_000},
    "training": {"mode": "oneshot", "epochs": 1, "batch_size": 32, "train_images": 192, "supernet_epochs": 1,
                 "sandwich_random": 1, "calibration_batches": 2, "score_images": 100, "export_int8": True}}


def test_spec_validates_the_mode() -> None:
    assert parse_spec({}).training.mode == "standalone"
    spec = parse_spec(TINY)
    assert spec.training.mode == "oneshot" and spec.training.concurrency == 1
    with pytest.raises(SpecError, match="training.mode"):
        parse_spec({**TINY, "training": {"mode": "twoshot"}})
    with pytest.raises(SpecError, match="scorer 'train'"):
        parse_spec({**TINY, "training": {"mode": "oneshot", "scorer": "estimate"}})
    with pytest.raises(SpecError, match="fixed resolution"):
        parse_spec({**TINY, "resolution": None})
    with pytest.raises(SpecError, match="mobilenet_v3.*standalone"):
        parse_spec({**TINY, "space": "mobilenet_v3"})


def _confirmations(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the from-scratch trainings of confirmation per architecture (the real trainer still runs)."""
    from nas_service.controller import oneshot

    counts: Counter[str] = Counter()
    real = oneshot.TrainScorer.score

    def counted(self: Any, arch: Any, **kwargs: Any) -> Any:
        from search_spaces import encode

        counts[encode(arch)] += 1
        return real(self, arch, **kwargs)

    monkeypatch.setattr(oneshot.TrainScorer, "score", counted)
    return counts


def _check_job(settings: Settings, job_id: int, counts: Counter[str]) -> list[Candidate]:
    from sqlalchemy.orm import Session

    from nas_service.db.artifacts import chunks, info, make_store

    engine = sa.create_engine(settings.database_url)
    with Session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "completed", job.error if job else None
        trials = list(session.scalars(sa.select(Trial).where(Trial.job_id == job_id)))
        scored = [t for t in trials if t.state == "complete"]
        assert scored and all(t.fidelity == "oneshot" for t in scored), [(t.state, t.error) for t in trials]
        front = list(session.scalars(sa.select(Candidate).where(Candidate.job_id == job_id,
                                                                Candidate.on_front.is_(True))))
        confirmed = list(session.scalars(sa.select(Candidate).where(Candidate.job_id == job_id,
                                                                    Candidate.fidelity == "standalone")))
        pending = session.scalar(sa.select(sa.func.count()).where(
            Candidate.job_id == job_id, Candidate.fidelity.in_(("confirming",))))
    engine.dispose()
    assert pending == 0 and front and set(c.id for c in front) <= set(c.id for c in confirmed)
    engine = sa.create_engine(settings.database_url)
    store = make_store(settings, engine)
    with Session(engine) as session:
        for c in confirmed:
            assert c.oneshot_accuracy is not None and c.accuracy is not None and c.int8_accuracy is not None
            assert c.tflite_artifact  # its model, read back from the store and checked
            assert b"".join(chunks(store, info(session, c.tflite_artifact, what="c"), what="c"))[4:8] == b"TFL3"
            assert counts[c.arch] == 1  # trained from scratch once, whoever asked
        study_name = session.get(Job, job_id).study_name  # type: ignore[union-attr]
    engine.dispose()
    assert sum(counts.values()) == len(confirmed)
    import optuna  # each confirmed model is attached to the Optuna trial that scored its candidate

    study = optuna.load_study(study_name=study_name, storage=settings.database_url)
    attached = {m.artifact_id for t in study.trials for m in optuna.artifacts.get_all_artifact_meta(
        t, storage=study._storage)}
    assert attached == {c.tflite_artifact for c in confirmed}
    from nas_service.controller.supernet_store import StoredCheckpoints, downloaded, stored
    from nas_service.db import session_factory

    engine = sa.create_engine(settings.database_url)
    with Session(engine) as session:  # the supernet is in the artifact store, the job's checkpoint of its epoch
        assert [a.filename for a in stored(session, job_id)] == [f"job-{job_id}-supernet-epoch-1.tar"]
    with downloaded(session_factory(engine), make_store(settings, engine), job_id) as place:
        assert isinstance(place, StoredCheckpoints)
        assert json.loads((place.fetch() / "latest.json").read_text())["epoch"] == 1
    engine.dispose()
    return front


@pytest.mark.long
def test_oneshot_search_scores_subnets_and_confirms_the_front(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`nas search --mode oneshot` on SQLite: the CLI says which front it prints, REST's views carry both."""
    import yaml
    from typer.testing import CliRunner

    from nas_service.cli import app
    from nas_service.services.plot import trial_points

    counts = _confirmations(monkeypatch)
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump({**TINY, "training": {
        k: v for k, v in TINY["training"].items() if k != "mode"}}))
    result = CliRunner().invoke(app, ["search", "--spec", "job.yaml", "--mode", "oneshot", "--db", db],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "mode oneshot" in result.output and "the front above is confirmed" in result.output
    assert "one-shot acc" in result.output
    settings = Settings(database_url=db, artifacts_dir=tmp_path / "nas_artifacts")
    front = _check_job(settings, 1, counts)
    worker = Worker(settings, name="reader")
    with worker.sessions() as session:
        points = jobs.get_front(session, 1)
        columns = trial_points(session, 1)
    worker.close()
    assert [p.candidate_id for p in points] == sorted((c.id for c in front), key=lambda i: next(
        c.latency_ms for c in front if c.id == i))
    assert all(p.fidelity == "standalone" and p.oneshot_accuracy is not None for p in points)
    assert any(columns.oneshot) and all(columns.oneshot[i] for i, f in enumerate(columns.front) if f)
    result = CliRunner().invoke(app, ["export", "1", "--front", "--inherited", "--out", "inherited", "--db", db],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "inherited" / "front.json").read_text())["front"]
    assert len(index) == len(points) and all(e["weights"] == "inherited" for e in index)
    assert all((tmp_path / "inherited" / e["file"]).stat().st_size > 1000 for e in index)
    assert all(0.0 <= e["inherited_int8_accuracy"] <= 1.0 for e in index)
    confirmed = {c: a for c, a in zip(columns.candidate, columns.confirmed, strict=True) if a is not None}
    assert confirmed == {p.candidate_id: p.accuracy for p in points} or set(confirmed) >= {p.candidate_id
                                                                                          for p in points}


@pytest.mark.long
@pytest.mark.postgres
def test_two_workers_on_postgres_confirm_each_member_once(postgres_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _confirmations(monkeypatch)
    settings = Settings(database_url=postgres_url, artifacts_dir=tmp_path / "artifacts")
    workers = [Worker(settings, name=f"w{i}") for i in range(2)]
    with workers[0].sessions() as session:
        job = jobs.create_job(session, parse_spec({**TINY, "budget": {"trials": 12}}))
    threads = [threading.Thread(target=w.run, kwargs={"job_id": job.id, "exit_when_idle": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in workers:
        w.close()
    _check_job(settings, job.id, counts)


RESUME = """
import sys
from pathlib import Path
from nas_service.controller.oneshot import job_data, train_supernet
from nas_service.spec import parse_spec
spec = parse_spec({"space": "edgetpu_small", "dataset": "digits", "resolution": 28, "training": {
    "mode": "oneshot", "batch_size": 32, "train_images": 192, "supernet_epochs": 3, "sandwich_random": 0}})
data = job_data(spec.dataset, spec.training, 28)
train_supernet(Path(sys.argv[1]), spec.space, data, spec.training, seed=0)
"""


@pytest.mark.long
def test_supernet_resumes_from_its_last_epoch_after_sigkill(tmp_path: Path) -> None:
    directory = tmp_path / "supernet"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen([sys.executable, "-c", RESUME, str(directory)], env=env)
    latest = directory / "latest.json"
    deadline = time.monotonic() + 600
    while not (latest.is_file() and json.loads(latest.read_text())["epoch"] >= 1):
        assert first.poll() is None, "the first run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = json.loads(latest.read_text())["epoch"]
    assert killed_at < 3
    subprocess.run([sys.executable, "-c", RESUME, str(directory)], env=env, check=True, timeout=600)
    meta = json.loads(latest.read_text())
    assert meta["epoch"] == 3
    assert [run["from_epoch"] for run in meta["runs"]] == [0, killed_at]
    assert len(meta["losses"]) == 3


RESUME_STORED = """
import sys
from pathlib import Path
from nas_service.config import Settings
from nas_service.controller.oneshot import job_data, train_supernet
from nas_service.controller.supernet_store import StoredCheckpoints
from nas_service.db import make_engine, session_factory
from nas_service.db.artifacts import make_store
from nas_service.spec import parse_spec
url, artifacts_dir, job_id = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
spec = parse_spec({"space": "edgetpu_small", "dataset": "digits", "resolution": 28, "training": {
    "mode": "oneshot", "batch_size": 32, "train_images": 192, "supernet_epochs": 3, "sandwich_random": 0}})
data = job_data(spec.dataset, spec.training, 28)
engine = make_engine(url)
store = make_store(Settings(database_url=url, artifacts_dir=artifacts_dir), engine)
place = StoredCheckpoints(session_factory(engine), store, job_id, artifacts_dir / f"job-{job_id}" / "supernet")
train_supernet(place, spec.space, data, spec.training, seed=0)
"""


@pytest.mark.long
@pytest.mark.postgres
def test_a_supernet_killed_on_one_machine_resumes_on_another(postgres_url: str, tmp_path: Path) -> None:
    """Machine A trains the job's supernet into the database's store and is SIGKILLed after an epoch: PostgreSQL
    frees its lock with its connection, and machine B (an empty artifacts folder) resumes from the stored epoch."""
    from sqlalchemy.orm import Session

    from nas_service.controller.supernet_store import downloaded, stored
    from nas_service.db import make_engine, session_factory, upgrade_head
    from nas_service.db.artifacts import make_store

    engine = make_engine(postgres_url)
    settings = Settings(database_url=postgres_url, artifacts_dir=tmp_path / "a")
    upgrade_head(engine, settings=settings)
    with Session(engine) as session:
        job_id = jobs.create_job(session, parse_spec(TINY)).id

    def epochs() -> list[str]:
        with Session(engine) as session:
            return [a.filename for a in stored(session, job_id)]

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen([sys.executable, "-c", RESUME_STORED, postgres_url, str(tmp_path / "a"), str(job_id)],
                             env=env)
    deadline = time.monotonic() + 600
    while not epochs():
        assert first.poll() is None, "machine A ended before storing its first epoch"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = max(int(name.rsplit("-", 1)[1].removesuffix(".tar")) for name in epochs())
    assert killed_at < 3
    subprocess.run([sys.executable, "-c", RESUME_STORED, postgres_url, str(tmp_path / "b"), str(job_id)], env=env,
                   check=True, timeout=600)
    assert epochs()[0] == f"job-{job_id}-supernet-epoch-3.tar" and len(epochs()) == 2
    with downloaded(session_factory(engine), make_store(settings, engine), job_id) as place:
        meta = json.loads((place.fetch() / "latest.json").read_text())
    assert [run["from_epoch"] for run in meta["runs"]] == [0, killed_at] and len(meta["losses"]) == 3
    engine.dispose()
