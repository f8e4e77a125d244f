"""Locks that keep processes from doing the same work at once.

On PostgreSQL they are advisory locks, which hold across machines: each is taken on a connection of its own and
released by the server when that connection drops, so a worker killed while holding one frees it (the session's
TCP keepalives are shortened, so a machine that vanishes frees it within about a minute too). On SQLite, whose
database lives on one machine, they are `flock` locks on a file beside the database, released by the kernel when
their process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

SCHEMA_LOCK_KEY = 0x6E61735F736368
"""The schema lock's 64-bit key (any constant shared by every process of the service)."""
JOB_LOCKS = {"supernet": 1}
"""Kinds of per-job lock, each the first of the two 32-bit keys (`pg_advisory_lock(kind, job_id)`, a key space
apart from the 64-bit keys'). Persisted in running servers only: a new kind takes a new number."""
KEEPALIVE = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}
"""The lock connection's server-side keepalives: a holder whose machine is gone is dropped after about 60 s."""


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive `flock` on `path` (created if missing, in a folder that must exist: a lock beside an SQLite
    file in a folder that does not exist must fail as opening that database does); released by the kernel if this
    process dies."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def advisory_lock(engine: sa.Engine, *key: int) -> Iterator[None]:
    """PostgreSQL's `pg_advisory_lock(key)` (one 64-bit or two 32-bit integers), held on a connection of its own
    outside any transaction (waiting for it, and holding it for as long as training takes, leaves no transaction
    open)."""
    args = {f"k{i}": k for i, k in enumerate(key)}
    keys = ", ".join(f":{name}" for name in args)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for setting, value in KEEPALIVE.items():  # no effect over a Unix socket
            conn.execute(sa.text(f"SET {setting} = {int(value)}"))
        conn.execute(sa.text(f"SELECT pg_advisory_lock({keys})"), args)
        try:
            yield
        finally:
            with contextlib.suppress(sa.exc.DBAPIError):  # a lost connection has released it already
                conn.execute(sa.text(f"SELECT pg_advisory_unlock({keys})"), args)


def sqlite_lock_path(engine: sa.Engine, name: str | None = None) -> Path | None:
    """`<database>.lock` (or `<database>.<name>.lock`) beside an SQLite database file; None for other databases
    and in-memory ones."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return path.with_name(f"{path.name}.{name}.lock" if name else f"{path.name}.lock")


def job_lock_name(kind: str, job_id: int) -> str:
    return f"{kind}-job-{job_id}"


@contextlib.contextmanager
def job_lock(engine: sa.Engine, kind: str, job_id: int, *, fallback: Path) -> Iterator[None]:
    """The lock of one job's `kind` of work (see `JOB_LOCKS`), for every process of the database: an advisory
    lock on PostgreSQL, on SQLite a file lock beside the database (`fallback`, a file on this machine, for any
    other database)."""
    if engine.dialect.name == "postgresql":
        with advisory_lock(engine, JOB_LOCKS[kind], job_id):
            yield
        return
    with file_lock(sqlite_lock_path(engine, job_lock_name(kind, job_id)) or fallback):
        yield


def remove_job_locks(engine: sa.Engine, job_id: int) -> None:
    """Delete a deleted job's lock files beside an SQLite database (nothing waits on them any more)."""
    for kind in JOB_LOCKS:
        path = sqlite_lock_path(engine, job_lock_name(kind, job_id))
        if path is not None:
            path.unlink(missing_ok=True)
