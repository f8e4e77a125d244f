"""Where a one-shot job's supernet checkpoints live: the artifact store, so that workers on any machine share one.

After each epoch the checkpoint (its TensorFlow files and `latest.json`) is packed as one tar and streamed into the
store as an artifact of kind `supernet` tied to the job; its row is written only once the whole file is in, so the
newest row is the newest complete checkpoint, and older ones beyond the last two are deleted. A worker starting
the job takes the job's supernet lock (`db.locks.job_lock`: across machines on PostgreSQL), downloads the newest
checkpoint into its local cache folder, checked, and resumes from it; the others wait for the lock and then load
what it stored, rather than train a copy of their own.

`LocalCheckpoints` is the folder-only variant for runs without a database (the ranking bench).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from nas_service.db import artifacts, locks
from nas_service.db.engine import retry_on_connection_loss
from nas_service.db.models import Artifact

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore
    from sqlalchemy.orm import Session, sessionmaker

    from nas_service.trainer.supernet import Supernet

KIND = "supernet"
SUPERNET_DIR = "supernet"
"""This machine's copy of a job's supernet (the cache), in the job's artifacts folder."""
KEEP = 2
"""Stored checkpoints kept per job: the newest and the one before."""
HELD = "stored.json"
"""In the cache folder: which stored checkpoint it holds (absent while it holds one not yet stored)."""
EPOCH = re.compile(r"epoch-(\d+)\.tar$")


class Checkpoints(Protocol):
    """Where `train_supernet` keeps a supernet: a lock while it trains or loads, the newest checkpoint, a new one."""

    def lock(self) -> contextlib.AbstractContextManager[None]: ...

    def load(self, net: Supernet) -> dict[str, Any] | None: ...

    def save(self, net: Supernet, meta: dict[str, Any]) -> None: ...


class LocalCheckpoints:
    """A folder on this machine, locked by a file in it (runs without a database)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def lock(self) -> contextlib.AbstractContextManager[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        return locks.file_lock(self.directory / "lock")

    def load(self, net: Supernet) -> dict[str, Any] | None:
        return net.restore(self.directory)

    def save(self, net: Supernet, meta: dict[str, Any]) -> None:
        net.save(self.directory, meta)


def epoch_of(filename: str) -> int:
    found = EPOCH.search(filename)
    return int(found.group(1)) if found else -1


def stored(session: Session, job_id: int) -> list[artifacts.ArtifactInfo]:
    """The job's stored supernet checkpoints, newest first (by epoch: clocks of different machines may disagree)."""
    rows = session.scalars(sa.select(Artifact).where(Artifact.kind == KIND, Artifact.job_id == job_id))
    return sorted((artifacts.ArtifactInfo.of(r) for r in rows), key=lambda a: (epoch_of(a.filename), a.id),
                  reverse=True)


class StoredCheckpoints:
    """A job's supernet in the artifact store, with `cache` as this machine's copy (see the module docstring)."""

    def __init__(self, sessions: sessionmaker[Session], store: ArtifactStore, job_id: int, cache: Path) -> None:
        self.sessions, self.store, self.job_id, self.cache = sessions, store, job_id, cache

    def lock(self) -> contextlib.AbstractContextManager[None]:
        with self.sessions() as session:
            engine = session.get_bind()
        assert isinstance(engine, sa.Engine)
        self.cache.mkdir(parents=True, exist_ok=True)
        return locks.job_lock(engine, KIND, self.job_id, fallback=self.cache / "lock")

    def load(self, net: Supernet) -> dict[str, Any] | None:
        """Restore `net` from the job's newest stored checkpoint (None, and the cache emptied, if it has none)."""
        return net.restore(self.fetch())

    def fetch(self) -> Path:
        """The cache folder, holding the job's newest stored checkpoint: downloaded and checked unless the cache
        holds it already. `ArtifactCorruptError` for a damaged copy: the job is not silently given a new
        supernet, whose scores would not be comparable with the ones already recorded."""
        with self.sessions() as session:
            newest = next(iter(stored(session, self.job_id)), None)
        held, latest = self.cache / HELD, self.cache / "latest.json"
        if newest is not None and held.is_file() and latest.is_file() and \
                json.loads(held.read_text()).get("id") == newest.id:
            return self.cache
        self._clear()  # a checkpoint the store does not hold (a job of another database, say) is not resumed
        if newest is None:
            return self.cache
        what = f"supernet checkpoint of job {self.job_id} (epoch {epoch_of(newest.filename)})"
        self.cache.mkdir(parents=True, exist_ok=True)
        with artifacts.open_checked(self.store, newest, what=what) as body, \
                tarfile.open(fileobj=body, mode="r") as tar:
            tar.extractall(self.cache, filter="data")
        if not latest.is_file():
            raise artifacts.ArtifactCorruptError(f"{what}: artifact {newest.id} holds no latest.json: it is not a "
                                                 "supernet checkpoint")
        held.write_text(json.dumps({"id": newest.id}))
        return self.cache

    def save(self, net: Supernet, meta: dict[str, Any]) -> None:
        """Checkpoint `net` in the cache, then into the store; older stored checkpoints beyond `KEEP` go."""
        (self.cache / HELD).unlink(missing_ok=True)
        net.save(self.cache, meta)
        epoch = int(net.epoch.numpy())
        with tempfile.TemporaryFile(dir=self.cache) as packed:
            with tarfile.open(fileobj=packed, mode="w") as tar:
                tar.add(self.cache / "latest.json", "latest.json")
                tar.add(self.cache / f"epoch-{epoch}", f"epoch-{epoch}")

            def upload() -> artifacts.ArtifactInfo:  # retried from the start while the database is away
                packed.seek(0)
                with self.sessions() as session:
                    return artifacts.save_stream(session, self.store, packed, kind=KIND, job_id=self.job_id,
                                                 filename=f"job-{self.job_id}-supernet-epoch-{epoch}.tar")

            saved = retry_on_connection_loss(upload, what=f"storing the supernet of job {self.job_id} (epoch {epoch})")
        with self.sessions() as session:
            artifacts.remove(session, self.store, [a.id for a in stored(session, self.job_id)[KEEP:]])
        (self.cache / HELD).write_text(json.dumps({"id": saved.id}))

    def _clear(self) -> None:
        for path in (self.cache / HELD, self.cache / "latest.json"):
            path.unlink(missing_ok=True)
        for old in self.cache.glob("epoch-*"):
            shutil.rmtree(old)


@contextlib.contextmanager
def downloaded(sessions: sessionmaker[Session], store: ArtifactStore, job_id: int) -> Iterator[StoredCheckpoints]:
    """The job's stored supernet in a temporary cache of its own (a reader beside the workers: the export)."""
    with tempfile.TemporaryDirectory(prefix=f"supernet-job-{job_id}-") as cache:
        yield StoredCheckpoints(sessions, store, job_id, Path(cache))
