"""Job locks: held by one process of the database at a time, released when the holder is killed (by PostgreSQL
when its connection drops, by the kernel for SQLite's file lock), and waited for without an open transaction."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from nas_service.db import locks, make_engine

HOLD = """
import sys, time
from pathlib import Path
from nas_service.db import locks, make_engine
engine = make_engine(sys.argv[1])
with locks.job_lock(engine, "supernet", int(sys.argv[2]), fallback=Path(sys.argv[3])):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(url: str, job_id: int, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url, str(job_id), str(tmp_path / "fallback.lock")],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _until(check: object, what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.postgres
def test_an_advisory_job_lock_is_freed_when_its_holder_is_killed(postgres_url: str, tmp_path: Path) -> None:
    engine = make_engine(postgres_url)
    proc = _holder(postgres_url, 7, tmp_path)
    key = locks.JOB_LOCKS["supernet"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_try_advisory_lock(:k, 7)"), {"k": key}).scalar() is False
        assert conn.execute(sa.text("SELECT pg_try_advisory_lock(:k, 8)"), {"k": key}).scalar() is True  # another job
        conn.execute(sa.text("SELECT pg_advisory_unlock(:k, 8)"), {"k": key})
        holder = conn.execute(sa.text(  # held on a connection of its own, with no transaction open
            "SELECT a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.classid = :k AND l.objid = 7 AND l.granted"), {"k": key}).scalars().all()
        assert holder == ["idle"]
        conn.commit()
    _kill(proc)

    def free() -> bool:
        with engine.connect() as conn:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k, 7)"), {"k": key}).scalar()
            if got:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k, 7)"), {"k": key})
            return bool(got)

    _until(free, "the killed holder's lock was never released")
    with locks.job_lock(engine, "supernet", 7, fallback=tmp_path / "unused"):
        pass
    engine.dispose()


def test_an_sqlite_job_lock_is_a_file_beside_the_database_freed_when_its_holder_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    engine = make_engine(url)
    path = locks.sqlite_lock_path(engine, locks.job_lock_name("supernet", 3))
    assert path == tmp_path / "nas.db.supernet-job-3.lock"
    proc = _holder(url, 3, tmp_path)

    def try_lock() -> bool:
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(handle, fcntl.LOCK_UN)
            return True

    assert not try_lock()
    assert not (tmp_path / "fallback.lock").exists()
    _kill(proc)
    _until(try_lock, "the killed holder's file lock was never released")
    locks.remove_job_locks(engine, 3)
    assert not path.exists()
    engine.dispose()
