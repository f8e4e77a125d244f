"""Engines for SQLite (embedded default: WAL, busy timeout, foreign keys) and PostgreSQL (chosen by URL)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_sqlite(url: str | sa.URL) -> bool:
    return sa.make_url(url).get_backend_name() == "sqlite"


def sqlite_connect_args(busy_timeout_s: float) -> dict[str, Any]:
    """Connect arguments shared by our engine and Optuna's, so both wait for locks the same way."""
    return {"timeout": busy_timeout_s, "check_same_thread": False}


def make_engine(url: str, *, busy_timeout_s: float = 30.0, echo: bool = False) -> sa.Engine:
    """An engine for `url`. SQLite files get WAL (readers never block the writer) and a busy timeout."""
    if is_sqlite(url):
        engine = sa.create_engine(url, echo=echo, connect_args=sqlite_connect_args(busy_timeout_s))
        timeout_ms = int(busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if sa.make_url(url).database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={timeout_ms}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True)


def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_connection_lost(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error that caused it, is the database going away or being busy (SQLAlchemy's
    OperationalError, also when Optuna wraps it): worth waiting out, never a fault of the job."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or (
                isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_on_connection_loss(work: Callable[[], T], *, what: str, timeout_s: float = 60.0) -> T:
    """`work()`, run again (with backoff, for up to `timeout_s`) while it fails because the database went away.

    `work` must be one transaction, so a failed attempt left nothing behind."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        try:
            return work()
        except Exception as exc:
            if not is_connection_lost(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("database unavailable while %s, retrying in %.1f s: %s", what, delay,
                        str(exc).splitlines()[0])
            time.sleep(delay)
            delay = min(2 * delay, 5.0)
