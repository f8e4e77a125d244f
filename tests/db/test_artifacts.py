"""The artifact store: every backend keeps what it is given, a half-written file is never seen, every read is checked,
and the migration moves the files that rows pointed to into the store."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.artifacts.exceptions import ArtifactNotFound

from nas_service.config import Settings
from nas_service.db import Artifact, Candidate, Job, make_engine, session_factory, upgrade_head
from nas_service.db.artifacts import (
    ArtifactCorruptError,
    ArtifactMissingError,
    chunks,
    info,
    make_store,
    open_checked,
    save_stream,
    store_kind,
)
from nas_service.db.models import ArtifactChunk

BIG = os.urandom((5 << 20) // 2 + 17)  # several database chunks and a short last one


@pytest.fixture(scope="module")
def s3_bucket() -> Iterator[str]:
    """An S3-compatible server (moto's, in a thread) with an empty bucket; its address and credentials in the
    AWS_* variables, where boto3 and so Optuna's `Boto3ArtifactStore` read them."""
    pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    import boto3

    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"})
    boto3.client("s3").create_bucket(Bucket="models")
    try:
        yield "models"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(params=["file", "db-sqlite", "db-postgres", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    url = request.getfixturevalue("postgres_url") if request.param == "db-postgres" else \
        f"sqlite:///{tmp_path / 'nas.db'}"
    store = {"file": "file", "s3": None}.get(request.param, "db")
    if request.param == "s3":
        store = f"s3://{request.getfixturevalue('s3_bucket')}/nas/{tmp_path.name}"
    yield Settings(database_url=url, artifacts_dir=tmp_path / "artifacts", artifact_store=store)


class Failing(io.RawIOBase):
    """A body that breaks after `n` bytes, as a worker killed mid-upload does."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise ConnectionResetError("upload cut")
        n = min(len(target), self.left)
        target[:n] = b"x" * n
        self.left -= n
        return n


def test_every_store_keeps_reads_and_removes(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    upgrade_head(engine, settings=settings)
    store = make_store(settings, engine)
    with session_factory(engine)() as session:
        saved = save_stream(session, store, io.BytesIO(BIG), kind="model", filename="m.tflite")
        assert (saved.size, saved.sha256) == (len(BIG), hashlib.sha256(BIG).hexdigest())
        assert b"".join(chunks(store, info(session, saved.id, what="m"), what="m")) == BIG
        with open_checked(store, saved, what="m") as copy:
            assert copy.read() == BIG
        empty = save_stream(session, store, io.BytesIO(b""), kind="model", filename="e")
        assert b"".join(chunks(store, empty, what="e")) == b""
        store.remove(saved.id)
        with pytest.raises(ArtifactNotFound):
            store.open_reader(saved.id)
        with pytest.raises(ArtifactMissingError, match="candidate 7 of job 1: artifact .* is missing"):
            list(chunks(store, saved, what="candidate 7 of job 1"))
        with pytest.raises(ArtifactMissingError, match="candidate 8 of job 1 has no int8 TFLite file"):
            info(session, None, what="candidate 8 of job 1")
    engine.dispose()


def test_a_write_cut_short_leaves_nothing(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    upgrade_head(engine, settings=settings)
    store = make_store(settings, engine)
    with session_factory(engine)() as session, pytest.raises(ConnectionResetError):
        save_stream(session, store, io.BufferedReader(Failing(3 << 20)), kind="model", filename="m")
    with session_factory(engine)() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Artifact)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(ArtifactChunk)) == 0
    assert [p.name for p in (settings.artifacts_dir / "store").glob("*")] == []
    engine.dispose()


def test_a_damaged_copy_is_an_error_not_a_file(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'nas.db'}", artifacts_dir=tmp_path / "a",
                        artifact_store="db")
    engine = make_engine(settings.database_url)
    upgrade_head(engine, settings=settings)
    store = make_store(settings, engine)
    with session_factory(engine)() as session:
        saved = save_stream(session, store, io.BytesIO(BIG), kind="model", filename="m")
    with engine.begin() as conn:
        conn.execute(sa.update(ArtifactChunk).where(ArtifactChunk.seq == 1).values(data=b"\0" * (1 << 20)))
    with pytest.raises(ArtifactCorruptError, match="candidate 3 of job 2: artifact .* failed its integrity check"):
        open_checked(store, saved, what="candidate 3 of job 2")
    engine.dispose()


def test_a_model_written_after_its_trial_is_attached_to_it(tmp_path: Path) -> None:
    """A one-shot front member's model is written once the search is over, when Optuna refuses to update its trial:
    it is attached all the same, to the trial that scored its candidate, where Optuna's own API finds it."""
    from nas_service.db import Trial
    from nas_service.db.artifacts import attach_to_trial
    from nas_service.services import jobs
    from nas_service.spec import parse_spec
    from nas_service.worker import Worker

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'nas.db'}", artifacts_dir=tmp_path / "a")
    worker = Worker(settings, name="w")
    with worker.sessions() as session:
        job = jobs.create_job(session, parse_spec({"budget": {"trials": 3}, "training": {"scorer": "estimate"},
                                                   "sampler": "random", "initial": []}))
    worker.run(job_id=job.id, exit_when_idle=True)
    store = worker.ctx.store
    assert store is not None
    with worker.sessions() as session:
        trial = session.scalars(sa.select(Trial).where(Trial.job_id == job.id, Trial.number == 1)).one()
        assert trial.candidate_id is not None
        saved = save_stream(session, store, io.BytesIO(b"TFL3 confirmed"), kind="model", filename="m.tflite",
                            job_id=job.id)
        assert attach_to_trial(session, saved.id, "m.tflite", job_id=job.id, candidate_id=trial.candidate_id)
        assert not attach_to_trial(session, saved.id, "m.tflite", job_id=job.id, candidate_id=10_000)
        study_name = jobs.study_name(session, job.id)
    worker.close()
    study = optuna.load_study(study_name=study_name, storage=settings.database_url)
    with pytest.raises(RuntimeError, match="finished"):  # why the row is written directly
        study._storage.set_trial_system_attr(study.trials[1]._trial_id, "x", 1)
    metas = {t.number: optuna.artifacts.get_all_artifact_meta(t, storage=study._storage) for t in study.trials}
    assert {n: [m.artifact_id for m in found] for n, found in metas.items()} == {0: [], 1: [saved.id], 2: []}
    assert metas[1][0].filename == "m.tflite"
    optuna.artifacts.download_artifact(artifact_store=store, artifact_id=metas[1][0].artifact_id,
                                       file_path=str(tmp_path / "m.tflite"))
    assert (tmp_path / "m.tflite").read_bytes() == b"TFL3 confirmed"


def test_store_defaults_follow_the_database_and_bad_names_are_refused(tmp_path: Path) -> None:
    assert store_kind(Settings(database_url="sqlite:///x.db")) == "file"
    assert store_kind(Settings(database_url="postgresql+psycopg://u@h/db")) == "db"
    engine = make_engine(f"sqlite:///{tmp_path / 'nas.db'}")
    with pytest.raises(ValueError, match="NAS_ARTIFACT_STORE='ftp://x' is not a store"):
        make_store(Settings(artifact_store="ftp://x"), engine)
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_moves_the_files_rows_pointed_to(backend: str, tmp_path: Path, request: pytest.FixtureRequest,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of revision 0003 held a path relative to the working directory (`nas_artifacts/job-1/x.tflite`), one
    under the artifacts directory, or an absolute one; all three move into the store, a missing file keeps none."""
    from alembic import command

    from nas_service.db.migrate import alembic_config

    monkeypatch.chdir(tmp_path)
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'nas.db'}"
    settings = Settings(database_url=url, artifacts_dir=Path("nas_artifacts"))
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0003")
        conn.execute(sa.text("INSERT INTO nas_jobs (id, spec, status, study_name, trials_reserved, trials_done, "
                             "created_at, updated_at) VALUES (1, '{}', 'completed', 'job-1', 0, 0, "
                             "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        files = {1: "nas_artifacts/job-1/a.tflite", 2: "job-1/b.tflite", 3: str(tmp_path / "c.tflite"),
                 4: "nas_artifacts/job-1/gone.tflite"}
        for cid, stored in files.items():
            conn.execute(sa.text(
                "INSERT INTO nas_candidates (id, job_id, arch, arch_hash, status, params, macs, model_bytes_estimate,"
                " analysis, latency_ms, cpu_ms, latency_profile, latency, violations, stopped_early, curve, "
                "tflite_path, on_front, origin, created_at, updated_at) VALUES (:id, 1, 'a', :h, 'trained', 1, 1, 1,"
                " '{}', 1.0, 0, 'p', '{}', '{}', false, '[]', :path, true, 'sampler', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"), {"id": cid, "h": f"h{cid}", "path": stored})
    # The job's Optuna study (in the same database): candidate 3 was reused by trial 1 and trained by trial 2,
    # candidate 2 has no trial left.
    study = optuna.create_study(storage=url, study_name="job-1", directions=["maximize", "minimize"])
    for _ in range(4):
        study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0]))
    with engine.begin() as conn:
        for number, (cid, reused) in enumerate([(1, False), (3, True), (3, False), (4, False)]):
            conn.execute(sa.text("INSERT INTO nas_trials (job_id, number, candidate_id, state, reused, started_at) "
                                 "VALUES (1, :n, :c, 'complete', :r, CURRENT_TIMESTAMP)"),
                         {"n": number, "c": cid, "r": reused})
    contents = {1: b"TFL3 one", 2: b"TFL3 two", 3: b"TFL3 three"}
    for cid, data in contents.items():
        path = Path(files[cid]) if cid != 2 else settings.artifacts_dir / files[cid]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    upgrade_head(engine, settings=settings)
    with engine.connect() as conn:  # SQLite's rebuild of nas_candidates in 0005 once set these to NULL
        assert conn.execute(sa.text("SELECT candidate_id FROM nas_trials ORDER BY number")).scalars().all() == \
            [1, 3, 3, 4]
    store = make_store(settings, engine)
    with session_factory(engine)() as session:
        for cid, data in contents.items():
            c = session.get(Candidate, cid)
            assert c is not None and c.tflite_artifact
            meta = info(session, c.tflite_artifact, what=f"candidate {cid}")
            assert meta.sha256 == hashlib.sha256(data).hexdigest()
            assert b"".join(chunks(store, meta, what=f"candidate {cid}")) == data
        gone = session.get(Candidate, 4)
        assert gone is not None and gone.tflite_artifact is None
        held = {cid: session.get(Candidate, cid).tflite_artifact for cid in contents}  # type: ignore[union-attr]
    engine.dispose()
    # Migration 0007 attached each moved model to the trial that trained its candidate, as upload_artifact does.
    study = optuna.load_study(study_name="job-1", storage=url)
    attached = {t.number: [(m.artifact_id, m.filename) for m in optuna.artifacts.get_all_artifact_meta(
        t, storage=study._storage)] for t in study.trials}
    assert attached == {0: [(held[1], "a.tflite")], 1: [], 2: [(held[3], "c.tflite")], 3: []}
    with make_engine(url).begin() as conn:  # idempotent: running it again attaches nothing twice
        command.downgrade(alembic_config(conn), "0006")
        command.upgrade(alembic_config(conn), "0007")
        assert conn.execute(sa.text("SELECT count(*) FROM trial_system_attributes WHERE key LIKE 'artifacts:%'"
                                    )).scalar() == 2


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0008_lets_artifacts_be_supernets_and_its_downgrade_removes_them(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Before 0008 the kind check refuses `supernet`; after it a supernet checkpoint is stored beside a model; the
    downgrade removes the checkpoint (bytes and row), keeps the model and the candidate that refers to it (SQLite
    rebuilds the table in batch mode), and the check refuses `supernet` again."""
    from alembic import command

    from nas_service.db.migrate import alembic_config

    url = request.getfixturevalue("postgres_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'nas.db'}"
    settings = Settings(database_url=url, artifacts_dir=tmp_path / "artifacts", artifact_store="db")
    engine = make_engine(url)

    def migrate(step: object, revision: str) -> None:
        with engine.connect() as conn:
            if backend == "sqlite":  # as upgrade_head runs them (see its docstring)
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            with conn.begin():
                step(alembic_config(conn, settings), revision)  # type: ignore[operator]
            if backend == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()

    def add(kind: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO nas_artifacts (id, kind, filename, sha256, size, created_at) VALUES "
                                 "(:id, :kind, 'f', 'x', 0, CURRENT_TIMESTAMP)"), {"id": f"old-{kind}", "kind": kind})

    migrate(command.upgrade, "0007")
    with pytest.raises(sa.exc.IntegrityError, match="ck_nas_artifacts_kind|CHECK constraint"):
        add("supernet")
    migrate(command.upgrade, "0008")
    store = make_store(settings, engine)
    with session_factory(engine)() as session:
        session.add(Job(id=1, spec={}, status="completed", study_name="job-1"))
        session.commit()
        model = save_stream(session, store, io.BytesIO(b"TFL3 model"), kind="model", filename="m.tflite", job_id=1)
        supernet = save_stream(session, store, io.BytesIO(BIG), kind="supernet", filename="job-1-supernet-epoch-1.tar",
                               job_id=1)
        session.add(Candidate(job_id=1, arch="a", arch_hash="h", status="trained", params=1, macs=1,
                              model_bytes_estimate=1, analysis={}, latency_ms=1.0, cpu_ms=0.0, latency_profile="p",
                              latency={}, violations={}, curve=[], origin="sampler", tflite_artifact=model.id))
        session.commit()
    migrate(command.downgrade, "0007")
    with session_factory(engine)() as session:
        assert session.scalars(sa.select(Artifact.id)).all() == [model.id]
        assert session.scalars(sa.select(Candidate.tflite_artifact)).all() == [model.id]
        assert session.scalar(sa.select(sa.func.count()).select_from(ArtifactChunk).where(
            ArtifactChunk.artifact_id == supernet.id)) == 0
    with pytest.raises(ArtifactNotFound):
        store.open_reader(supernet.id)
    with pytest.raises(sa.exc.IntegrityError, match="ck_nas_artifacts_kind|CHECK constraint"):
        add("supernet")
    migrate(command.upgrade, "head")
    add("supernet")
    engine.dispose()
